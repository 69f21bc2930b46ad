package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/httpapi"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/processors/apps/words"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry {
	return topology.NewRegistry().Add(httpapi.Kind()).Add(words.Kinds()...)
}

func reply(content string) func(in *schemas.UserMessage) *schemas.UserMessage {
	return func(in *schemas.UserMessage) *schemas.UserMessage { return in.Reply(content, true) }
}

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

const syncConfig = `
  - name: api
    kind: vumi.transports.api.HttpApiTransport
    transport_name: api
    web_path: /api/v1/send
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    web_username: user
    web_password: s3cret
    reply_expected: true
    request_timeout: 2
    request_cleanup_interval: 1
    request_timeout_status_code: 504
    request_timeout_body: "too slow"
    field_defaults: {from_addr: "default-from"}
`

func TestHttpApiReplyExpected(t *testing.T) {
	e := transporttest.Start(t, kinds(), "api", syncConfig)
	ok := func(kv ...string) url.Values {
		return q(append([]string{"content", "ping", "to_addr", "1234"}, kv...)...)
	}
	var replyID string
	transporttest.Run(t, e, []transporttest.Case{
		{
			Name: "request waits for the reply", Path: "/api/v1/send", Query: ok("from_addr", "+27831234567"), User: "user", Pass: "s3cret",
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Text() != "ping" || m.To() != "1234" || m.From() != "+27831234567" || *m.TransportType != "http_api" || m.Transport() != "api" {
					t.Errorf("inbound %s", js(t, m))
				}
			},
			Reply: func(in *schemas.UserMessage) *schemas.UserMessage {
				r := in.Reply("pong", true)
				replyID = r.MessageID
				return r
			},
			WantStatus: 200, WantBody: "pong", WantHeader: map[string]string{"Content-Type": "text/plain"},
		},
		{
			Name: "field_defaults fill from_addr", Method: http.MethodPost, Path: "/api/v1/send", ContentType: "application/x-www-form-urlencoded",
			Body: ok().Encode(), User: "user", Pass: "s3cret",
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.From() != "default-from" {
					t.Errorf("from_addr = %q", m.From())
				}
			},
			Reply: reply("posted"), WantStatus: 200, WantBody: "posted",
		},
		{
			Name: "session_event passes through", Path: "/api/v1/send", Query: ok("session_event", "new"), User: "user", Pass: "s3cret",
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Session() != schemas.SessionNew {
					t.Errorf("session_event = %q", m.Session())
				}
			},
			Reply: reply("welcome"), WantStatus: 200, WantBody: "welcome",
		},
		{Name: "missing parameters", Path: "/api/v1/send", Query: q("content", "x"), User: "user", Pass: "s3cret",
			WantStatus: 400, WantBody: `{"missing_parameter":["to_addr"]}`},
		{Name: "unexpected parameter", Path: "/api/v1/send", Query: ok("colour", "red"), User: "user", Pass: "s3cret",
			WantStatus: 400, WantBody: `{"unexpected_parameter":["colour"]}`},
		{Name: "invalid session event", Path: "/api/v1/send", Query: ok("session_event", "continue"), User: "user", Pass: "s3cret",
			WantStatus: 400, WantBody: `{"invalid_parameter":["session_event"]}`},
		{Name: "no credentials", Path: "/api/v1/send", Query: ok(), WantStatus: 401,
			WantHeader: map[string]string{"WWW-Authenticate": `Basic realm="Vumi HTTP RPC transport"`}},
		{Name: "wrong password", Path: "/api/v1/send", Query: ok(), User: "user", Pass: "nope", WantStatus: 401},
		{Name: "wrong path", Path: "/elsewhere", Query: ok(), User: "user", Pass: "s3cret", WantStatus: 404},
		{Name: "wrong method", Method: http.MethodDelete, Path: "/api/v1/send", User: "user", Pass: "s3cret", WantStatus: 405},
		{Name: "health needs no auth", Path: "/health", WantStatus: 200, WantBodyContains: []string{`"pending_requests":0`}},
		{
			Name: "timeout", Path: "/api/v1/send", Query: ok(), User: "user", Pass: "s3cret",
			WantInbound: func(testing.TB, *schemas.UserMessage) {},
			WantStatus:  504, WantBody: "too slow",
		},
	})
	// The reply was acked, with its own id as sent_message_id.
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventAck && ev.UserMessageID == replyID && *ev.SentMessageID == replyID
	}, 30*time.Second)

	// A reply to the timed-out request goes to failures, not into the void.
	in := e.Inbound()
	late := in[len(in)-1].Reply("too late", true)
	e.SendOutbound(late)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, late.MessageID) }, 30*time.Second)
	if !strings.Contains(f.Reason, "no pending request") || f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent {
		t.Errorf("late reply failure: %s (%v)", f.Reason, f.FailureCode)
	}
	// A reply without content is nacked.
	bad := in[0].Reply("", true)
	bad.Content = nil
	e.SendOutbound(bad)
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventNack && ev.UserMessageID == bad.MessageID && *ev.NackReason == "Missing fields: content"
	}, 30*time.Second)
}

