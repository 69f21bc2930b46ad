package mediaedgegsm_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/connectors/mediaedgegsm"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(mediaedgegsm.Kind()) }

func config(outbound string) string {
	return `
  - name: mediaedgegsm
    kind: vumi.transports.mediaedgegsm.MediaEdgeGSMTransport
    transport_name: mediaedgegsm
    web_path: foo
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    username: user
    password: pass
    outbound_url: ` + outbound + `
    outbound_username: username
    outbound_password: password
    outbound_timeout: 5
    request_timeout: 10
    operator_mappings:
      417:
        417912: VODA
        417913: TIGO
        417914: UNKNOWN
      233: MTN
`
}

func q(content string, extra ...string) url.Values {
	v := url.Values{"ServiceNumber": {"12345"}, "PhoneNumber": {"2371234567"}, "SMSBODY": {content}, "USN": {"user"}, "PWD": {"pass"}, "Operator": {"foo"}}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			v.Del(extra[i])
			continue
		}
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func TestMediaEdgeGSM(t *testing.T) {
	rs := transporttest.NewRecordingServer(t)
	e := transporttest.Start(t, kinds(), "mediaedgegsm", config(rs.URL+"/send?account=1"))
	inbound := func(name, content, reply string) transporttest.Case {
		return transporttest.Case{Name: name, Path: "/foo", Query: q(content),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.To() != "12345" || m.From() != "2371234567" || m.Text() != content || m.Provider == nil || *m.Provider != "foo" || *m.TransportType != "sms" {
					b, _ := m.MarshalJSON()
					t.Errorf("inbound %s", b)
				}
			},
			Reply:      transporttest.Reply(reply, true),
			WantStatus: 200, WantBody: reply, WantHeader: map[string]string{"Content-Type": "text/plain; charset=utf-8"}}
	}
	transporttest.Run(t, e, []transporttest.Case{
		inbound("an inbound message is answered with the reply", "hello", "message received"),
		inbound("non-ASCII both ways", "öæł", "Zoë says hi"),
		{Name: "unexpected parameter", Path: "/foo", Query: q("hello", "foo", "bar"), WantStatus: 400, WantBody: `{"unexpected_parameter":["foo"]}`},
		{Name: "missing PhoneNumber", Path: "/foo", Query: q("hello", "PhoneNumber", ""), WantStatus: 400, WantBody: `{"missing_parameter":["PhoneNumber"]}`},
		{Name: "invalid credentials", Path: "/foo", Query: q("hello", "USN", "something", "PWD", "wrong"), WantStatus: 400, WantBody: `{"credentials":"invalid"}`},
		{Name: "no credentials at all", Path: "/foo", Query: q("hello", "USN", "", "PWD", ""), WantStatus: 400, WantBody: `{"credentials":"invalid","missing_parameter":["PWD","USN"]}`},
	})

	// Messages that are not replies go to outbound_url, with the operator
	// found from the number's prefix.
	for _, c := range []struct{ to, operator string }{{"+41791200000", "VODA"}, {"+41791300000", "TIGO"}, {"+41791400000", "UNKNOWN"}, {"233244000000", "MTN"}, {"+1555", "UNKNOWN"}} {
		m := schemas.NewUserMessage()
		m.ToAddr, m.FromAddr, m.Content = schemas.String(c.to), schemas.String("12345"), schemas.String("outbound")
		e.SendOutbound(m)
		r := rs.WaitRequest(func(r transporttest.Request) bool {
			return len(r.Query["SmsID"]) > 0 && r.Query["SmsID"][0] == m.MessageID
		}, 30*time.Second)
		want := url.Values{"account": {"1"}, "USN": {"username"}, "PWD": {"password"}, "SmsID": {m.MessageID}, "PhoneNumber": {strings.TrimLeft(c.to, "+")}, "Operator": {c.operator}, "SmsBody": {"outbound"}}
		if r.Method != "GET" || r.Path != "/send" || fmt.Sprint(url.Values(r.Query)) != fmt.Sprint(want) {
			t.Errorf("request %s %s %v, want %v", r.Method, r.Path, r.Query, want)
		}
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
		if ev.EventType != schemas.EventAck {
			t.Errorf("event %+v", ev)
		}
	}
	// A refusal is a nack.
	rs.Respond(transporttest.Response{Status: 404, Body: "Not Found"})
	m := schemas.NewUserMessage()
	m.ToAddr, m.Content = schemas.String("+41791200000"), schemas.String("outbound")
	e.SendOutbound(m)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || *ev.NackReason != "Unexpected response code: 404" {
		t.Errorf("event %+v", ev)
	}
	// A reply with empty content is nacked.
	empty := e.Inbound()[0].Reply("", true)
	e.SendOutbound(empty)
	ev = e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == empty.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || *ev.NackReason != "Missing fields: content" {
		t.Errorf("event %+v", ev)
	}
	// With MediaEdgeGSM unreachable the message goes to failures as a
	// temporary failure (retried by the failure worker), and the password
	// is not in the reason.
	rs.Close()
	m = schemas.NewUserMessage()
	m.ToAddr, m.Content = schemas.String("+41791200000"), schemas.String("outbound")
	e.SendOutbound(m)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
	if f.FailureCode == nil || *f.FailureCode != schemas.FailureTemporary || strings.Contains(f.Reason, "password") {
		t.Errorf("failure %s %v", f.Reason, f.FailureCode)
	}
}

