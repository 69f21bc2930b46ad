package infobip_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/infobip"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(infobip.Kind()) }

const config = `
  - name: infobip
    kind: vumi.transports.infobip.InfobipTransport
    transport_name: infobip
    web_path: /session
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    web_username: gw
    web_password: pw
    ussd_session_timeout: 60
    request_timeout: 5
`

func post(name, path, body string) transporttest.Case {
	return transporttest.Case{Name: name, Method: http.MethodPost, Path: path, Body: body, ContentType: "application/json", User: "gw", Pass: "pw"}
}

func menu(content string, close bool) func(*schemas.UserMessage) *schemas.UserMessage {
	return transporttest.Reply(content, !close)
}

func TestInfobipSession(t *testing.T) {
	e := transporttest.Start(t, kinds(), "infobip", config)
	start := post("start opens a session", "/session/sess1/start",
		`{"msisdn": "2347067123456", "imsi": "62130", "text": "*123#", "shortCode": "*123#", "language": null, "optional": null, "ussdGwId": "live2", "sessionId": "sess1"}`)
	start.WantInbound = func(t testing.TB, m *schemas.UserMessage) {
		if m.From() != "2347067123456" || m.To() != "*123#" || m.Text() != "*123#" || m.Session() != schemas.SessionNew ||
			m.Provider == nil || *m.Provider != "live2" || *m.TransportType != "ussd" || m.TransportMetadata["session_id"] != "sess1" {
			t.Errorf("inbound %s", js(t, m))
		}
	}
	start.Reply = menu("1. Yes\n2. No", false)
	start.WantStatus = 200
	start.WantBody = `{"responseExitCode":200,"responseMessage":"","shouldClose":false,"ussdMenu":"1. Yes\n2. No"}`
	start.WantHeader = map[string]string{"Content-Type": "application/json"}

	response := post("response resumes it", "/session/sess1/response", `{"msisdn": "2347067123456", "text": "1"}`)
	response.WantInbound = func(t testing.TB, m *schemas.UserMessage) {
		if m.From() != "2347067123456" || m.To() != "*123#" || m.Text() != "1" || m.Session() != schemas.SessionResume {
			t.Errorf("inbound %s", js(t, m))
		}
	}
	response.Reply = menu("Thanks", true)
	response.WantStatus = 200
	response.WantBody = `{"responseExitCode":200,"responseMessage":"","shouldClose":true,"ussdMenu":"Thanks"}`

	end := post("end closes it at once", "/session/sess1/end", `{"msisdn": "2347067123456", "exitCode": 0, "reason": "done"}`)
	end.WantInbound = func(t testing.TB, m *schemas.UserMessage) {
		if m.From() != "2347067123456" || m.Content != nil || m.Session() != schemas.SessionClose {
			t.Errorf("inbound %s", js(t, m))
		}
	}
	end.WantStatus = 200
	end.WantBody = `{"responseExitCode":200,"responseMessage":""}`

	again := post("start of a started session", "/session/sess2/start", `{"msisdn": "1", "text": "x"}`)
	again.WantInbound = func(testing.TB, *schemas.UserMessage) {}
	again.Reply = menu("m", false)
	again.WantStatus = 200

	transporttest.Run(t, e, []transporttest.Case{
		start,
		{Name: "status of an active session", Path: "/session/sess1/status", User: "gw", Pass: "pw",
			WantStatus: 200, WantBody: `{"responseExitCode":200,"responseMessage":"","sessionActive":true}`},
		response,
		end,
		{Name: "status after the end", Path: "/session/sess1/status", User: "gw", Pass: "pw",
			WantStatus: 200, WantBody: `{"responseExitCode":200,"responseMessage":"","sessionActive":false}`},
		withStatus(post("response without a session", "/session/sess1/response", `{"msisdn": "1", "text": "1"}`),
			400, `{"responseExitCode":400,"responseMessage":"Invalid USSD session \"sess1\""}`),
		withStatus(post("end without a session", "/session/nope/end", `{}`),
			400, `{"responseExitCode":400,"responseMessage":"Invalid USSD session \"nope\""}`),
		again,
		withStatus(post("second start", "/session/sess2/start", `{"msisdn": "1", "text": "x"}`),
			400, `{"responseExitCode":400,"responseMessage":"USSD session \"sess2\" already started"}`),
		withStatus(post("invalid JSON", "/session/sess3/start", `{"msisdn": `),
			400, `{"responseExitCode":400,"responseMessage":"Invalid JSON"}`),
		withStatus(post("wrong JSON types", "/session/sess3/start", `{"msisdn": 5, "text": "x"}`),
			400, `{"responseExitCode":400,"responseMessage":"Invalid JSON"}`),
		withStatus(post("start without msisdn and text", "/session/sess3/start", `{"shortCode": "*1#"}`),
			400, `{"responseExitCode":400,"responseMessage":"Missing required JSON field: msisdn, text"}`),
		withStatus(post("response without text", "/session/sess2/response", `{"msisdn": "1"}`),
			400, `{"responseExitCode":400,"responseMessage":"Missing required JSON field: text"}`),
		withStatus(post("unknown method", "/session/sess2/restart", `{}`),
			400, `{"responseExitCode":400,"responseMessage":"Invalid request"}`),
		withStatus(post("no session id", "/session/start", `{"msisdn": "1", "text": "x"}`),
			400, `{"responseExitCode":400,"responseMessage":"Invalid request"}`),
		{Name: "no credentials", Method: http.MethodPost, Path: "/session/sess4/start", Body: `{"msisdn": "1", "text": "x"}`, WantStatus: 401},
		{Name: "wrong password", Method: http.MethodPost, Path: "/session/sess4/start", Body: `{"msisdn": "1", "text": "x"}`, User: "gw", Pass: "no", WantStatus: 401},
	})

	// Outbound messages that are not replies are nacked.
	push := schemas.NewUserMessage()
	push.ToAddr, push.FromAddr, push.Content = schemas.String("1"), schemas.String("*123#"), schemas.String("hello")
	e.SendOutbound(push)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == push.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || !strings.Contains(*ev.NackReason, "not a reply") {
		t.Errorf("event for a non-reply: %+v", ev)
	}
	// A reply to a request already answered goes to failures.
	late := e.Inbound()[0].Reply("late", true)
	e.SendOutbound(late)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, late.MessageID) }, 30*time.Second)
	if !strings.Contains(f.Reason, "no pending request") {
		t.Errorf("late reply failure: %s", f.Reason)
	}
}