func TestHttpApiNoReplyExpected(t *testing.T) {
	e := transporttest.Start(t, kinds(), "api", `
  - name: api
    kind: http_api
    transport_name: api
    web_path: /send
    web_port: ${WEB_PORT}
    validation_mode: permissive
    allowed_fields: [content, to_addr, from_addr, provider]
`)
	var id string
	transporttest.Run(t, e, []transporttest.Case{{
		Name: "answers with the message id", Path: "/send", Query: q("content", "hi", "to_addr", "1", "from_addr", "2", "provider", "mtn"),
		WantInbound: func(t testing.TB, m *schemas.UserMessage) {
			id = m.MessageID
			if m.Provider == nil || *m.Provider != "mtn" {
				t.Errorf("provider %v", m.Provider)
			}
		},
		WantStatus: 200,
		Check: func(t testing.TB, body string) {
			var got map[string]string
			if err := json.Unmarshal([]byte(body), &got); err != nil || got["message_id"] != id {
				t.Errorf("body %q, want message_id %s", body, id)
			}
		},
	}, {
		Name: "group is not allowed here", Path: "/send", Query: q("content", "hi", "to_addr", "1", "from_addr", "2", "group", "g"),
		WantStatus: 400, WantBody: `{"unexpected_parameter":["group"]}`,
	}})
	// Replies are not expected: they are nacked.
	r := e.Inbound()[0].Reply("nobody waits", true)
	e.SendOutbound(r)
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventNack && ev.UserMessageID == r.MessageID
	}, 30*time.Second)
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]string{
		"web_path":                     "  - {name: a, kind: http_api, transport_name: a}",
		"web_username":                 "  - {name: a, kind: http_api, transport_name: a, web_path: /x, web_username: u}",
		"validation_mode":              "  - {name: a, kind: http_api, transport_name: a, web_path: /x, validation_mode: lax}",
		"allowed_fields":               "  - {name: a, kind: http_api, transport_name: a, web_path: /x, allowed_fields: [message_id]}",
		"field_defaults.session_event": "  - {name: a, kind: http_api, transport_name: a, web_path: /x, field_defaults: {session_event: maybe}}",
		"request_timeout_status_code":  "  - {name: a, kind: http_api, transport_name: a, web_path: /x, request_timeout_status_code: 42}",
		"response_time_down":           "  - {name: a, kind: http_api, transport_name: a, web_path: /x, response_time_down: 0.5, response_time_degraded: 2}",
	}
	for key, w := range cases {
		_, err := topology.Load("c.yaml", []byte("workers:\n"+w+"\n"), kinds(), nil)
		if err == nil || !strings.Contains(err.Error(), "key "+key) {
			t.Errorf("%s: error = %v", key, err)
		}
	}
}

// TestRepliesAcrossInstances runs three instances of one transport behind
// no load balancer (each on its own port) with the echo application: every
// request gets its own reply, whichever instance consumes it.
func TestRepliesAcrossInstances(t *testing.T) {
	var workers strings.Builder
	for i := range 3 {
		fmt.Fprintf(&workers, `
  - name: api%d
    kind: http_api
    transport_name: api
    web_path: /echo
    web_port: ${PORT%d}
    web_interface: 127.0.0.1
    reply_expected: true
    request_timeout: 30
`, i, i)
	}
	workers.WriteString(`
  - name: echo
    kind: echo
    transport_name: api
`)
	e := transporttest.StartMulti(t, kinds(), "api", workers.String(), 3)
	var wg sync.WaitGroup
	var mu sync.Mutex
	forwarded := 0
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := fmt.Sprintf("request %d", i)
			u := fmt.Sprintf("%s/echo?%s", e.URLs[i%3], q("content", text, "to_addr", "1", "from_addr", fmt.Sprintf("+2783%07d", i)).Encode())
			resp, err := (&http.Client{Timeout: 40 * time.Second}).Get(u)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var b strings.Builder
			_, _ = fmt.Fprint(&b, readAll(resp))
			if resp.StatusCode != 200 || b.String() != text {
				t.Errorf("request %d: %d %q", i, resp.StatusCode, b.String())
			}
			mu.Lock()
			forwarded++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if forwarded != 60 {
		t.Errorf("%d of 60 requests answered", forwarded)
	}
	// With three instances over two partitions, some replies had to travel
	// between instances.
	if n := e.CountRecords("api.rpc"); n == 0 {
		t.Error("no reply was forwarded between instances")
	}
}

func readAll(r *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func js(t testing.TB, m *schemas.UserMessage) string {
	b, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKafkaDownAnswers503: with the broker gone, a request is answered
// 503 within about publish_timeout instead of hanging.
func TestKafkaDownAnswers503(t *testing.T) {
	e := transporttest.Start(t, kinds(), "api", `
  - name: api
    kind: http_api
    transport_name: api
    web_path: /send
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    publish_timeout: 0.5
`)
	e.Broker.Cluster().Close()
	// The worker may be restarting (its supervisor restarts it when its
	// Kafka clients give up): retry until the server answers, and time the
	// request that is answered.
	deadline := time.Now().Add(30 * time.Second)
	for {
		start := time.Now()
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(e.BaseURL + "/send?" + q("content", "x", "to_addr", "1", "from_addr", "2").Encode())
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("status %d, want 503", resp.StatusCode)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("answered after %v, want about 0.5 s", took)
		}
		break
	}
}
