package mediafonemc_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/mediafonemc"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/internal/kafkatest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(mediafonemc.Kind()) }

func config(outbound, extra string) string {
	return fmt.Sprintf(`
  - name: mediafone
    kind: vumi.transports.mediafonemc.MediafoneTransport
    transport_name: mediafone
    web_path: foo
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    username: user
    password: s3cret
    outbound_url: %s/send?account=7
    outbound_timeout: 5
    publish_status: true
%s`, outbound, extra)
}

func q(kv ...string) url.Values {
	v := url.Values{"to": {"12345"}, "from": {"2371234567"}, "sms": {"hello"}}
	return transporttest.Params(v, kv...)
}

func out(content string) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr, m.Content = schemas.String("9292"), schemas.String("2371234567"), schemas.String(content)
	m.TransportName, m.TransportType = schemas.String("mediafone"), schemas.String("sms")
	return m
}

func idBody(t testing.TB, body string, want string) {
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil || got["message_id"] != want {
		t.Errorf("body %q, want message_id %s", body, want)
	}
}

func TestMediafone(t *testing.T) {
	rs := transporttest.NewRecordingServer(t)
	e := transporttest.Start(t, kinds(), "mediafone", config(rs.URL, ""))
	var id string
	inbound := func(content string) func(t testing.TB, m *schemas.UserMessage) {
		return func(t testing.TB, m *schemas.UserMessage) {
			id = m.MessageID
			if m.Text() != content || m.From() != "2371234567" || m.To() != "12345" || *m.Provider != "vumi" ||
				*m.TransportType != "sms" || *m.TransportName != "mediafone" {
				t.Errorf("inbound %+v", m)
			}
		}
	}
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "inbound GET", Path: "/foo", Query: q(), WantInbound: inbound("hello"), WantStatus: 200,
			Check: func(t testing.TB, body string) { idBody(t, body, id) }},
		{Name: "inbound POST form", Method: "POST", Path: "/foo", Body: q("sms", "posted").Encode(), ContentType: "application/x-www-form-urlencoded",
			WantInbound: inbound("posted"), WantStatus: 200, Check: func(t testing.TB, body string) { idBody(t, body, id) }},
		{Name: "non-ASCII content", Path: "/foo", Query: q("sms", "öæł"), WantInbound: inbound("öæł"), WantStatus: 200},
		{Name: "unexpected parameter", Path: "/foo", Query: q("foo", "bar"), WantStatus: 400, WantBody: `{"unexpected_parameter":["foo"]}`},
		{Name: "missing parameter", Path: "/foo", Query: q("from", "<none>"), WantStatus: 400, WantBody: `{"missing_parameter":["from"]}`},
		{Name: "malformed form body", Method: "POST", Path: "/foo", Body: "sms=%zz", ContentType: "application/x-www-form-urlencoded", WantStatus: 400,
			WantBodyContains: []string{"invalid request"}},
		{Name: "health", Path: "/health", WantStatus: 200, WantBodyContains: []string{`"pending_requests":0`}},
	})

	// Outbound: a GET with the account and the message, acked on 200.
	m := out("hello world")
	e.SendOutbound(m)
	req := rs.WaitRequest(func(r transporttest.Request) bool { return url.Values(r.Query).Get("msg") == "hello world" }, 30*time.Second)
	want := url.Values{"account": {"7"}, "username": {"user"}, "password": {"s3cret"}, "phone": {"2371234567"}, "msg": {"hello world"}}
	if req.Method != "GET" || req.Path != "/send" || url.Values(req.Query).Encode() != want.Encode() {
		t.Errorf("outbound request %s %s %v", req.Method, req.Path, req.Query)
	}
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventAck && ev.UserMessageID == m.MessageID && *ev.SentMessageID == m.MessageID
	}, 30*time.Second)
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "outbound" && s.Status == schemas.StatusOK }, 30*time.Second)

	// Any other answer is a nack naming the code; a 5xx also marks the
	// provider degraded.
	for _, code := range []int{404, 500} {
		rs.Respond(transporttest.Response{Status: code, Body: "Not Found"})
		m := out(fmt.Sprint("nack ", code))
		e.SendOutbound(m)
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
		if ev.EventType != schemas.EventNack || *ev.NackReason != fmt.Sprintf("Unexpected response code: %d", code) || *ev.SentMessageID != m.MessageID {
			t.Errorf("code %d: event %s %v", code, ev.EventType, ev.NackReason)
		}
	}
	e.WaitStatus(func(s *schemas.Status) bool {
		return s.Component == "outbound" && s.Status == schemas.StatusDegraded && s.Type == "http_error"
	}, 30*time.Second)
}

