package httprelay_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/processors/apps/apptest"
	"github.com/vumi-kafka/vumi/processors/apps/httprelay"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(httprelay.Kind()) }

func TestConfig(t *testing.T) {
	cases := []struct {
		name, yaml, wantErr string
	}{
		{"minimal", "url: http://127.0.0.1:1/x", ""},
		{"no url", "http_method: POST", "key url: is required"},
		{"bad url", "url: ftp://x/", "key url:"},
		{"bad event url", "url: http://a/\n      event_url: nope", "key event_url:"},
		{"bad method", "url: http://a/\n      http_method: TRACE", "key http_method:"},
		{"bad auth", "url: http://a/\n      auth_method: digest", "key auth_method:"},
		{"unknown key", "url: http://a/\n      urll: x", "urll"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fmt.Sprintf("workers:\n  - name: relay\n    kind: http_relay\n    transport_name: sms\n    %s\n", strings.ReplaceAll(tc.yaml, "\n      ", "\n    "))
			_, err := topology.Load("t.yaml", []byte(cfg), kinds(), nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// webApp is the web application behind the relay: what it answers depends
// on the message content.
type webApp struct {
	mu       sync.Mutex
	attempts map[string]int
	events   []string
	badAuth  int
}

func (w *webApp) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	u, p, ok := r.BasicAuth()
	if !ok || u != "user" || p != "s3cret" {
		w.mu.Lock()
		w.badAuth++
		w.mu.Unlock()
		http.Error(rw, "auth", http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/event" {
		e, err := schemas.ParseEvent(body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.events = append(w.events, string(e.EventType)+":"+e.UserMessageID)
		w.mu.Unlock()
		return
	}
	m, err := schemas.ParseUserMessage(body)
	if err != nil || r.Method != http.MethodPut {
		http.Error(rw, "bad request", http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	w.attempts[m.Text()]++
	n := w.attempts[m.Text()]
	w.mu.Unlock()
	switch m.Text() {
	case "reply":
		rw.Header().Set("X-Vumi-HTTPRelay-Reply", "TRUE")
		fmt.Fprint(rw, "  hello back \n")
	case "no header":
		fmt.Fprint(rw, "not a reply")
	case "header false":
		rw.Header().Set("X-Vumi-HTTPRelay-Reply", "false")
		fmt.Fprint(rw, "not a reply")
	case "flaky":
		if n < 3 {
			http.Error(rw, "try later", http.StatusServiceUnavailable)
			return
		}
		rw.Header().Set("x-vumi-httprelay-reply", "true")
		fmt.Fprint(rw, "after retries")
	case "missing":
		http.Error(rw, "no", http.StatusNotFound)
	case "slow":
		time.Sleep(400 * time.Millisecond)
		rw.Header().Set("X-Vumi-HTTPRelay-Reply", "true")
		fmt.Fprint(rw, "too late")
	}
}

func TestRelay(t *testing.T) {
	web := &webApp{attempts: map[string]int{}}
	srv := httptest.NewServer(web)
	defer srv.Close()
	c := apptest.Start(t)
	c.Run(t, kinds, fmt.Sprintf(`  - name: relay
    kind: vumi.application.http_relay.HTTPRelayApplication
    transport_name: sms
    url: %s/message
    event_url: %s/event
    http_method: put
    username: user
    password: s3cret
    timeout: 200ms
    max_retries: 3
    retry_backoff: 20ms
`, srv.URL, srv.URL))
	p := c.Producer(t)
	msgs := map[string]*schemas.UserMessage{}
	for i, text := range []string{"reply", "no header", "header false", "flaky", "missing", "slow"} {
		m := apptest.Inbound(fmt.Sprintf("2776%07d", i), text)
		msgs[text] = m
		p.Inbound(t, m)
	}
	ack := apptest.Ack("m1")
	nack := apptest.Ack("m2")
	nack.EventType, nack.NackReason, nack.SentMessageID = schemas.EventNack, schemas.String("no"), nil
	dr := apptest.Ack("m3")
	dr.EventType, dr.DeliveryStatus, dr.SentMessageID = schemas.EventDeliveryReport, ptr(schemas.DeliveryStatus("delivered")), nil
	p.Events(t, ack, nack, dr)

	out := c.Consumer(t, "sms.outbound", "sms.failures")
	got := c.Collect(t, out, 30*time.Second, func(got []any) bool {
		return len(apptest.Messages(got)) >= 2 && len(apptest.Failures(got)) >= 2
	})
	replies := map[string]string{}
	for _, m := range apptest.Messages(got) {
		replies[*m.InReplyTo] = m.Text()
		if m.To() != msgs["reply"].From() && m.To() != msgs["flaky"].From() {
			t.Errorf("reply to %q", m.To())
		}
	}
	want := map[string]string{msgs["reply"].MessageID: "hello back", msgs["flaky"].MessageID: "after retries"}
	for id, text := range want {
		if replies[id] != text {
			t.Errorf("reply to %s = %q, want %q (all: %v)", id, replies[id], text, replies)
		}
	}
	if len(replies) != 2 {
		t.Errorf("replies %v, want exactly 2", replies)
	}
	reasons := map[string]schemas.FailureCode{}
	for _, f := range apptest.Failures(got) {
		reasons[f.Reason] = *f.FailureCode
	}
	var sawMissing, sawSlow bool
	for r, code := range reasons {
		switch {
		case strings.Contains(r, "responded with 404"):
			sawMissing = code == schemas.FailurePermanent
		case strings.Contains(r, "failed 4 times"):
			sawSlow = code == schemas.FailureTemporary
		}
	}
	if !sawMissing || !sawSlow {
		t.Errorf("failures %v: want a permanent 404 and a temporary timeout after 4 attempts", reasons)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		web.mu.Lock()
		n := len(web.events)
		web.mu.Unlock()
		if n >= 2 {
			break
		}
	}
	time.Sleep(300 * time.Millisecond) // a relayed nack would arrive now
	web.mu.Lock()
	defer web.mu.Unlock()
	if web.badAuth != 0 {
		t.Errorf("%d requests without the right credentials", web.badAuth)
	}
	if web.attempts["flaky"] != 3 || web.attempts["missing"] != 1 || web.attempts["slow"] != 4 {
		t.Errorf("attempts %v: want flaky 3, missing 1, slow 4", web.attempts)
	}
	if strings.Join(web.events, ",") != "ack:m1,delivery_report:m3" && strings.Join(web.events, ",") != "delivery_report:m3,ack:m1" {
		t.Errorf("events %v: want the ack and the delivery report, not the nack", web.events)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRelayWrongPasswordFails(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(rw, "no", http.StatusUnauthorized)
	}))
	defer srv.Close()
	c := apptest.Start(t)
	c.Run(t, kinds, fmt.Sprintf(`  - name: relay
    kind: http_relay
    transport_name: sms
    url: %s/
    username: user
    password: wrong
    max_retries: 1
    retry_backoff: 10ms
`, srv.URL))
	p := c.Producer(t)
	p.Inbound(t, apptest.Inbound("27761234567", "hi"))
	got := c.Collect(t, c.Consumer(t, "sms.failures"), 30*time.Second, func(got []any) bool { return len(got) >= 1 })
	f := apptest.Failures(got)[0]
	if !strings.Contains(f.Reason, "401") || strings.Contains(f.Reason, "wrong") {
		t.Errorf("failure reason %q: want the 401 and no password", f.Reason)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(*f.Message), &m); err != nil || m["content"] != "hi" {
		t.Errorf("failure message %v (%v)", m, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auths) != 1 || auths[0] != "Basic dXNlcjp3cm9uZw==" {
		t.Errorf("Authorization headers %v", auths)
	}
}
