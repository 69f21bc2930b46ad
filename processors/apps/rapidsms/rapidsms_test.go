package rapidsms_test

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

	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/processors/apps/apptest"
	"github.com/vumi-kafka/vumi/processors/apps/rapidsms"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(rapidsms.Kind()) }

func TestConfig(t *testing.T) {
	cases := []struct{ name, yaml, wantErr string }{
		{"ok", "web_path: /send\n    rapidsms_url: http://127.0.0.1:1/", ""},
		{"no web_path", "rapidsms_url: http://127.0.0.1:1/", "key web_path: is required"},
		{"no rapidsms_url", "web_path: /send", "key rapidsms_url: is required"},
		{"bad url", "web_path: /send\n    rapidsms_url: nope", "key rapidsms_url:"},
		{"bad auth", "web_path: /send\n    rapidsms_url: http://a/\n    vumi_auth_method: digest", "key vumi_auth_method:"},
		{"bad rapidsms auth", "web_path: /send\n    rapidsms_url: http://a/\n    rapidsms_auth_method: digest", "key rapidsms_auth_method:"},
		{"bad method", "web_path: /send\n    rapidsms_url: http://a/\n    rapidsms_http_method: TRACE", "key rapidsms_http_method:"},
		{"password alone", "web_path: /send\n    rapidsms_url: http://a/\n    vumi_password: x", "key vumi_password:"},
		{"unknown key", "web_path: /send\n    rapidsms_url: http://a/\n    rapidsms_uri: x", "rapidsms_uri"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := topology.Load("t.yaml", []byte("workers:\n  - name: r\n    kind: rapidsms_relay\n    transport_name: sms\n    "+tc.yaml+"\n"), kinds(), nil)
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	return transporttest.FreePort(t)
}

// fakeRapidSMS is RapidSMS's HTTP backend: it records what it receives
// and fails the first attempt of messages saying "flaky".
type fakeRapidSMS struct {
	mu       sync.Mutex
	got      []*schemas.UserMessage
	attempts map[string]int
	auth     []string
}

func (f *fakeRapidSMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m, err := schemas.ParseUserMessage(body)
	if err != nil || r.Method != http.MethodPut {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.attempts[m.Text()]++
	if m.Text() == "flaky" && f.attempts[m.Text()] == 1 {
		http.Error(w, "later", http.StatusBadGateway)
		return
	}
	f.got = append(f.got, m)
}

func (f *fakeRapidSMS) received(t *testing.T, text string) *schemas.UserMessage {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		f.mu.Lock()
		for _, m := range f.got {
			if m.Text() == text {
				f.mu.Unlock()
				return m
			}
		}
		f.mu.Unlock()
	}
	t.Fatalf("RapidSMS did not receive %q", text)
	return nil
}

func call(t *testing.T, url, user, pass, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRapidSMSRelay(t *testing.T) {
	fake := &fakeRapidSMS{attempts: map[string]int{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	port, port2 := freePort(t), freePort(t)
	c := apptest.Start(t)
	c.Run(t, kinds, fmt.Sprintf(`  - name: rapidsms
    kind: vumi.application.rapidsms_relay.RapidSMSRelay
    transport_name: sms
    web_path: /send/
    web_port: %d
    web_interface: 127.0.0.1
    vumi_username: rapid
    vumi_password: vumipass
    vumi_reply_timeout: 3
    allowed_endpoints: [default, mms]
    rapidsms_url: %s/backend/vumi/
    rapidsms_username: vumi
    rapidsms_password: rapidpass
    rapidsms_http_method: PUT
    retry_backoff: 10ms
  - name: noreplies
    kind: rapidsms_relay
    transport_name: other
    web_path: /send
    web_port: %d
    web_interface: 127.0.0.1
    allow_replies: false
    rapidsms_url: %s/
`, port, srv.URL, port2, srv.URL))
	p := c.Producer(t)
	in := apptest.Inbound("27761234567", "hello rapidsms")
	flaky := apptest.Inbound("27761234568", "flaky")
	p.Inbound(t, in, flaky)
	got := fake.received(t, "hello rapidsms")
	if got.MessageID != in.MessageID {
		t.Errorf("RapidSMS got message %s, want %s", got.MessageID, in.MessageID)
	}
	fake.received(t, "flaky")
	fake.mu.Lock()
	if fake.attempts["flaky"] != 2 {
		t.Errorf("flaky attempts %d, want 2", fake.attempts["flaky"])
	}
	for _, a := range fake.auth {
		if a != "Basic dnVtaTpyYXBpZHBhc3M=" {
			t.Errorf("RapidSMS got Authorization %q", a)
		}
	}
	fake.mu.Unlock()

	url := fmt.Sprintf("http://127.0.0.1:%d/send", port)
	cases := []struct {
		name, user, pass, body string
		status                 int
		want                   string
	}{
		{"no credentials", "", "", `{"to_addr": ["1"], "content": "x"}`, 401, "Unauthorized"},
		{"wrong password", "rapid", "nope", `{"to_addr": ["1"], "content": "x"}`, 401, "Unauthorized"},
		{"reply", "rapid", "vumipass", fmt.Sprintf(`{"to_addr": ["27761234567"], "content": "a reply", "in_reply_to": %q}`, in.MessageID), 200, `"in_reply_to":"` + in.MessageID},
		{"reply without to_addr", "rapid", "vumipass", fmt.Sprintf(`{"to_addr": [], "content": "reply 2", "in_reply_to": %q}`, in.MessageID), 200, `"content":"reply 2"`},
		{"reply to someone else", "rapid", "vumipass", fmt.Sprintf(`{"to_addr": ["27000000000"], "content": "x", "in_reply_to": %q}`, in.MessageID), 400, "don't match `from_addr`"},
		{"reply to unknown", "rapid", "vumipass", `{"to_addr": [], "content": "x", "in_reply_to": "nosuch"}`, 400, `Original message "nosuch" not found.`},
		{"send to two", "rapid", "vumipass", `{"to_addr": ["27000000001", "27000000002"], "content": "news"}`, 200, `"to_addr":"27000000002"`},
		{"send on mms", "rapid", "vumipass", `{"to_addr": ["27000000003"], "content": "mms", "endpoint": "mms"}`, 200, `"endpoint_name":"mms"`},
		{"endpoint not allowed", "rapid", "vumipass", `{"to_addr": ["27000000003"], "content": "x", "endpoint": "fax"}`, 400, "not defined in list of allowed endpoints"},
		{"to_addr not a list", "rapid", "vumipass", `{"to_addr": "27000000003", "content": "x"}`, 400, "was not a list"},
		{"not json", "rapid", "vumipass", `hello`, 400, "Invalid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, url, tc.user, tc.pass, tc.body)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s, want %d and %q", status, body, tc.status, tc.want)
			}
		})
	}
	t.Run("replies disabled", func(t *testing.T) {
		status, body := call(t, fmt.Sprintf("http://127.0.0.1:%d/send", port2), "", "", fmt.Sprintf(`{"to_addr": [], "content": "x", "in_reply_to": %q}`, in.MessageID))
		if status != 400 || !strings.Contains(body, "Support for `in_reply_to` not configured.") {
			t.Errorf("%d %s", status, body)
		}
	})
	t.Run("health", func(t *testing.T) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "OK" {
			t.Errorf("health %q", b)
		}
	})
	t.Run("outbound", func(t *testing.T) {
		got := apptest.Messages(c.Collect(t, c.Consumer(t, "sms.outbound"), 20*time.Second, func(got []any) bool { return len(got) >= 5 }))
		var texts []string
		for _, m := range got {
			texts = append(texts, m.To()+":"+m.Text())
		}
		want := "27761234567:a reply,27761234567:reply 2,27000000001:news,27000000002:news,27000000003:mms"
		sortedGot := strings.Join(sortStrings(texts), ",")
		if sortedGot != strings.Join(sortStrings(strings.Split(want, ",")), ",") {
			t.Errorf("outbound %s, want %s", sortedGot, want)
		}
	})
	t.Run("reply timeout", func(t *testing.T) {
		time.Sleep(3500 * time.Millisecond)
		status, body := call(t, url, "rapid", "vumipass", fmt.Sprintf(`{"to_addr": [], "content": "late", "in_reply_to": %q}`, in.MessageID))
		if status != 400 || !strings.Contains(body, "not found") {
			t.Errorf("a reply after vumi_reply_timeout: %d %s", status, body)
		}
	})
	var sent []map[string]any
	_, body := call(t, url, "rapid", "vumipass", `{"to_addr": ["27000000009"], "content": "json"}`)
	if err := json.Unmarshal([]byte(body), &sent); err != nil || len(sent) != 1 || sent[0]["content"] != "json" {
		t.Errorf("send response %s (%v)", body, err)
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
