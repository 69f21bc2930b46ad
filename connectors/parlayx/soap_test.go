package parlayx

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHelpers(t *testing.T) {
	// Vumi's test vector.
	ts := FormatTimestamp(time.Date(2013, 6, 18, 10, 59, 33, 0, time.UTC))
	if ts != "20130618105933" || MakePassword("user", "password", ts) != "1f2e67e642b16f6623459fa76dc3894f" {
		t.Errorf("timestamp %s password %s", ts, MakePassword("user", "password", ts))
	}
	for in, want := range map[string]string{"+27117654321": "tel:27117654321", "+264117654321": "tel:264117654321"} {
		if got, err := FormatAddress(in); got != want || err != nil {
			t.Errorf("FormatAddress(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"12345", "nope", "+", ""} {
		if _, err := FormatAddress(bad); !errors.Is(err, ErrAddress) {
			t.Errorf("FormatAddress(%q): %v", bad, err)
		}
	}
	c := UniqueCorrelator("arst")
	if !strings.HasPrefix(c, "arst:") || len(c) != len("arst:")+36 || ExtractMessageID(c) != "arst" || UniqueCorrelator("arst") == c {
		t.Errorf("correlator %q", c)
	}
	if ExtractMessageID("a:b:c") != "a" || ExtractMessageID("plain") != "plain" {
		t.Error("ExtractMessageID")
	}
	for in, want := range map[string]string{"tel:27117654321": "+27117654321", "54321": "54321", "tel:0027117654321": "+27117654321"} {
		if got := NormalizeAddress(in); got != want {
			t.Errorf("NormalizeAddress(%q) = %q", in, got)
		}
	}
}

func TestParseFault(t *testing.T) {
	doc := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode>
<faultstring>Policy error</faultstring><faultactor>net</faultactor><detail><c:PolicyExceptionDetail xmlns:c="http://www.csapi.org/schema/parlayx/common/v2_1">
<messageId>POL0001</messageId><text>Policy error: %1</text><variables>a</variables><variables>b</variables></c:PolicyExceptionDetail></detail></s:Fault></s:Body></s:Envelope>`
	root, err := ParseXML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	body, header, err := Unwrap(root)
	if err != nil || header != nil {
		t.Fatal(err, header)
	}
	f := ParseFault(body)
	if f == nil || f.Code != "s:Client" || f.String != "Policy error" || f.Actor != "net" || f.Server() || f.Detail == nil ||
		f.Detail.Kind != "PolicyException" || f.Detail.MessageID != "POL0001" || strings.Join(f.Detail.Variables, ",") != "a,b" {
		t.Errorf("fault %+v %+v", f, f.Detail)
	}
	// A detail of another kind is not a ParlayX exception.
	other := strings.ReplaceAll(doc, "PolicyExceptionDetail", "WhatIsThis")
	root, _ = ParseXML([]byte(other))
	body, _, _ = Unwrap(root)
	if f := ParseFault(body); f == nil || f.Detail != nil {
		t.Errorf("fault %+v", f)
	}
	if f := (&Fault{Code: "soapenv:Server"}); !f.Server() {
		t.Error("Server()")
	}
}

func TestParseNotification(t *testing.T) {
	doc := `<?xml version="1.0" encoding="ISO-8859-1"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` +
		`<loc:notifySmsReception xmlns:loc="http://www.csapi.org/schema/parlayx/sms/notification/v2_2/local"><loc:correlator>1234</loc:correlator>` +
		"<loc:message><message>caf\xe9</message><senderAddress>tel:27117654321</senderAddress><smsServiceActivationNumber>54321</smsServiceActivationNumber>" +
		`</loc:message></loc:notifySmsReception></soapenv:Body></soapenv:Envelope>`
	n, f := ParseNotification([]byte(doc))
	r, ok := n.(*Reception)
	if f != nil || !ok || r.Message != "café" || r.Sender != "+27117654321" || r.ServiceActivationNumber != "54321" || r.DateTime != nil || r.LinkID != "" {
		t.Errorf("reception %+v, %v", n, f)
	}
	deep := strings.Repeat("<a>", maxDepth+1)
	if _, err := ParseXML([]byte(deep)); !errors.Is(err, ErrXML) {
		t.Errorf("deep document: %v", err)
	}
	if _, err := ParseXML([]byte(`<?xml version="1.0" encoding="EBCDIC"?><a/>`)); !errors.Is(err, ErrXML) {
		t.Errorf("unknown encoding: %v", err)
	}
}

func FuzzParseNotification(f *testing.F) {
	for _, s := range []string{
		`<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><l:notifySmsDeliveryReceipt xmlns:l="http://www.csapi.org/schema/parlayx/sms/notification/v2_2/local"><l:correlator>a:b</l:correlator><l:deliveryStatus><address>tel:2711</address><deliveryStatus>DeliveredToTerminal</deliveryStatus></l:deliveryStatus></l:notifySmsDeliveryReceipt></e:Body></e:Envelope>`,
		`<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Header><c:h xmlns:c="http://www.csapi.org/schema/parlayx/common/v2_1"><c:linkid>x</c:linkid></c:h></e:Header><e:Body><l:notifySmsReception xmlns:l="http://www.csapi.org/schema/parlayx/sms/notification/v2_2/local"><l:correlator>1</l:correlator><l:message><message>m</message><senderAddress>tel:27117654321</senderAddress><smsServiceActivationNumber>1</smsServiceActivationNumber><dateTime>2013-06-18T10:59:33Z</dateTime></l:message></l:notifySmsReception></e:Body></e:Envelope>`,
		`<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>`,
		`sup`, `<a><b>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, fault := ParseNotification(b)
		if (n == nil) == (fault == nil) {
			t.Fatalf("notification %v and fault %v", n, fault)
		}
		if fault != nil {
			if fault.Code != "soapenv:Client" && fault.Code != "soapenv:Server" || fault.String == "" {
				t.Fatalf("fault %+v", fault)
			}
			return
		}
		switch n := n.(type) {
		case *Reception:
			if n.Sender == "" || n.ServiceActivationNumber == "" {
				t.Fatalf("reception %+v", n)
			}
		case *Receipt:
			if _, ok := DeliveryStatuses[n.Status]; !ok {
				t.Fatalf("receipt %+v", n)
			}
		default:
			t.Fatalf("notification %T", n)
		}
		// Whatever parsed, a response envelope can be written for it.
		if _, err := ParseXML(faultEnvelope("soapenv:Client", string(b))); err != nil {
			t.Fatalf("fault envelope: %v", err)
		}
	})
}

// FuzzSOAPResponse: what a network answers SendSms with.
func FuzzSOAPResponse(f *testing.F) {
	f.Add([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x:sendSmsResponse xmlns:x="http://www.csapi.org/schema/parlayx/sms/send/v2_2/local"><x:result>1</x:result></x:sendSmsResponse></s:Body></s:Envelope>`))
	f.Add([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Server</faultcode><detail><c:ServiceExceptionDetail xmlns:c="http://www.csapi.org/schema/parlayx/common/v2_1"><messageId>SVC1</messageId></c:ServiceExceptionDetail></detail></s:Fault></s:Body></s:Envelope>`))
	f.Add([]byte(`<html>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		root, err := ParseXML(b)
		if err != nil {
			if !errors.Is(err, ErrXML) {
				t.Fatalf("unclassified %v", err)
			}
			return
		}
		body, _, err := Unwrap(root)
		if err != nil {
			return
		}
		if fault := ParseFault(body); fault != nil && fault.Detail != nil && fault.Detail.Kind != "ServiceException" && fault.Detail.Kind != "PolicyException" {
			t.Fatalf("detail kind %q", fault.Detail.Kind)
		}
		_ = body.Find(NSSend, "result")
	})
}
