package safaricom_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/safaricom"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(safaricom.Kind()) }

const config = `
  - name: safaricom
    kind: vumi.transports.safaricom.SafaricomTransport
    transport_name: safaricom
    web_path: /api/v1/safaricom/ussd/
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    request_timeout: 10
`

func q(session, params string, extra ...string) url.Values {
	v := url.Values{"ORIG": {"27761234567"}, "DEST": {"167"}, "SESSION_ID": {session}, "USSD_PARAMS": {params}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

// step is a request that produces an inbound message with the given
// session event, to_addr and content, answered by a reply.
func step(name string, query url.Values, ev schemas.SessionEvent, to, content, reply string, close bool, body string) transporttest.Case {
	return transporttest.Case{
		Name: name, Path: "/api/v1/safaricom/ussd/", Query: query,
		WantInbound: func(t testing.TB, m *schemas.UserMessage) {
			meta, _ := m.TransportMetadata["safaricom"].(map[string]any)
			if m.Session() != ev || m.To() != to || m.Content == nil || m.Text() != content || m.From() != query.Get("ORIG") ||
				m.Provider == nil || *m.Provider != "safaricom" || *m.TransportType != "ussd" || meta["session_id"] != query.Get("SESSION_ID") {
				b, _ := m.MarshalJSON()
				t.Errorf("inbound %s; want %s to %q content %q", b, ev, to, content)
			}
		},
		Reply:      transporttest.Reply(reply, !close),
		WantStatus: 200, WantBody: body, WantHeader: map[string]string{"Content-Type": "text/plain"},
	}
}

func TestSafaricom(t *testing.T) {
	e := transporttest.Start(t, kinds(), "safaricom", config)
	transporttest.Run(t, e, []transporttest.Case{
		step("first request starts a session with the full code", q("s1", "7"), schemas.SessionNew, "*167*7#", "", "ussd message", false, "CON ussd message"),
		step("next request resumes it with the new input", q("s1", "7*a"), schemas.SessionResume, "*167*7#", "a", "more", false, "CON more"),
		step("asterisks are input too", q("s1", "7*a*****"), schemas.SessionResume, "*167*7#", "****", "x", false, "CON x"),
		step("the same parameters again resume with nothing", q("s1", "7*a*****"), schemas.SessionResume, "*167*7#", "", "bye", true, "END bye"),
		step("a bare code starts a session", q("s2", ""), schemas.SessionNew, "*167#", "", "menu", false, "CON menu"),
		step("the first input after a bare code", q("s2", "1"), schemas.SessionResume, "*167#", "1", "menu 2", false, "CON menu 2"),
		step("the second input", q("s2", "1*1"), schemas.SessionResume, "*167#", "1", "done", true, "END done"),
		{Name: "missing DEST", Path: "/api/v1/safaricom/ussd/", Query: url.Values{"ORIG": {"1"}, "SESSION_ID": {"s3"}, "USSD_PARAMS": {"7*a"}},
			WantStatus: 400, WantBody: `{"missing_parameter":["DEST"]}`},
		{Name: "unexpected parameter in strict mode", Path: "/api/v1/safaricom/ussd/", Query: q("s3", "7", "foo", "bar"),
			WantStatus: 400, WantBody: `{"unexpected_parameter":["foo"]}`},
		{Name: "nothing at all", Path: "/api/v1/safaricom/ussd/",
			WantStatus: 400, WantBody: `{"missing_parameter":["DEST","ORIG","SESSION_ID","USSD_PARAMS"]}`},
		{Name: "wrong path", Path: "/elsewhere", Query: q("s3", "7"), WantStatus: 404},
	})

	// A reply without content and a message that is not a reply are
	// nacked naming the missing fields.
	in := e.Inbound()[0]
	empty := in.Reply("", true)
	e.SendOutbound(empty)
	push := schemas.NewUserMessage()
	push.ToAddr, push.Content = schemas.String("27761234567"), schemas.String("hi")
	e.SendOutbound(push)
	for id, reason := range map[string]string{empty.MessageID: "Missing fields: content", push.MessageID: "Missing fields: in_reply_to"} {
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == id }, 30*time.Second)
		if ev.EventType != schemas.EventNack || ev.NackReason == nil || *ev.NackReason != reason {
			t.Errorf("event for %s: %+v, want nack %q", id, ev, reason)
		}
	}
	// Answered replies were acked.
	ack := e.WaitEvent(func(ev *schemas.Event) bool { return ev.EventType == schemas.EventAck }, 30*time.Second)
	if ack.SentMessageID == nil || *ack.SentMessageID != ack.UserMessageID {
		t.Errorf("ack %+v", ack)
	}
	// A second reply to an answered request goes to failures.
	late := in.Reply("late", true)
	e.SendOutbound(late)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, late.MessageID) }, 30*time.Second)
	if !strings.Contains(f.Reason, "no pending request") {
		t.Errorf("late reply failure: %s", f.Reason)
	}
}

