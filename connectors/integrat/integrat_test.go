package integrat_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/integrat"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(integrat.Kind()) }

// event is Higate's OnUSSEvent message (Integrat's sample XML).
func event(typ, sid, msisdn, connstr, text string) string {
	return fmt.Sprintf(`
<Message>
    <Version Version="1.0"/>
    <Response Type="OnUSSEvent">
        <SystemID>Higate</SystemID>
        <UserID>LoginName</UserID>
        <Service>SERVICECODE</Service>
        <Network ID="1" MCC="655" MNC="001"/>
        <OnUSSEvent Type="%s">
            <USSContext SessionID="%s"
                        NetworkSID="netsid12345"
                        MSISDN="%s"
                        Script="testscript"
                        ConnStr="%s"/>
            <USSText Type="TEXT">%s</USSText>
        </OnUSSEvent>
    </Response>
</Message>
`, typ, sid, msisdn, connstr, text)
}

const nonUSSD = `<Message><Version Version="1.0"/><Response Type="OnReceiveSMS"><OnReceiveSMS><Content Type="HEX">06052677F6A565</Content></OnReceiveSMS></Response></Message>`

func config(url string) string {
	return `
  - name: integrat
    kind: vumi.transports.integrat.IntegratTransport
    transport_name: integrat
    web_path: foo
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    url: ` + url + `
    username: testuser
    password: testpass
`
}

func send(name, body string) transporttest.Case {
	// Higate's requests are GETs with a body, as in Vumi's tests.
	return transporttest.Case{Name: name, Method: http.MethodGet, Path: "/foo", Body: body, WantStatus: 200, WantBody: "",
		WantHeader: map[string]string{"Content-Type": "text/plain"}, Check: func(t testing.TB, body string) {
			if body != "" {
				t.Errorf("body %q", body)
			}
		}}
}

func published(c transporttest.Case, ev schemas.SessionEvent, from, to string, content *string) transporttest.Case {
	c.WantInbound = func(t testing.TB, m *schemas.UserMessage) {
		if m.Session() != ev || m.From() != from || m.To() != to || (content == nil) != (m.Content == nil) || (content != nil && m.Text() != *content) ||
			*m.TransportType != "ussd" || m.TransportMetadata["session_id"] != "sess1234" || len(m.TransportMetadata) != 1 {
			b, _ := m.MarshalJSON()
			t.Errorf("inbound %s", b)
		}
	}
	return c
}

func bad(name, body, reason string) transporttest.Case {
	return transporttest.Case{Name: name, Method: http.MethodPost, Path: "/foo", Body: body, WantStatus: 400, WantBodyContains: []string{reason}}
}