func withStatus(c transporttest.Case, status int, body string) transporttest.Case {
	c.WantStatus, c.WantBody = status, body
	return c
}

// TestInfobipSessionAcrossInstancesAndExpiry: a session started on one
// instance continues on another (the session table is shared), and
// expires after ussd_session_timeout.
func TestInfobipSessionAcrossInstancesAndExpiry(t *testing.T) {
	e := transporttest.StartInstances(t, kinds(), "infobip", 2, `
  - name: infobip{i}
    kind: infobip_ussd
    transport_name: infobip
    web_path: /session
    web_port: ${PORT{i}}
    web_interface: 127.0.0.1
    ussd_session_timeout: 3
`)
	answer := func(base, path, body string) (int, string) {
		t.Helper()
		type res struct {
			code int
			body string
		}
		n := len(e.Inbound())
		done := make(chan res, 1)
		go func() {
			resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				done <- res{}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			done <- res{resp.StatusCode, string(b)}
		}()
		deadline := time.Now().Add(30 * time.Second)
		for len(e.Inbound()) == n {
			if time.Now().After(deadline) {
				t.Fatal("no inbound message")
			}
			time.Sleep(10 * time.Millisecond)
		}
		e.SendOutbound(e.Inbound()[n].Reply("menu", true))
		r := <-done
		return r.code, r.body
	}
	if code, body := answer(e.URLs[0], "/session/x1/start", `{"msisdn": "27831112222", "text": "*120#", "shortCode": "*120#"}`); code != 200 || !strings.Contains(body, `"ussdMenu":"menu"`) {
		t.Fatalf("start on instance 0: %d %s", code, body)
	}
	// The second instance knows the session (its view may lag a moment).
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(e.URLs[1] + "/session/x1/status")
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if st["sessionActive"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("instance 1 never saw the session")
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, body := answer(e.URLs[1], "/session/x1/response", `{"msisdn": "27831112222", "text": "2"}`)
	if code != 200 {
		t.Fatalf("response on instance 1: %d %s", code, body)
	}
	in := e.Inbound()
	if last := in[len(in)-1]; last.From() != "27831112222" || last.To() != "*120#" || last.Session() != schemas.SessionResume {
		t.Errorf("resumed inbound %s", js(t, last))
	}
	// After ussd_session_timeout the session is gone.
	time.Sleep(3500 * time.Millisecond)
	resp, err := http.Post(e.URLs[0]+"/session/x1/response", "application/json", strings.NewReader(`{"msisdn": "27831112222", "text": "3"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "Invalid USSD session") {
		t.Errorf("response after expiry: %d %s", resp.StatusCode, b)
	}
}

func TestInfobipConfigErrors(t *testing.T) {
	cases := map[string]string{
		"web_path":             "name: a, kind: infobip_ussd, transport_name: a",
		"ussd_session_timeout": "name: a, kind: infobip_ussd, transport_name: a, web_path: /x, ussd_session_timeout: -1",
		"web_username":         "name: a, kind: infobip_ussd, transport_name: a, web_path: /x, web_password: p",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
}

func js(t testing.TB, m *schemas.UserMessage) string {
	b, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