func TestMediafoneAuth(t *testing.T) {
	rs := transporttest.NewRecordingServer(t)
	e := transporttest.Start(t, kinds(), "mediafone", config(rs.URL, "    web_username: mf\n    web_password: pw\n"))
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "no credentials", Path: "/foo", Query: q(), WantStatus: 401},
		{Name: "wrong password", Path: "/foo", Query: q(), User: "mf", Pass: "nope", WantStatus: 401},
		{Name: "right credentials", Path: "/foo", Query: q(), User: "mf", Pass: "pw", WantStatus: 200,
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Text() != "hello" {
					t.Errorf("inbound %+v", m)
				}
			}},
	})
}

func TestMediafoneUnreachable(t *testing.T) {
	unreachable := transporttest.ClosedURL(t)
	e := transporttest.Start(t, kinds(), "mediafone", config(unreachable, ""))
	m := out("hi")
	e.SendOutbound(m)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
	if f.FailureCode == nil || *f.FailureCode != schemas.FailureTemporary || strings.Contains(f.Reason, "s3cret") || !strings.Contains(f.Reason, "/send") {
		t.Errorf("failure %s (%v)", f.Reason, f.FailureCode)
	}
	e.WaitStatus(func(s *schemas.Status) bool {
		return s.Component == "outbound" && s.Status == schemas.StatusDown && s.Type == "connection_failed" && !strings.Contains(s.Message, "s3cret")
	}, 30*time.Second)
}

func TestMediafoneConfigErrors(t *testing.T) {
	base := "name: a, kind: mediafonemc, transport_name: a, web_path: /x, username: u, password: p, outbound_url: 'http://h/'"
	cases := map[string]string{
		"username":     strings.Replace(base, "username: u, ", "", 1),
		"password":     strings.Replace(base, "password: p, ", "", 1),
		"outbound_url": strings.Replace(base, "http://h/", "ftp://h/", 1),
		"web_path":     strings.Replace(base, "web_path: /x, ", "", 1),
	}
	transporttest.ConfigErrors(t, kinds(), cases)
	transporttest.ValidConfig(t, kinds(), base)
}

// TestMediafoneKafkaDown: while Kafka takes no messages, an inbound
// message is answered 503 with a JSON error within about publish_timeout;
// once it takes them again, 200 with the message id.
func TestMediafoneKafkaDown(t *testing.T) {
	e := transporttest.Start(t, kinds(), "mediafone", config(transporttest.ClosedURL(t), "    publish_timeout: 0.5\n"))
	release := kafkatest.BlockProduce(e.Broker.Cluster())
	get := func() (int, string) {
		t.Helper()
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(e.BaseURL + "/foo?" + q().Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 503 || body != `{"error": "message not accepted, try again"}` {
		t.Errorf("with Kafka down: %d %s", code, body)
	}
	release()
	// The producer may still be backing off: poll until it publishes.
	var ans map[string]string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, body := get()
		if code == 200 {
			if err := json.Unmarshal([]byte(body), &ans); err != nil || ans["message_id"] == "" {
				t.Fatalf("with Kafka back: %d %s", code, body)
			}
			break
		}
		if code != 503 || time.Now().After(deadline) {
			t.Fatalf("with Kafka back: %d %s", code, body)
		}
	}
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.MessageID == ans["message_id"] }, 30*time.Second)
}