// TestSafaricomAcrossInstancesAndExpiry: a session started on one
// instance continues on another, saving the session does not extend its
// life, and after ussd_session_timeout the same session id starts anew.
func TestSafaricomAcrossInstancesAndExpiry(t *testing.T) {
	e := transporttest.StartInstances(t, kinds(), "safaricom", 2, `
  - name: safaricom{i}
    kind: safaricom_ussd
    transport_name: safaricom
    web_path: /ussd
    web_port: ${PORT{i}}
    web_interface: 127.0.0.1
    ussd_session_timeout: 4
    validation_mode: permissive
`)
	started := time.Now()
	first := transporttest.Case{Path: "/ussd", Query: q("x1", "7", "extra", "ignored"), Reply: transporttest.Reply("menu", true), WantBody: "CON menu"}
	in := e.Call(t, 0, first)
	if in.Session() != schemas.SessionNew || in.To() != "*167*7#" {
		t.Fatalf("first inbound: %s %s", in.Session(), in.To())
	}
	// The other instance continues the session, once its copy of the
	// table has read the session.
	e.WaitSessionTable(t, 1, "safaricom")
	in = e.Call(t, 1, transporttest.Case{Path: "/ussd", Query: q("x1", "7*2"), Reply: transporttest.Reply("ok", true), WantBody: "CON ok"})
	if in.Session() != schemas.SessionResume || in.Text() != "2" || in.To() != "*167*7#" {
		t.Fatalf("instance 1: %s %q %s", in.Session(), in.Text(), in.To())
	}
	// Keep using (and saving) it: the session still ends 4 s after its
	// start.
	params := "7*2"
	for i := 0; time.Since(started) < 3*time.Second; i++ {
		params += fmt.Sprint("*", i)
		in = e.Call(t, 1, transporttest.Case{Path: "/ussd", Query: q("x1", params), Reply: transporttest.Reply("ok", true), WantBody: "CON ok"})
		if in.Session() != schemas.SessionResume || in.Text() != fmt.Sprint(i) {
			t.Fatalf("busy session: %s %q", in.Session(), in.Text())
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(time.Until(started.Add(5 * time.Second)))
	in = e.Call(t, 0, transporttest.Case{Path: "/ussd", Query: q("x1", "7*2*3"), Reply: transporttest.Reply("again", false), WantBody: "END again"})
	if in.Session() != schemas.SessionNew || in.To() != "*167*7*2*3#" || in.Text() != "" {
		t.Errorf("after expiry: %s %q %s", in.Session(), in.Text(), in.To())
	}
}

func TestSafaricomConfigErrors(t *testing.T) {
	cases := map[string]string{
		"web_path":             "name: a, kind: safaricom_ussd, transport_name: a",
		"ussd_session_timeout": "name: a, kind: safaricom_ussd, transport_name: a, web_path: /x, ussd_session_timeout: -1",
		"validation_mode":      "name: a, kind: safaricom_ussd, transport_name: a, web_path: /x, validation_mode: lax",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
}

func TestNewInput(t *testing.T) {
	for _, c := range []struct{ last, params, want string }{
		{"7*a*b", "7*a*b*c", "c"},
		{"7*a*b", "7*a*b*****", "****"},
		{"7*a*b**", "7*a*b*****", "**"},
		{"", "1", "1"},
		{"1", "1*1", "1"},
		{"7*3", "7*3", ""},
		{"7*3*9", "7", ""},
		{"é", "é*ü", "ü"},
	} {
		if got := safaricom.NewInput(c.last, c.params); got != c.want {
			t.Errorf("NewInput(%q, %q) = %q, want %q", c.last, c.params, got, c.want)
		}
	}
}

// FuzzParseRequest: no parameters make the request reader or the input
// arithmetic panic; what is accepted has every field, and the new input
// is never longer than the parameters.
func FuzzParseRequest(f *testing.F) {
	f.Add("ORIG=27761234567&DEST=167&SESSION_ID=s&USSD_PARAMS=7*a", "7")
	f.Add("ORIG=&DEST=&SESSION_ID=&USSD_PARAMS=", "")
	f.Add("ORIG=1&ORIG=2&x=%zz", "7*a*b*c*d")
	f.Fuzz(func(t *testing.T, query, last string) {
		form, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for _, strict := range []bool{true, false} {
			req, errs := safaricom.ParseRequest(form, strict)
			if errs != nil {
				if len(errs) == 0 {
					t.Fatal("empty errors")
				}
				continue
			}
			for _, k := range []string{"ORIG", "DEST", "SESSION_ID", "USSD_PARAMS"} {
				if _, ok := form[k]; !ok {
					t.Fatalf("accepted without %s", k)
				}
			}
			if in := safaricom.NewInput(last, req.USSDParams); len([]rune(in)) > len([]rune(req.USSDParams)) {
				t.Fatalf("input %q longer than params %q", in, req.USSDParams)
			}
			_ = safaricom.DialledCode(req.Dest, req.USSDParams)
		}
	})
}

// TestSafaricomKafkaDown: with the broker gone, a request (whose new
// session cannot be stored, nor its message published) is answered 503
// within about publish_timeout instead of hanging.
func TestSafaricomKafkaDown(t *testing.T) {
	e := transporttest.Start(t, kinds(), "safaricom", `
  - name: safaricom
    kind: safaricom_ussd
    transport_name: safaricom
    web_path: /ussd
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    publish_timeout: 0.5
`)
	e.Broker.Cluster().Close()
	// The worker may be restarting (its supervisor restarts it when its
	// Kafka clients give up): retry until the server answers, and time the
	// request that is answered.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		start := time.Now()
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(e.BaseURL + "/ussd?" + q(fmt.Sprint("down", i), "7").Encode())
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.HasPrefix(string(body), "END ") {
			t.Errorf("answer %d %q, want 503 END …", resp.StatusCode, body)
		}
		took := time.Since(start)
		t.Logf("answered %d after %v", resp.StatusCode, took)
		if took > 3*time.Second {
			t.Errorf("answered after %v, want about 0.5 s", took)
		}
		return
	}
}