// TestMediaEdgeGSMAcrossInstances: two instances behind a load balancer;
// each one's requests are answered whichever instance consumes the reply.
func TestMediaEdgeGSMAcrossInstances(t *testing.T) {
	e := transporttest.StartInstances(t, kinds(), "mediaedgegsm", 2, `
  - name: meg{i}
    kind: mediaedgegsm
    transport_name: mediaedgegsm
    web_path: /foo
    web_port: ${PORT{i}}
    web_interface: 127.0.0.1
`)
	for i, from := range []string{"233200000001", "233200000002", "233200000003", "233200000004"} {
		in := e.Call(t, i%2, transporttest.Case{Path: "/foo", Query: q("hi", "PhoneNumber", from),
			Reply: func(in *schemas.UserMessage) *schemas.UserMessage { return in.Reply("hello "+in.From(), true) }, WantStatus: 200, WantBody: "hello " + from})
		if in.From() != from {
			t.Errorf("inbound from %s", in.From())
		}
	}
}

func TestOperator(t *testing.T) {
	var ms mediaedgegsm.OperatorMappings
	if err := yaml.Unmarshal([]byte("417: {417912: VODA, 4179: OTHER}\n41: SWISS\n2: {}\n"), &ms); err != nil {
		t.Fatal(err)
	}
	for msisdn, want := range map[string]string{"41791200000": "VODA", "41791300000": "OTHER", "41700000000": "UNKNOWN", "41800000000": "SWISS", "23300": "UNKNOWN", "": "UNKNOWN"} {
		if got := ms.Operator(msisdn); got != want {
			t.Errorf("Operator(%q) = %q, want %q", msisdn, got, want)
		}
	}
	if err := yaml.Unmarshal([]byte("417: [a, b]\n"), &ms); err == nil {
		t.Error("a list was accepted as a mapping")
	}
}

func TestMediaEdgeGSMConfigErrors(t *testing.T) {
	cases := map[string]string{
		"web_path":          "name: a, kind: mediaedgegsm, transport_name: a",
		"outbound_url":      "name: a, kind: mediaedgegsm, transport_name: a, web_path: /x, outbound_url: 'ftp://x'",
		"outbound_timeout":  "name: a, kind: mediaedgegsm, transport_name: a, web_path: /x, outbound_timeout: -1",
		"operator_mappings": "name: a, kind: mediaedgegsm, transport_name: a, web_path: /x, operator_mappings: {417: [a]}",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
}

// FuzzParseRequest: no parameters make the request reader panic; what it
// accepts has every field and the configured credentials.
func FuzzParseRequest(f *testing.F) {
	f.Add("ServiceNumber=1&PhoneNumber=2&SMSBODY=hi&USN=user&PWD=pass&Operator=o")
	f.Add("USN=user&PWD=wrong")
	f.Add("SMSBODY=%C3%B6&x=1")
	f.Fuzz(func(t *testing.T, query string) {
		form, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for _, strict := range []bool{true, false} {
			req, errs := mediaedgegsm.ParseRequest(form, strict, "user", "pass")
			if errs != nil {
				continue
			}
			if req.USN != "user" || req.PWD != "pass" {
				t.Fatal("accepted wrong credentials")
			}
			for _, k := range []string{"ServiceNumber", "PhoneNumber", "SMSBODY", "Operator"} {
				if _, ok := form[k]; !ok {
					t.Fatalf("accepted without %s", k)
				}
			}
		}
	})
}
