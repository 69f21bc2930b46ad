package vumibridge

import (
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

	"github.com/vumi-kafka/vumi/connectors/chattest"
	"github.com/vumi-kafka/vumi/connectors/tcpclient/tcptest"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(Kinds()...) }

const within = 30 * time.Second

// fakeGo is Vumi Go's HTTP API for one conversation, from its
// description: streaming GETs of messages.json and events.json (one JSON
// object per line), and PUT messages.json answering the stored message.
type fakeGo struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	streams  map[string][]chan string // path -> open streams
	opened   map[string]int
	puts     []map[string]any
	putAuth  []string
	note     chan struct{}
	putCode  atomic.Int32
	failGets atomic.Bool
	nextID   atomic.Int64
}

func newFakeGo(t testing.TB) *fakeGo {
	f := &fakeGo{t: t, streams: map[string][]chan string{}, opened: map[string]int{}, note: make(chan struct{}, 1)}
	f.putCode.Store(200)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.dropAll()
		f.srv.Close()
	})
	return f
}

func (f *fakeGo) poke() {
	select {
	case f.note <- struct{}{}:
	default:
	}
}

func (f *fakeGo) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != "acc" || pass != "tok" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v1/go/http_api/conv1/")
	switch {
	case r.Method == http.MethodGet && (path == "messages.json" || path == "events.json"):
		if f.failGets.Load() {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			f.mu.Lock()
			f.opened[path+" failed"]++
			f.mu.Unlock()
			f.poke()
			return
		}
		ch := make(chan string, 16)
		f.mu.Lock()
		f.streams[path] = append(f.streams[path], ch)
		f.opened[path]++
		f.mu.Unlock()
		f.poke()
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case line, ok := <-ch:
				if !ok {
					return
				}
				_, _ = io.WriteString(w, line)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	case r.Method == http.MethodPut && path == "messages.json":
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		stored := map[string]any{}
		for k, v := range m {
			stored[k] = v
		}
		f.puts = append(f.puts, stored)
		f.putAuth = append(f.putAuth, r.Header.Get("Content-Type"))
		f.mu.Unlock()
		f.poke()
		if code := int(f.putCode.Load()); code != 200 {
			http.Error(w, `{"error": "nope"}`, code)
			return
		}
		m["message_id"] = fmt.Sprintf("remote-%d", f.nextID.Add(1))
		_ = json.NewEncoder(w).Encode(m)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeGo) wait(what string, cond func() bool) {
	f.t.Helper()
	tcptest.Poll(f.t, within, "fake Vumi Go: no "+what, &f.mu, f.note, cond)
}

// send writes raw text on the newest open stream of path.
func (f *fakeGo) send(path, text string) {
	f.t.Helper()
	f.wait("open "+path+" stream", func() bool { return len(f.streams[path]) > 0 })
	f.mu.Lock()
	s := f.streams[path]
	ch := s[len(s)-1]
	f.mu.Unlock()
	ch <- text
}

func (f *fakeGo) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, chs := range f.streams {
		for _, ch := range chs {
			close(ch)
		}
		delete(f.streams, p)
	}
}

func (f *fakeGo) openedCount(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opened[path]
}

func streamYAML(base, extra string) string {
	return fmt.Sprintf(`
  - name: bridge
    kind: vumi.transports.vumi_bridge.vumi_bridge.GoConversationClientTransport
    transport_name: bridge
    account_key: acc
    conversation_key: conv1
    access_token: tok
    base_url: %s/api/v1/go/http_api/
    publish_status: true
    initial_delay: 0.05
    max_reconnect_delay: 1
%s`, base, extra)
}

