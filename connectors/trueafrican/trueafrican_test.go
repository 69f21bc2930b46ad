package trueafrican_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/connectors/trueafrican"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(trueafrican.Kind()) }

// call is an XML-RPC call with one struct of string members.
func call(method string, kv ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<?xml version='1.0'?>\n<methodCall><methodName>%s</methodName><params><param><value><struct>", method)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "<member><name>%s</name><value><string>%s</string></value></member>", kv[i], kv[i+1])
	}
	b.WriteString("</struct></value></param></params></methodCall>")
	return b.String()
}

func rpc(name, body string) transporttest.Case {
	return transporttest.Case{Name: name, Method: http.MethodPost, Path: "/", Body: body, ContentType: "text/xml"}
}

// resp is the expected XML-RPC response struct (members sorted by name).
func resp(kv ...string) string {
	var b strings.Builder
	b.WriteString("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n")
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "<member>\n<name>%s</name>\n<value><string>%s</string></value>\n</member>\n", kv[i], kv[i+1])
	}
	b.WriteString("</struct></value>\n</param>\n</params>\n</methodResponse>\n")
	return b.String()
}

var errorResp = resp("message", "We encountered an error while processing your message", "type", "end")

func TestTrueAfrican(t *testing.T) {
	e := transporttest.Start(t, kinds(), "ta", `
  - name: ta
    kind: vumi.transports.trueafrican.TrueAfricanUssdTransport
    transport_name: ta
    port: ${WEB_PORT}
    interface: 127.0.0.1
    session_timeout: 60
    request_timeout: 3
`)
	init := rpc("USSD.INIT starts a session", call("USSD.INIT", "msisdn", "+256712345678", "shortcode", "*7777#", "session", "s1"))
	init.WantInbound = func(t testing.TB, m *schemas.UserMessage) {
		if m.Content != nil || m.From() != "+256712345678" || m.To() != "*7777#" || m.Session() != schemas.SessionNew ||
			*m.TransportType != "ussd" || m.TransportMetadata["session_id"] != "s1" {
			t.Errorf("inbound %+v", m)
		}
	}
	init.Reply = transporttest.Reply("Menu <1>", true)
	init.WantStatus, init.WantBody = 200, resp("message", "Menu &lt;1&gt;", "session", "s1", "type", "cont")

	cont := rpc("USSD.CONT resumes it", call("USSD.CONT", "session", "s1", "response", "1"))
	cont.WantInbound = func(t testing.TB, m *schemas.UserMessage) {
		if m.Text() != "1" || m.From() != "+256712345678" || m.To() != "*7777#" || m.Session() != schemas.SessionResume {
			t.Errorf("inbound %+v", m)
		}
	}
	cont.Reply = transporttest.Reply("Bye", false)
	cont.WantStatus, cont.WantBody = 200, resp("message", "Bye", "session", "s1", "type", "end")

	end := rpc("USSD.END closes it at once", call("USSD.END", "session", "s1"))
	end.WantInbound = func(t testing.TB, m *schemas.UserMessage) {
		if m.Content != nil || m.Session() != schemas.SessionClose || m.From() != "+256712345678" {
			t.Errorf("inbound %+v", m)
		}
	}
	end.WantStatus, end.WantBody = 200, resp()

	timeout := rpc("no reply in time: the error struct", call("USSD.INIT", "msisdn", "1", "shortcode", "*1#", "session", "s2"))
	timeout.WantInbound = func(testing.TB, *schemas.UserMessage) {}
	timeout.WantStatus, timeout.WantBody = 200, errorResp

	transporttest.Run(t, e, []transporttest.Case{
		init, cont, end,
		withWant(rpc("CONT of an ended session", call("USSD.CONT", "session", "s1", "response", "2")), 200, errorResp),
		withWant(rpc("END of an unknown session", call("USSD.END", "session", "nope")), 200, errorResp),
		timeout,
		withWant(rpc("missing members", call("USSD.INIT", "session", "s3")), 400, "missing struct members: msisdn, shortcode"),
		withWant(rpc("unknown method", call("USSD.RESTART", "session", "s3")), 400, "procedure USSD.RESTART not found"),
		withWant(rpc("not XML", "{}"), 400, "invalid XML-RPC call"),
		withWant(rpc("no struct", "<methodCall><methodName>USSD.END</methodName><params><param><value><string>s</string></value></param></params></methodCall>"),
			400, "one parameter must be a struct"),
		{Name: "GET is not a call", Path: "/", WantStatus: 405},
	})
	// Replies without a session id are nacked; late ones go to failures.
	in := e.Inbound()[0]
	bad := in.Reply("x", true)
	bad.TransportMetadata = nil
	e.SendOutbound(bad)
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventNack && ev.UserMessageID == bad.MessageID && *ev.NackReason == "Missing in_reply_to, content or session_id fields"
	}, 30*time.Second)
	late := in.Reply("late", true)
	e.SendOutbound(late)
	e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, late.MessageID) }, 30*time.Second)
}

func withWant(c transporttest.Case, status int, body string) transporttest.Case {
	c.WantStatus = status
	if strings.HasPrefix(body, "<?xml") {
		c.WantBody = body
	} else {
		c.WantBodyContains = []string{"<fault>", body}
	}
	return c
}

func TestTrueAfricanConfigErrors(t *testing.T) {
	cases := map[string]string{
		"port":            "name: a, kind: trueafrican_ussd, transport_name: a",
		"session_timeout": "name: a, kind: trueafrican_ussd, transport_name: a, port: 0, session_timeout: -1",
		"request_timeout": "name: a, kind: trueafrican_ussd, transport_name: a, port: 0, request_timeout: -1",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
	if _, err := transporttest.LoadWorker(kinds(), "name: a, kind: trueafrican_ussd, port: 0"); err == nil || !strings.Contains(err.Error(), "key transport_name") {
		t.Errorf("transport_name: %v", err)
	}
}
