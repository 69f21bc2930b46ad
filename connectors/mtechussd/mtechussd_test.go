package mtechussd_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/mtechussd"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(mtechussd.Kind()) }

const config = `
  - name: mtech
    kind: vumi.transports.mtech_ussd.MtechUssdTransport
    transport_name: mtech
    transport_type: ussd
    ussd_string_prefix: '*120*666#'
    web_path: /foo
    web_host: 127.0.0.1
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    username: testuser
    password: testpass
    request_timeout: 10
`

const sid = "a41739890287485d968ea66e8b44bfd3"

// page is an MTECH request page with the given elements, in order.
func page(session string, kv ...string) string {
	lines := []string{`<?xml version="1.0" encoding="UTF-8"?>`, `<page version="2.0">`, "  <session_id>" + session + "</session_id>"}
	for i := 0; i+1 < len(kv); i += 2 {
		lines = append(lines, fmt.Sprintf("  <%s>%s</%s>", kv[i], kv[i+1], kv[i]))
	}
	return strings.Join(append(lines, "</page>"), "\n")
}

func post(name, body string) transporttest.Case {
	return transporttest.Case{Name: name, Method: http.MethodPost, Path: "/foo", Body: body, ContentType: "text/xml"}
}

func step(name, body string, ev schemas.SessionEvent, from, to, content, reply string, close bool, want string) transporttest.Case {
	c := post(name, body)
	c.WantInbound = func(t testing.TB, m *schemas.UserMessage) {
		if m.Session() != ev || m.From() != from || m.To() != to || m.Text() != content || *m.TransportType != "ussd" ||
			m.TransportMetadata["session_id"] != sid {
			b, _ := m.MarshalJSON()
			t.Errorf("inbound %s", b)
		}
	}
	c.Reply = transporttest.Reply(reply, !close)
	c.WantStatus, c.WantBody = 200, want
	c.WantHeader = map[string]string{"Content-Type": "text/plain"}
	return c
}

const head = `<?xml version='1.0' encoding='UTF-8'?><page version="2.0"><session_id>` + sid + `</session_id>`

func TestMtech(t *testing.T) {
	e := transporttest.Start(t, kinds(), "mtech", config)
	transporttest.Run(t, e, []transporttest.Case{
		step("page 0 with a number starts a session", page(sid, "mobile_number", "2348085832481", "page_id", "0", "data", "testmenu", "gate", "gateid"),
			schemas.SessionNew, "2348085832481", "gateid", "testmenu", "OK\n1 < 2", false,
			head+`<div>OK<br />1 &lt; 2</div><navigation><link accesskey="*" pageId="indexX" /></navigation></page>`),
		step("a later page resumes it", page(sid, "page_id", "indexX", "data", "foo"),
			schemas.SessionResume, "2348085832481", "gateid", "foo", "OK", false,
			head+`<div>OK</div><navigation><link accesskey="*" pageId="indexX" /></navigation></page>`),
		step("page 0 without a number within a session resumes it", page(sid, "page_id", "0", "data", "bar"),
			schemas.SessionResume, "2348085832481", "gateid", "bar", "Bye & thanks", true,
			head+`<div>Bye &amp; thanks</div></page>`),
		{Name: "a status page (cancel) is answered with an empty page", Method: http.MethodPost, Path: "/foo", Body: page(sid, "status", "1"),
			WantStatus: 200, WantBody: head + `</page>`},
		withStatus(post("a page of an unknown session", page("nope", "page_id", "indexX", "data", "foo")), 400, ""),
		withStatus(post("empty request", ""), 400, "invalid XML: EOF"),
		withStatus(post("not XML", "blah"), 400, "invalid XML: EOF"),
		withStatus(post("no session_id", `<page version="2.0"><page_id>0</page_id></page>`), 400, "the page has no session_id"),
		withStatus(post("neither status nor page_id", page(sid, "data", "x")), 400, "the page has neither status nor page_id"),
		withStatus(post("truncated XML", `<page><session_id>x</session_id><page_id>`), 400, "invalid XML: XML syntax error on line 1: unexpected EOF"),
	})

	// Non-replies and replies without a session id are nacked.
	push := schemas.NewUserMessage()
	push.ToAddr, push.Content = schemas.String("2348085832481"), schemas.String("outbound")
	e.SendOutbound(push)
	noSession := e.Inbound()[0].Reply("x", true)
	noSession.TransportMetadata = nil
	e.SendOutbound(noSession)
	for _, id := range []string{push.MessageID, noSession.MessageID} {
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == id }, 30*time.Second)
		if ev.EventType != schemas.EventNack || ev.NackReason == nil || *ev.NackReason != "Missing in_reply_to, content or session_id" {
			t.Errorf("event for %s: %+v", id, ev)
		}
	}
	late := e.Inbound()[0].Reply("late", true)
	e.SendOutbound(late)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, late.MessageID) }, 30*time.Second)
	if !strings.Contains(f.Reason, "no pending request") {
		t.Errorf("late reply failure: %s", f.Reason)
	}
}