func TestIntegrat(t *testing.T) {
	rs := transporttest.NewRecordingServer(t)
	e := transporttest.Start(t, kinds(), "integrat", config(rs.URL+"/higate"))
	foobar, nonASCII, empty := "foobar", "öæł", ""
	transporttest.Run(t, e, []transporttest.Case{
		send("New announces a session: nothing published", event("New", "sess1234", "+2799053421", "*120*44#", "")),
		send("Request REQ announces one too", event("Request", "sess1234", "+2799053421", "*120*44#", "REQ")),
		published(send("Open starts the session", event("Open", "sess1234", "+2799053421", "*120*44#", "")), schemas.SessionNew, "+2799053421", "*120*44#", nil),
		published(send("Request resumes it with the text", event("Request", "sess1234", "27345", "*120*99#", " foobar ")), schemas.SessionResume, "27345", "*120*99#", &foobar),
		published(send("non-ASCII text", event("Request", "sess1234", "27345", "*120*99#", nonASCII)), schemas.SessionResume, "27345", "*120*99#", &nonASCII),
		published(send("numbers are normalised", event("Request", "sess1234", "27821234567", "*120*99#", "")), schemas.SessionResume, "+27821234567", "*120*99#", &empty),
		published(send("another event type resumes", event("Timeout", "sess1234", "27345", "*1#", "x")), schemas.SessionResume, "27345", "*1#", schemas.String("x")),
		published(send("Close ends it", event("Close", "sess1234", "27345", "*1#", "bye")), schemas.SessionClose, "27345", "*1#", nil),
		send("a non-USSD message is ignored", nonUSSD),
		bad("not XML", "blah", "invalid XML"),
		bad("no context", `<Message><Response Type="OnUSSEvent"><OnUSSEvent Type="Open"><USSContext SessionID="1"/></OnUSSEvent></Response></Message>`, "USSContext lacks MSISDN, ConnStr"),
		bad("no OnUSSEvent element", `<Message><Response Type="OnUSSEvent"></Response></Message>`, "without its OnUSSEvent element"),
	})

	// Replies go to Higate as USSReply requests.
	ok := transporttest.Response{Status: 200, Body: `<Response status_code="0"/>`}
	rs.Respond(ok, ok)
	in := e.Inbound()[0]
	reply := in.Reply("hi", true)
	e.SendOutbound(reply)
	r := rs.WaitRequest(func(r transporttest.Request) bool { return strings.Contains(r.Body, ">hi<") }, 30*time.Second)
	want := `<Message><Version Version="1.0" /><Request Flags="0" SessionID="sess1234" Type="USSReply"><UserID Orientation="TR">testuser</UserID><Password>testpass</Password><USSText Type="TEXT">hi</USSText></Request></Message>`
	if r.Method != "POST" || r.Path != "/higate" || r.Header.Get("Content-Type") != "text/xml; charset=utf-8" || r.Body != want {
		t.Errorf("request %s %s %q %s", r.Method, r.Path, r.Header.Get("Content-Type"), r.Body)
	}
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == reply.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventAck {
		t.Errorf("event %+v", ev)
	}
	// A closing reply without content.
	closing := in.Reply("", false)
	closing.Content = nil
	e.SendOutbound(closing)
	r = rs.WaitRequest(func(r transporttest.Request) bool { return strings.Contains(r.Body, `Flags="1"`) }, 30*time.Second)
	if want := `<Message><Version Version="1.0" /><Request Flags="1" SessionID="sess1234" Type="USSReply"><UserID Orientation="TR">testuser</UserID><Password>testpass</Password><USSText Type="TEXT" /></Request></Message>`; r.Body != want {
		t.Errorf("closing request %s", r.Body)
	}
	// Higate's refusal is a nack with its error fields.
	rs.Respond(transporttest.Response{Status: 200, Body: `<Response status_code="-1">
    <Data name="method_error">
        <field name="error_code" value="-1"/>
        <field name="reason" value="Expecting POST, not GET"/>
    </Data>
</Response>`})
	refused := in.Reply("again", true)
	e.SendOutbound(refused)
	ev = e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == refused.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || *ev.NackReason != "error_code: -1, reason: Expecting POST, not GET" {
		t.Errorf("event %+v", ev)
	}
	// A message without a session is nacked.
	push := schemas.NewUserMessage()
	push.ToAddr, push.Content = schemas.String("27345"), schemas.String("hi")
	e.SendOutbound(push)
	ev = e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == push.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || !strings.Contains(*ev.NackReason, "session_id") {
		t.Errorf("event %+v", ev)
	}
	// An HTTP 503 is a temporary failure; an answer that is not Higate's
	// a permanent one; Higate unreachable a temporary one. The password
	// never shows.
	rs.Respond(transporttest.Response{Status: 503, Body: "busy"}, transporttest.Response{Status: 200, Body: "<html>"})
	for i, code := range []schemas.FailureCode{schemas.FailureTemporary, schemas.FailurePermanent, schemas.FailureTemporary} {
		if i == 2 {
			rs.Close()
		}
		m := in.Reply(fmt.Sprint("try ", i), true)
		e.SendOutbound(m)
		f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
		if f.FailureCode == nil || *f.FailureCode != code || strings.Contains(f.Reason, "testpass") {
			t.Errorf("failure %d: %s %v", i, f.Reason, f.FailureCode)
		}
	}
}