func TestStreamingClient(t *testing.T) {
	g := newFakeGo(t)
	e := chattest.Start(t, kinds(), "bridge", streamYAML(g.srv.URL, ""))
	g.wait("both streams", func() bool { return g.opened["messages.json"] == 1 && g.opened["events.json"] == 1 })
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "messages-stream" && s.Type == "connected" }, within)

	// A message streamed in is published as it came, with our transport name.
	g.send("messages.json", `{"message_id": "go-msg-1", "to_addr": "1234", "from_addr": "+27831112222", "content": "hi", "transport_name": "go_transport", "transport_type": "sms", "session_event": null, "helper_metadata": {"go": {"x": 1}}}`+"\n")
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.MessageID == "go-msg-1" }, within)
	if in.Transport() != "bridge" || in.Text() != "hi" || in.From() != "+27831112222" || *in.TransportType != "sms" || in.HelperMetadata["go"] == nil {
		t.Errorf("inbound %s", chattest.JSON(t, in))
	}

	// A reply is PUT to Vumi Go; the ack carries Vumi Go's id.
	reply := in.Reply("hello back", true)
	e.SendOutbound(reply)
	var put map[string]any
	var putType string
	g.wait("PUT", func() bool {
		if len(g.puts) == 1 {
			put, putType = g.puts[0], g.putAuth[0]
			return true
		}
		return false
	})
	if put["to_addr"] != "+27831112222" || put["content"] != "hello back" || put["message_id"] != reply.MessageID || put["in_reply_to"] != "go-msg-1" || put["session_event"] != nil {
		t.Errorf("PUT body %v", put)
	}
	if hm, _ := put["helper_metadata"].(map[string]any); hm["go"] == nil {
		t.Errorf("PUT helper_metadata %#v", put["helper_metadata"])
	}
	if putType != "application/json; charset=utf-8" {
		t.Errorf("PUT content type %q", putType)
	}
	ack := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == reply.MessageID }, within)
	if ack.EventType != schemas.EventAck || *ack.SentMessageID != "remote-1" {
		t.Errorf("ack %s", chattest.JSON(t, ack))
	}

	// Vumi Go's delivery report for remote-1 is published for our message.
	g.send("events.json", `{"event_id": "ev1", "event_type": "delivery_report", "user_message_id": "remote-1", "delivery_status": "delivered", "transport_name": "go_transport"}`+"\n")
	dr := e.WaitEvent(func(ev *schemas.Event) bool { return ev.EventID == "ev1" }, within)
	if dr.UserMessageID != reply.MessageID || *dr.SentMessageID != "remote-1" || dr.EventType != schemas.EventDeliveryReport || *dr.TransportName != "bridge" {
		t.Errorf("delivery report %s", chattest.JSON(t, dr))
	}
	// An event for a message that is not ours goes to failures.
	g.send("events.json", `{"event_id": "ev2", "event_type": "ack", "user_message_id": "someone-else", "sent_message_id": "x"}`+"\n")
	e.WaitFailure(func(f *schemas.Failure) bool {
		return strings.Contains(f.Reason, `Vumi Go message "someone-else", which is not one of ours`)
	}, within)

	// Malformed lines go to failures; the stream goes on.
	g.send("messages.json", "{not json\n\n")
	f := e.WaitFailure(func(f *schemas.Failure) bool { return strings.Contains(f.Reason, "invalid message from Vumi Go") }, within)
	if string(f.Raw) != "{not json" {
		t.Errorf("failure raw %q", f.Raw)
	}
	g.send("messages.json", `{"message_id": "go-msg-2", "to_addr": "1234", "from_addr": "+27831112222", "content": "again"}`+"\n")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.MessageID == "go-msg-2" }, within)
	if g.openedCount("messages.json") != 1 {
		t.Errorf("messages stream opened %d times", g.openedCount("messages.json"))
	}

	// Vumi Go rejects a send: nack and status down.
	g.putCode.Store(400)
	bad := in.Reply("rejected", true)
	e.SendOutbound(bad)
	nack := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == bad.MessageID }, within)
	if nack.EventType != schemas.EventNack || *nack.NackReason != "Unexpected status code: 400" {
		t.Errorf("nack %s", chattest.JSON(t, nack))
	}
	e.WaitStatus(func(s *schemas.Status) bool {
		return s.Component == "submitted-to-vumi-go" && s.Type == "bad_request" && s.Status == schemas.StatusDown
	}, within)

	// The streams drop: the transport reconnects them.
	dropped := time.Now()
	g.dropAll()
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "messages-stream" && s.Type == "disconnected" }, within)
	g.wait("reconnected streams", func() bool { return g.opened["messages.json"] == 2 && g.opened["events.json"] == 2 })
	e.WaitStatus(func(s *schemas.Status) bool {
		return s.Component == "messages-stream" && s.Type == "connected" && s.Timestamp.After(dropped)
	}, within)
	g.send("messages.json", `{"message_id": "go-msg-3", "to_addr": "1234", "from_addr": "+27831112222", "content": "after"}`+"\n")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.MessageID == "go-msg-3" }, within)
}

