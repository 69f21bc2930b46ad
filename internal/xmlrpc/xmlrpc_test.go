package xmlrpc

import (
	"strings"
	"testing"
)

func TestParseCall(t *testing.T) {
	method, m, err := ParseCall(strings.NewReader(`<?xml version="1.0"?><methodCall><methodName>USSD.INIT</methodName><params><param><value><struct>
<member><name>msisdn</name><value><string>+256</string></value></member>
<member><name>shortcode</name><value>*7#</value></member>
<member><name>n</name><value><int>4</int></value></member>
<member><name>none</name><value><nil/></value></member>
</struct></value></param></params></methodCall>`))
	if err != nil || method != "USSD.INIT" || *m["msisdn"] != "+256" || *m["shortcode"] != "*7#" || *m["n"] != "4" || m["none"] != nil {
		t.Fatalf("ParseCall: %q %v %v", method, m, err)
	}
	if got := MissingMembers(m, "msisdn", "none", "session"); got != "none, session" {
		t.Errorf("missingMembers = %q", got)
	}
	if _, _, err := ParseCall(strings.NewReader(`<methodCall><methodName>X</methodName><params><param><value><struct><member><name>a</name><value><struct></struct></value></member></struct></value></param></params></methodCall>`)); err == nil {
		t.Error("a nested struct was accepted as a scalar")
	}
}

func TestResponseEscapes(t *testing.T) {
	got := string(Response(map[string]string{"message": "a<b & c"}))
	if !strings.Contains(got, "<string>a&lt;b &amp; c</string>") {
		t.Errorf("response %s", got)
	}
	if f := string(Fault(8002, "x<y")); !strings.Contains(f, "<int>8002</int>") || !strings.Contains(f, "x&lt;y") {
		t.Errorf("fault %s", f)
	}
}

// FuzzParseCall: no input makes the XML-RPC reader panic, and what it
// accepts has a struct of scalar members.
func FuzzParseCall(f *testing.F) {
	f.Add(`<methodCall><methodName>USSD.END</methodName><params><param><value><struct><member><name>session</name><value>s</value></member></struct></value></param></params></methodCall>`)
	f.Add(`<methodCall><methodName>x</methodName></methodCall>`)
	f.Add(`<methodCall><params><param><value><struct><member><value><nil/></value></member></struct></value></param></params>`)
	f.Fuzz(func(t *testing.T, in string) {
		_, m, err := ParseCall(strings.NewReader(in))
		if err == nil && m == nil {
			t.Fatal("accepted without members")
		}
	})
}