// TestIntegratAcrossInstances: Higate's events of one session reach two
// instances behind a load balancer; both publish, keeping no state.
func TestIntegratAcrossInstances(t *testing.T) {
	rs := transporttest.NewRecordingServer(t)
	rs.Respond(transporttest.Response{Status: 200, Body: `<Response status_code="0"/>`})
	e := transporttest.StartInstances(t, kinds(), "integrat", 2, `
  - name: integrat{i}
    kind: integrat
    transport_name: integrat
    web_path: /foo
    web_port: ${PORT{i}}
    web_interface: 127.0.0.1
    url: `+rs.URL+`
    username: u
    password: p
`)
	one := "1"
	e.Call(t, 0, published(send("", event("Open", "sess1234", "27345", "*120#", "")), schemas.SessionNew, "27345", "*120#", nil))
	in := e.Call(t, 1, published(send("", event("Request", "sess1234", "27345", "*120#", "1")), schemas.SessionResume, "27345", "*120#", &one))
	reply := in.Reply("menu", true)
	e.SendOutbound(reply)
	rs.WaitRequest(func(r transporttest.Request) bool { return strings.Contains(r.Body, ">menu<") }, 30*time.Second)
	if ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == reply.MessageID }, 30*time.Second); ev.EventType != schemas.EventAck {
		t.Errorf("event %+v", ev)
	}
}

func TestParseResponse(t *testing.T) {
	for body, want := range map[string]string{
		`<Response status_code="0"/>`: "",
		`<Response status_code="3"/>`: "status_code: 3",
		`<Response status_code="-1"><Data name="e"><field name="a" value="b"/><field name="c" value="d"/></Data></Response>`: "a: b, c: d",
	} {
		if got, err := integrat.ParseResponse([]byte(body)); err != nil || got != want {
			t.Errorf("ParseResponse(%s) = %q, %v", body, got, err)
		}
	}
	for _, body := range []string{"", "<html>", `<Response/>`, `<Response status_code="x"/>`} {
		if _, err := integrat.ParseResponse([]byte(body)); err == nil {
			t.Errorf("ParseResponse(%q) accepted", body)
		}
	}
}

func TestIntegratConfigErrors(t *testing.T) {
	cases := map[string]string{
		"url":      "name: a, kind: integrat, transport_name: a, web_path: /x, username: u, password: p",
		"username": "name: a, kind: integrat, transport_name: a, web_path: /x, url: 'http://h/', password: p",
		"password": "name: a, kind: integrat, transport_name: a, web_path: /x, url: 'http://h/', username: u",
		"web_path": "name: a, kind: integrat, transport_name: a, url: 'http://h/', username: u, password: p",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
}

// FuzzParseEvent: no body makes the Higate reader panic; an accepted USSD
// event has its session, number and code.
func FuzzParseEvent(f *testing.F) {
	f.Add(event("Open", "s", "27345", "*120#", ""))
	f.Add(event("Request", "s", "27345", "*120#", "REQ"))
	f.Add(nonUSSD)
	f.Add(`<Message><Request Type="OnUSSEvent"/></Message>`)
	f.Fuzz(func(t *testing.T, body string) {
		e, err := integrat.ParseEvent([]byte(body))
		if err != nil {
			return
		}
		if ev, ok := e.SessionEvent(); ok && (e.Type != "OnUSSEvent" || ev == "") {
			t.Fatalf("published %+v as %q", e, ev)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add(`<Response status_code="0"/>`)
	f.Add(`<Response status_code="-1"><Data name="e"><field name="a" value="b"/></Data></Response>`)
	f.Fuzz(func(t *testing.T, body string) {
		reason, err := integrat.ParseResponse([]byte(body))
		if err != nil && reason != "" {
			t.Fatal("a reason with an error")
		}
	})
}