func TestStreamingClientGivesUpAfterMaxRetries(t *testing.T) {
	g := newFakeGo(t)
	g.failGets.Store(true)
	e := chattest.Start(t, kinds(), "bridge", streamYAML(g.srv.URL, "    max_retries: 2\n"))
	st := e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "events-stream" && s.Type == "reconnect_abandoned" }, within)
	if !strings.Contains(st.Message, "after 3 attempts") {
		t.Errorf("status %+v", st)
	}
	e.WaitStatus(func(s *schemas.Status) bool {
		return s.Component == "messages-stream" && s.Type == "reconnect_abandoned"
	}, within)
	if n := g.openedCount("messages.json failed"); n != 3 {
		t.Errorf("%d attempts, want 3 (the first and max_retries more)", n)
	}
}

func TestPushServer(t *testing.T) {
	g := newFakeGo(t)
	port := chattest.FreePort(t)
	e := chattest.Start(t, kinds(), "bridge", fmt.Sprintf(`
  - name: bridge
    kind: vumi.transports.vumi_bridge.GoConversationTransport
    transport_name: bridge
    account_key: acc
    conversation_key: conv1
    access_token: tok
    base_url: %s/api/v1/go/http_api/
    publish_status: true
    web_port: %d
    web_interface: 127.0.0.1
    web_path: /go
`, g.srv.URL, port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var resp *http.Response
	deadline := time.Now().Add(within)
	for {
		var err error
		resp, err = http.Get(base + "/health")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "OK" {
		t.Errorf("health %d %q", resp.StatusCode, b)
	}
	post := func(path, body string) int {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/go/messages.json", `{"message_id": "pushed-1", "to_addr": "1234", "from_addr": "+2782", "content": "pushed"}`); code != 200 {
		t.Fatalf("message push: %d", code)
	}
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.MessageID == "pushed-1" }, within)
	e.WaitStatus(func(s *schemas.Status) bool {
		return s.Component == "received-from-vumi-go" && s.Type == "good_request"
	}, within)
	reply := in.Reply("r", false)
	e.SendOutbound(reply)
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.UserMessageID == reply.MessageID && ev.EventType == schemas.EventAck
	}, within)
	req, _ := http.NewRequest(http.MethodPut, base+"/go/events.json", strings.NewReader(`{"event_id": "pe1", "event_type": "nack", "user_message_id": "remote-1", "nack_reason": "no credit"}`))
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 200 {
		t.Fatalf("event push: %d", r2.StatusCode)
	}
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.EventID == "pe1" }, within)
	if ev.UserMessageID != reply.MessageID || *ev.NackReason != "no credit" {
		t.Errorf("pushed event %s", chattest.JSON(t, ev))
	}
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "sent-by-vumi-go" && s.Type == "vumi_go_failed" }, within)

	if code := post("/go/messages.json", `{"content": `); code != 400 {
		t.Errorf("bad JSON: %d", code)
	}
	e.WaitFailure(func(f *schemas.Failure) bool { return strings.Contains(f.Reason, "invalid message from Vumi Go") }, within)
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "received-from-vumi-go" && s.Type == "bad_request" }, within)
	if code := post("/go/events.json", `{"event_type": "ack", "user_message_id": "unknown", "sent_message_id": "x"}`); code != 400 {
		t.Errorf("unknown event: %d", code)
	}
	if code := post("/go/messages.json", strings.Repeat("x", maxBody+1)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d", code)
	}
	resp, err = http.Get(base + "/go/messages.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

func TestConfig(t *testing.T) {
	w := transporttest.Worker
	transporttest.WantConfigErrors(t, kinds(), [][2]string{
		{w("vumi_bridge", "transport_name: t\nconversation_key: c\naccess_token: a\nweb_path: /x\n"), "key account_key: is required"},
		{w("vumi_bridge", "transport_name: t\naccount_key: k\nconversation_key: c\naccess_token: a\n"), "key web_path: is required"},
		{w("vumi_bridge", "transport_name: t\naccount_key: k\nconversation_key: c\naccess_token: a\nweb_path: /x\nbase_url: ftp://x\n"), "key base_url"},
		{w("vumi_bridge_client", "transport_name: t\naccount_key: k\nconversation_key: c\naccess_token: a\nweb_path: /x\n"), "key web_path: the streaming client"},
		{w("vumi_bridge_client", "transport_name: t\naccount_key: k\nconversation_key: c\naccess_token: a\nfactor: 0.5\n"), "key factor"},
		{w("vumi_bridge_client", "transport_name: t\naccount_key: k\nconversation_key: c\naccess_token: a\nmax_retries: -1\n"), "key max_retries"},
		{w("vumi_bridge_client", "transport_name: t\naccount_key: k\nconversation_key: c/d\naccess_token: a\n"), "key conversation_key"},
	})
	push := &Config{mode: modePush, AccountKey: "k", ConversationKey: "c", AccessToken: "a", WebPath: "x"}
	push.TransportName = "t"
	stream := &Config{mode: modeStream, AccountKey: "k", ConversationKey: "c", AccessToken: "a"}
	stream.TransportName = "t"
	if push.Validate() != nil || stream.Validate() != nil {
		t.Fatal("valid configs rejected")
	}
	if push.BaseURL != defaultPushURL || stream.BaseURL != defaultStreamURL || push.MessageLifeTime != 172800 || stream.InitialDelay != 0.1 || stream.MaxReconnectDelay != 3600 || *stream.Jitter != 0.11962656472 || push.HealthPath != "health" {
		t.Errorf("defaults: %+v %+v", push, stream)
	}
}

func FuzzLineReader(f *testing.F) {
	f.Add([]byte("{\"a\":1}\n\n{\"b\":2}"), 3)
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		lr := lineReader{r: &chunked{b: b, n: max(1, chunk%64+1)}}
		for range len(b) + 2 {
			line, _, err := lr.next()
			if err != nil {
				return
			}
			if len(line) > maxLine || strings.ContainsRune(string(line), '\n') {
				t.Fatalf("line %q", line)
			}
		}
	})
}

func FuzzInboundDecoders(f *testing.F) {
	f.Add([]byte(`{"message_id": "m", "to_addr": "1", "from_addr": "2", "content": "x", "session_event": "new"}`))
	f.Add([]byte(`{"event_type": "ack", "user_message_id": "u", "sent_message_id": "s"}`))
	f.Add([]byte(`{"event_type": "delivery_report", "user_message_id": "u", "delivery_status": "bogus"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := schemas.ParseUserMessage(b); err == nil && m.MessageID == "" {
			t.Fatal("message without an id")
		}
		if e, err := schemas.ParseEvent(b); err == nil && e.Validate() != nil {
			t.Fatal("invalid event accepted")
		}
		_ = laneKey(b)
	})
}

type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}