func withStatus(c transporttest.Case, status int, body string) transporttest.Case {
	c.WantStatus = status
	c.Check = func(t testing.TB, got string) {
		if got != body {
			t.Errorf("body %q, want %q", got, body)
		}
	}
	return c
}

// TestMtechAcrossInstancesAndExpiry: a session started on one instance
// continues on the other, and is gone ussd_session_timeout after its start.
func TestMtechAcrossInstancesAndExpiry(t *testing.T) {
	e := transporttest.StartInstances(t, kinds(), "mtech", 2, `
  - name: mtech{i}
    kind: mtech_ussd
    transport_name: mtech
    web_path: /foo
    web_port: ${PORT{i}}
    web_interface: 127.0.0.1
    ussd_session_timeout: 3
`)
	reply := transporttest.Reply("ok", true)
	started := time.Now()
	c := post("", page(sid, "mobile_number", "234", "page_id", "0", "data", "hi", "gate", "g"))
	c.Reply, c.WantStatus = reply, 200
	if in := e.Call(t, 0, c); in.Session() != schemas.SessionNew {
		t.Fatalf("start: %s", in.Session())
	}
	e.WaitSessionTable(t, 1, "mtech")
	c = post("", page(sid, "page_id", "indexX", "data", "2"))
	c.Reply, c.WantStatus = reply, 200
	if in := e.Call(t, 1, c); in.Session() != schemas.SessionResume || in.From() != "234" || in.To() != "g" || in.Text() != "2" {
		b, _ := in.MarshalJSON()
		t.Fatalf("instance 1: %s", b)
	}
	time.Sleep(time.Until(started.Add(4 * time.Second)))
	if got := e.Call(t, 1, withStatus(post("", page(sid, "page_id", "indexX", "data", "3")), 400, "")); got != nil {
		t.Errorf("expired session published %v", got)
	}
}

func TestResponseXML(t *testing.T) {
	title := "LUNCH"
	r := &mtechussd.Response{SessionID: "sid123", Title: &title, Text: []string{"Please choose:"}}
	r.AddMenuItem("chicken", "1")
	r.AddMenuItem(`beef "&" <fish>`, "2")
	want := `<?xml version='1.0' encoding='UTF-8'?><page version="2.0"><session_id>sid123</session_id><title>LUNCH</title>` +
		`<div>Please choose:</div><navigation><link accesskey="1" pageId="index1">chicken</link>` +
		`<link accesskey="2" pageId="index2">beef "&amp;" &lt;fish&gt;</link></navigation></page>`
	if got := string(r.XML()); got != want {
		t.Errorf("XML\n got %s\nwant %s", got, want)
	}
	empty := &mtechussd.Response{SessionID: "sid123"}
	if got := string(empty.XML()); got != `<?xml version='1.0' encoding='UTF-8'?><page version="2.0"><session_id>sid123</session_id></page>` {
		t.Errorf("empty page %s", got)
	}
}

func TestMtechConfigErrors(t *testing.T) {
	cases := map[string]string{
		"web_path":             "name: a, kind: mtech_ussd, transport_name: a",
		"ussd_session_timeout": "name: a, kind: mtech_ussd, transport_name: a, web_path: /x, ussd_session_timeout: -1",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
}

// FuzzParsePage: no body makes the page reader panic; an accepted page
// has a session id and a status or page id, and its answer has no line
// break.
func FuzzParsePage(f *testing.F) {
	f.Add(page(sid, "mobile_number", "234", "page_id", "0", "data", "testmenu", "gate", "g"))
	f.Add(page(sid, "status", "1"))
	f.Add(`<page><session_id/><page_id>indexX</page_id><data>a&#10;b</data></page>`)
	f.Add("blah")
	f.Fuzz(func(t *testing.T, body string) {
		p, err := mtechussd.ParsePage([]byte(body))
		if err != nil {
			return
		}
		if p.SessionID == nil || (p.Status == nil && p.PageID == nil) {
			t.Fatal("accepted an incomplete page")
		}
		r := &mtechussd.Response{SessionID: *p.SessionID}
		if p.Data != nil {
			r.Text = []string{*p.Data}
		}
		r.AddFreetextOption()
		if strings.Contains(string(r.XML()), "\n") {
			t.Fatal("line break in the answer")
		}
	})
}
