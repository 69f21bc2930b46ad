package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/processors/apps/apptest"
	"github.com/vumi-kafka/vumi/schemas"
)

// TestSendAPI: send through a transport over HTTP, follow the status to
// delivered, and get the reply and the events on callbacks that fail twice
// before they succeed.
func TestSendAPI(t *testing.T) {
	c := startCluster(t)
	var mu sync.Mutex
	var inbound, events []map[string]any
	var inboundCalls atomic.Int32
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, _ := r.BasicAuth(); u != "cb" || p != "cbpass" {
			w.WriteHeader(401)
			return
		}
		if r.URL.Path == "/inbound" && inboundCalls.Add(1) <= 2 {
			w.WriteHeader(503) // fail twice: the API must retry
			return
		}
		var v map[string]any
		_ = json.NewDecoder(r.Body).Decode(&v)
		mu.Lock()
		if r.URL.Path == "/inbound" {
			inbound = append(inbound, v)
		} else {
			events = append(events, v)
		}
		mu.Unlock()
	}))
	defer sink.Close()
	port := freePort(t)
	run(t, c, fmt.Sprintf(`
  - name: devnull
    kind: devnull
    transport_name: dn
    ack_rate: 1
    failure_rate: 0
    reply_rate: 1
    reply_copy: pong
  - name: api
    kind: http_send_api
    web_port: %d
    web_interface: 127.0.0.1
    web_username: user
    web_password: pass
    transports: [dn]
    inbound_url: %s/inbound
    event_url: %s/event
    callback_username: cb
    callback_password: cbpass
    callback_backoff: 20ms
    callbacks_from: start
`, port, sink.URL, sink.URL))
	base := fmt.Sprintf("http://127.0.0.1:%d/api/v1", port)
	do := func(method, path, body string, auth bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if auth {
			req.SetBasicAuth("user", "pass")
		}
		var resp *http.Response
		var err error
		for i := 0; i < 100; i++ { // the server may still be starting
			if resp, err = http.DefaultClient.Do(req); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
			req, _ = http.NewRequest(method, base+path, strings.NewReader(body))
			if auth {
				req.SetBasicAuth("user", "pass")
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := do("POST", "/transports/dn/messages", `{"to_addr": "+27821230000", "content": "ping", "helper_metadata": {"campaign": "c1"}}`, true)
	if code != 201 {
		t.Fatalf("send: %d %s", code, body)
	}
	sent, err := schemas.ParseUserMessage([]byte(body))
	if err != nil || sent.Transport() != "dn" || sent.Text() != "ping" {
		t.Fatalf("send answered %s (%v)", body, err)
	}
	// Status: submitted at once, then delivered.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body = do("GET", "/messages/"+sent.MessageID, "", true)
		var rec struct {
			Status string `json:"status"`
			Events []struct {
				EventType string `json:"event_type"`
			} `json:"events"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &rec) != nil {
			t.Fatalf("status: %d %s", code, body)
		}
		if rec.Status == "delivered" && len(rec.Events) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never became delivered: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Callbacks: the reply (after two failed attempts) and both events.
	deadline = time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n, m := len(inbound), len(events)
		mu.Unlock()
		if n >= 1 && m >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("callbacks: %d inbound, %d events", n, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	if inbound[0]["content"] != "pong" || inbound[0]["from_addr"] != "+27821230000" {
		t.Errorf("inbound callback %v", inbound[0])
	}
	mu.Unlock()
	if inboundCalls.Load() < 3 {
		t.Errorf("inbound callback attempts = %d, want a retry after each of two failures", inboundCalls.Load())
	}

	for _, tc := range []struct {
		method, path, body string
		auth               bool
		code               int
		want               string
	}{
		{"POST", "/transports/sms/messages", `{"to_addr": "1"}`, true, 404, `unknown transport \"sms\"`},
		{"POST", "/transports/dn/messages", `{"content": "x"}`, true, 400, `"to_addr":"is required"`},
		{"POST", "/transports/dn/messages", `{"to_addr": "1", "colour": "red"}`, true, 400, `unknown field \"colour\"`},
		{"POST", "/transports/dn/messages", `{"to_addr": "1", "session_event": "maybe"}`, true, 400, `"session_event":"must be new, resume or close"`},
		{"POST", "/transports/dn/messages", `{"to_addr": "1"}`, false, 401, "authentication required"},
		{"GET", "/messages/nope", "", true, 404, "no message with this id"},
	} {
		code, body := do(tc.method, tc.path, tc.body, tc.auth)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.want)
		}
	}

	// Records the API cannot decode, a send request and an event, go to
	// the transport's failures topic with their bytes; the API goes on.
	junk := []byte("not an avro record")
	pr, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.ProduceSync(context.Background(),
		&kgo.Record{Topic: "api.sends", Key: []byte("junk-send"), Value: junk},
		&kgo.Record{Topic: "dn.event", Key: []byte("junk-event"), Value: junk}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	bySource := map[string]*schemas.Failure{}
	c.Collect(t, c.Consumer(t, "dn.failures"), 60*time.Second, func(got []any) bool {
		for _, f := range apptest.Failures(got) {
			// The status processor's ("decode ..."); the event callbacks
			// report the same event as an "undecodable record".
			if f.Worker != nil && *f.Worker == "api" && f.SourceTopic != nil && strings.HasPrefix(f.Reason, "decode ") {
				bySource[*f.SourceTopic] = f
			}
		}
		return bySource["api.sends"] != nil && bySource["dn.event"] != nil
	})
	for topic, key := range map[string]string{"api.sends": "junk-send", "dn.event": "junk-event"} {
		f := bySource[topic]
		if string(f.Raw) != string(junk) || string(f.Key) != key || f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent {
			t.Errorf("failure for the undecodable record on %s: key %q raw %q code %v reason %q", topic, f.Key, f.Raw, f.FailureCode, f.Reason)
		}
	}
	if code, body := do("POST", "/transports/dn/messages", `{"to_addr": "+27821230001", "content": "after"}`, true); code != 201 {
		t.Fatalf("send after the undecodable records: %d %s", code, body)
	}
}

// TestSendAPICallbackDown: a callback target that never answers sends the
// message to failures after the retries.
func TestSendAPICallbackDown(t *testing.T) {
	c := startCluster(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }))
	defer down.Close()
	run(t, c, fmt.Sprintf(`
  - name: api
    kind: http_send_api
    web_port: %d
    web_interface: 127.0.0.1
    transports: [sms]
    inbound_url: %s
    callback_max_retries: 2
    callback_backoff: 10ms
    callbacks_from: start
`, freePort(t), down.URL))
	m := inbound("+27000000009", "hello")
	c.produceInbound(t, m)
	got := c.Collect(t, c.Consumer(t, "sms.failures"), 30*time.Second, func(got []any) bool { return len(got) >= 1 })
	f := got[0].(*schemas.Failure)
	if !strings.Contains(f.Reason, "failed 3 times, last: HTTP 500") || f.FailureCode == nil || *f.FailureCode != schemas.FailureTemporary ||
		f.Message == nil || !strings.Contains(*f.Message, m.MessageID) {
		t.Errorf("failure %s", mustJSON(t, f))
	}
}
