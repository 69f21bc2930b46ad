package opera

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestEncodeCall(t *testing.T) {
	b, err := EncodeCall("EAPIGateway.SendSMS", map[string]any{
		"SMSText": "a < b & c", "MaxSegments": 9, "Bin": Binary("hé"), "When": DateTime(time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `<methodCall><methodName>EAPIGateway.SendSMS</methodName><params><param><value><struct>` +
		`<member><name>Bin</name><value><base64>aMOp</base64></value></member>` +
		`<member><name>MaxSegments</name><value><int>9</int></value></member>` +
		`<member><name>SMSText</name><value><string>a &lt; b &amp; c</string></value></member>` +
		`<member><name>When</name><value><dateTime.iso8601>20110101T00:00:00</dateTime.iso8601></value></member>` +
		`</struct></value></param></params></methodCall>`
	if !strings.Contains(string(b), want) {
		t.Errorf("call\n%s\nwant\n%s", b, want)
	}
	if _, err := EncodeCall("m", map[string]any{"x": 1.5}); err == nil {
		t.Error("float accepted")
	}
}

func TestDecodeResponse(t *testing.T) {
	ok := `<?xml version="1.0"?><methodResponse><params><param><value><struct>
<member><name>Identifier</name><value><string>abc &amp; 1</string></value></member>
<member><name>Untyped</name><value>plain</value></member>
<member><name>Count</name><value><i4>3</i4></value></member>
<member><name>Nested</name><value><struct></struct></value></member>
</struct></value></param></params></methodResponse>`
	m, err := DecodeResponse([]byte(ok))
	if err != nil || m["Identifier"] != "abc & 1" || m["Untyped"] != "plain" || m["Count"] != "3" || len(m) != 3 {
		t.Errorf("decoded %v, %v", m, err)
	}
	fault := `<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>4</int></value></member>
<member><name>faultString</name><value><string>Too many parameters</string></value></member></struct></value></fault></methodResponse>`
	var f *Fault
	if _, err := DecodeResponse([]byte(fault)); !errors.As(err, &f) || f.Code != 4 || f.String != "Too many parameters" {
		t.Errorf("fault: %v", err)
	}
	for _, bad := range []string{"", "<html/>", "<methodResponse><params></params></methodResponse>",
		"<methodResponse><params><param><value><string>x</string></value></param></params></methodResponse>",
		"<methodResponse><fault><value><struct><member><name>faultCode</name><value>x</value></member></struct></value></fault></methodResponse>"} {
		if _, err := DecodeResponse([]byte(bad)); !errors.Is(err, ErrResponse) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestDeliveryStatus(t *testing.T) {
	for s, want := range map[string]string{"D": "delivered", "d": "delivered", "R": "delivered", "Q": "pending", "P": "pending",
		"B": "pending", "a": "pending", "u": "pending", "F": "failed", "": "failed"} {
		if got := DeliveryStatus(s); got != want {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`<methodResponse><params><param><value><struct><member><name>Identifier</name><value><string>a</string></value></member></struct></value></param></params></methodResponse>`))
	f.Add([]byte(`<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>4</int></value></member></struct></value></fault></methodResponse>`))
	f.Add([]byte(`<methodResponse><params><param><value><struct><member><name>x</name><value><array/></value></member></struct></value></param></params></methodResponse>`))
	f.Add([]byte("<html>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeResponse(b)
		var fault *Fault
		if err != nil && m != nil {
			t.Fatalf("members %v with error %v", m, err)
		}
		if err != nil && !errors.Is(err, ErrResponse) && !errors.As(err, &fault) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

func FuzzReceipts(f *testing.F) {
	f.Add([]byte(`<receipts><receipt><reference>r</reference><status>D</status></receipt></receipts>`))
	f.Add([]byte(`XmlMsg=%3Creceipts%2F%3E`))
	f.Add([]byte(`XmlMsg=%zz`))
	f.Add([]byte(`<!DOCTYPE receipts><receipts>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := XMLBody(b)
		if err != nil {
			var bad *BadRequestError
			if !errors.As(err, &bad) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		rs, err := ParseReceipts(doc)
		var bad *BadRequestError
		if err != nil && !errors.As(err, &bad) {
			t.Fatalf("unclassified error %v", err)
		}
		for _, r := range rs {
			if strings.TrimSpace(r.Reference) == "" {
				t.Fatalf("receipt without a reference accepted: %+v", r)
			}
			if s := DeliveryStatus(r.Status); s != "delivered" && s != "pending" && s != "failed" {
				t.Fatalf("status %q", s)
			}
		}
	})
}

func FuzzPostEvent(f *testing.F) {
	f.Add([]byte(`<bspostevent><field name="Local">1</field><field name="Remote">2</field><field name="Text">t</field><field name="MessageID">m</field><field name="MobileNetwork">n</field></bspostevent>`))
	f.Add([]byte(`<bspostevent><field name="Local">1</field></bspostevent>`))
	f.Add([]byte(`<bspostevent><field>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fields, err := ParsePostEvent(b)
		if err != nil {
			var bad *BadRequestError
			if !errors.As(err, &bad) || fields != nil {
				t.Fatalf("error %v with fields %v", err, fields)
			}
			return
		}
		for _, k := range RequiredFields {
			if _, ok := fields[k]; !ok {
				t.Fatalf("accepted without %s", k)
			}
		}
	})
}

// FuzzEncodeCall: whatever the text, the call is well-formed XML, and
// text XML can carry comes back unchanged.
func FuzzEncodeCall(f *testing.F) {
	f.Add("hello")
	f.Add("a<b>&\"'\r\n\t]]>")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := EncodeCall("m", map[string]any{"SMSText": s})
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Text string `xml:"params>param>value>struct>member>value>string"`
		}
		if err := xml.Unmarshal(b, &c); err != nil {
			t.Fatalf("call for %q is not XML: %v", s, err)
		}
		carried := utf8.ValidString(s)
		for _, r := range s {
			if !(r == 0x09 || r == 0x0A || r == 0x0D || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)) {
				carried = false
			}
		}
		if carried && c.Text != s {
			t.Fatalf("text %q came back as %q", s, c.Text)
		}
	})
}
