// Package transporttest is the shared harness of the HTTP-based
// transports' tests (in the spirit of courier's handlertest): a transport
// runs for real on an embedded broker and registry, and each test case is a
// row — an HTTP request in, the inbound messages expected on the topic, an
// optional reply from the application, and the HTTP response expected out;
// or an outbound message in and the events (and outgoing HTTP requests)
// expected out.
package transporttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Env is a running transport under test.
type Env struct {
	t             testing.TB
	Broker        *broker.Broker
	Codecs        *schemas.Codecs
	TransportName string
	// BaseURL of the transport's web server (http://127.0.0.1:PORT).
	BaseURL string
	// URLs of every instance's web server, for StartMulti.
	URLs []string
	// StopMustSucceed makes the deployment returning an error when it
	// stops at the end of the test fail the test.
	StopMustSucceed bool

	// registryDown makes the deployment's way to the schema registry (a
	// proxy in front of the broker's) answer 503, see SetRegistryDown.
	registryDown atomic.Bool

	consumer *kgo.Client
	producer *kgo.Client
	mu       sync.Mutex
	inbound  []*schemas.UserMessage
	outbound []*schemas.UserMessage
	events   []*schemas.Event
	failures []*schemas.Failure
	statuses []*schemas.Status
	notify   chan struct{}
}

// registryProxy serves the registry at target through a proxy the test
// can take down (SetRegistryDown), and returns the proxy's URL.
func (e *Env) registryProxy(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		e.t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.registryDown.Load() {
			http.Error(w, "registry down for the test", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	e.t.Cleanup(srv.Close)
	return srv.URL
}

// SetRegistryDown makes the deployment's schema registry answer 503
// (down) or serve again. Env's own codecs reach the registry directly.
func (e *Env) SetRegistryDown(down bool) { e.registryDown.Store(down) }

// Start runs a deployment of the given workers YAML (a list under
// "workers:", using ${WEB_PORT} for the transport's port) with kinds,
// and returns the environment once the transport answers HTTP.
func Start(t testing.TB, kinds *topology.Registry, transportName, workersYAML string) *Env {
	t.Helper()
	return StartMulti(t, kinds, transportName, workersYAML, 1)
}

// StartMulti is Start for n instances of a transport whose ports are
// ${PORT0} ... ${PORT<n-1>} (${WEB_PORT} is ${PORT0}). With n 0 (a
// transport without a web server) it returns once the deployment runs.
func StartMulti(t testing.TB, kinds *topology.Registry, transportName, workersYAML string, n int) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir(), KafkaPort: -1, RegistryPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	e := &Env{t: t, Broker: b, TransportName: transportName, notify: make(chan struct{}, 1)}
	regProxy := e.registryProxy(b.RegistryURL())
	cfgText := fmt.Sprintf("cluster:\n  kafka: {brokers: [%s]}\n  schema_registry: {url: %s}\n  partitions: 2\n  state_dir: %s\n  topics:\n    %s.outbound: {external: true}\nworkers:\n%s",
		b.KafkaAddr(), regProxy, t.TempDir(), transportName, workersYAML)
	cfg, err := topology.Load("test.yaml", []byte(cfgText), kinds, func(k string) (string, bool) {
		if k == "WEB_PORT" && n > 0 {
			return fmt.Sprint(ports[0]), true
		}
		for i, p := range ports {
			if k == fmt.Sprintf("PORT%d", i) {
				return fmt.Sprint(p), true
			}
		}
		return os.LookupEnv(k)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		e.URLs = append(e.URLs, fmt.Sprintf("http://127.0.0.1:%d", p))
	}
	if n > 0 {
		e.BaseURL = e.URLs[0]
	}
	e.Codecs = schemas.NewCodecs(schemas.NewRegistryClient(b.RegistryURL(), schemas.RegistryClientOptions{}))
	runCtx, stop := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- topology.Run(runCtx, cfg, kinds, topology.RunOptions{Logger: testlog.Stderr(), Ready: func([]string, string) { close(ready) }})
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil && e.StopMustSucceed {
				t.Errorf("deployment: %v", err)
			}
		case <-time.After(60 * time.Second):
			// Bounded even with Kafka gone: every client's close has a
			// timeout, and they add up to well under a minute.
			t.Error("transport did not stop within 60s")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("deployment failed: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("deployment not ready within 60s")
	}
	if err := e.Codecs.UserMessage.Register(ctx, transportName+".outbound"); err != nil {
		t.Fatal(err)
	}
	e.producer, err = kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.producer.Close)
	e.consumer, err = kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ConsumeTopics(transportName+".inbound", transportName+".outbound", transportName+".event", transportName+".failures", topology.TopicStatus),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.consumer.Close)
	go e.consume(runCtx)
	// Wait for the web servers.
	for _, port := range ports {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("transport never listened on %d: %v", port, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return e
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return freePort(t)
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ClosedURL is "http://127.0.0.1:PORT" where PORT was just free and
// nothing listens: a provider that cannot be reached.
func ClosedURL(t testing.TB) string {
	t.Helper()
	return "http://" + net.JoinHostPort("127.0.0.1", fmt.Sprint(freePort(t)))
}

func (e *Env) consume(ctx context.Context) {
	dec := schemas.NewAnyDecoder(schemas.NewRegistryClient(e.Broker.RegistryURL(), schemas.RegistryClientOptions{}))
	for {
		fs := e.consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			v, err := dec.Decode(ctx, r.Value)
			if err != nil {
				return
			}
			e.mu.Lock()
			switch x := v.(type) {
			case *schemas.UserMessage:
				if r.Topic == e.TransportName+".outbound" {
					e.outbound = append(e.outbound, x)
				} else {
					e.inbound = append(e.inbound, x)
				}
			case *schemas.Event:
				e.events = append(e.events, x)
			case *schemas.Failure:
				e.failures = append(e.failures, x)
			case *schemas.Status:
				e.statuses = append(e.statuses, x)
			}
			e.mu.Unlock()
			select {
			case e.notify <- struct{}{}:
			default:
			}
		})
	}
}

// WaitInbound waits for the inbound message matching match.
func (e *Env) WaitInbound(match func(*schemas.UserMessage) bool, within time.Duration) *schemas.UserMessage {
	e.t.Helper()
	var found *schemas.UserMessage
	e.wait(within, "inbound message", func() bool {
		for _, m := range e.inbound {
			if match(m) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// WaitOutbound waits for the outbound message (an application's reply)
// matching match.
func (e *Env) WaitOutbound(match func(*schemas.UserMessage) bool, within time.Duration) *schemas.UserMessage {
	e.t.Helper()
	return waitMatch(e, within, "outbound message", &e.outbound, match)
}

// WaitEvent waits for the event matching match.
func (e *Env) WaitEvent(match func(*schemas.Event) bool, within time.Duration) *schemas.Event {
	e.t.Helper()
	var found *schemas.Event
	e.wait(within, "event", func() bool {
		for _, ev := range e.events {
			if match(ev) {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// WaitFailure waits for the failure matching match.
func (e *Env) WaitFailure(match func(*schemas.Failure) bool, within time.Duration) *schemas.Failure {
	e.t.Helper()
	var found *schemas.Failure
	e.wait(within, "failure", func() bool {
		for _, f := range e.failures {
			if match(f) {
				found = f
				return true
			}
		}
		return false
	})
	return found
}

// WaitStatus waits for the status event (on vumi.status, published when
// the transport has publish_status on) matching match.
func (e *Env) WaitStatus(match func(*schemas.Status) bool, within time.Duration) *schemas.Status {
	e.t.Helper()
	var found *schemas.Status
	e.wait(within, "status event", func() bool {
		for _, s := range e.statuses {
			if match(s) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

func (e *Env) wait(within time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.After(within)
	for {
		e.mu.Lock()
		ok := cond()
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			e.t.Fatalf("no matching %s within %v", what, within)
		}
	}
}

// settle waits until no inbound message has arrived for 100 ms (at most
// 5 s) and returns how many have.
func (e *Env) settle() int {
	last, n := time.Now(), len(e.Inbound())
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if m := len(e.Inbound()); m != n {
			last, n = time.Now(), m
		} else if time.Since(last) >= 100*time.Millisecond {
			break
		}
	}
	return n
}

// CountRecords returns how many records a topic holds.
func (e *Env) CountRecords(topic string) int64 {
	e.t.Helper()
	ends, err := kadm.NewClient(e.producer).ListEndOffsets(context.Background(), topic)
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// Inbound returns the inbound messages seen so far.
func (e *Env) Inbound() []*schemas.UserMessage {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*schemas.UserMessage(nil), e.inbound...)
}

// Statuses returns the status events seen so far.
func (e *Env) Statuses() []*schemas.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*schemas.Status(nil), e.statuses...)
}

// SendOutbound produces an outbound message as an application would.
func (e *Env) SendOutbound(m *schemas.UserMessage) {
	e.t.Helper()
	v, err := e.Codecs.UserMessage.Encode(m)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := kafka.ProduceSync(context.Background(), e.producer, &kgo.Record{Topic: e.TransportName + ".outbound", Key: topology.OutboundKey(m), Value: v}); err != nil {
		e.t.Fatal(err)
	}
}

// Case is one row of a transport's request table.
type Case struct {
	Name string
	// Instance picks which instance's web server (URLs[Instance]) gets the
	// request; default the first.
	Instance int
	// The request: method (default GET), path (after BaseURL), query
	// parameters, body and its content type, basic auth.
	Method      string
	Path        string
	Query       url.Values
	Body        string
	ContentType string
	User, Pass  string

	// WantInbound, if set, must match the inbound message the request
	// produced (nil when the request must produce none).
	WantInbound func(t testing.TB, m *schemas.UserMessage)
	// Reply, if set, is the application's reply to that inbound message.
	Reply func(in *schemas.UserMessage) *schemas.UserMessage

	WantStatus       int
	WantBody         string // exact, unless empty
	WantBodyContains []string
	WantHeader       map[string]string
	// Check runs last with the response body.
	Check func(t testing.TB, body string)
}

// Run runs every case against the environment, as subtests.
func Run(t *testing.T, e *Env, cases []Case) {
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) { e.runCase(t, tc) })
	}
}

// Call runs one case against instance i and returns the inbound message
// it produced (nil when it expects none).
func (e *Env) Call(t testing.TB, i int, tc Case) *schemas.UserMessage {
	t.Helper()
	tc.Instance = i
	return e.runCase(t, tc)
}

func (e *Env) runCase(t testing.TB, tc Case) *schemas.UserMessage {
	t.Helper()
	method := tc.Method
	if method == "" {
		method = http.MethodGet
	}
	if tc.Instance < 0 || tc.Instance >= len(e.URLs) {
		t.Fatalf("case %q: no instance %d", tc.Name, tc.Instance)
	}
	u := e.URLs[tc.Instance] + tc.Path
	if tc.Query != nil {
		u += "?" + tc.Query.Encode()
	}
	req, err := http.NewRequest(method, u, strings.NewReader(tc.Body))
	if err != nil {
		t.Fatal(err)
	}
	if tc.ContentType != "" {
		req.Header.Set("Content-Type", tc.ContentType)
	}
	if tc.User != "" || tc.Pass != "" {
		req.SetBasicAuth(tc.User, tc.Pass)
	}
	// Messages are attributed to this request by arrival order: first let
	// whatever earlier requests published arrive.
	before := e.settle()
	mine := func() []*schemas.UserMessage { return e.inbound[before:] }
	type result struct {
		resp *http.Response
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp: resp, body: string(b), err: err}
	}()
	var in *schemas.UserMessage
	if tc.WantInbound != nil || tc.Reply != nil {
		e.wait(30*time.Second, "inbound message", func() bool {
			if got := mine(); len(got) > 0 {
				in = got[0]
				return true
			}
			return false
		})
		if tc.WantInbound != nil {
			tc.WantInbound(t, in)
		}
		if tc.Reply != nil {
			e.SendOutbound(tc.Reply(in))
		}
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("request: %v", res.err)
	}
	if tc.WantStatus != 0 && res.resp.StatusCode != tc.WantStatus {
		t.Errorf("status = %d, want %d (body %q)", res.resp.StatusCode, tc.WantStatus, res.body)
	}
	if tc.WantBody != "" && res.body != tc.WantBody {
		t.Errorf("body = %q, want %q", res.body, tc.WantBody)
	}
	for _, s := range tc.WantBodyContains {
		if !strings.Contains(res.body, s) {
			t.Errorf("body %q lacks %q", res.body, s)
		}
	}
	for k, v := range tc.WantHeader {
		if got := res.resp.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if tc.WantInbound == nil && tc.Reply == nil {
		// No message may have been published for a rejected request.
		time.Sleep(100 * time.Millisecond)
		e.mu.Lock()
		n := len(mine())
		e.mu.Unlock()
		if n != 0 {
			t.Errorf("request published %d inbound message(s), want none", n)
		}
	}
	if tc.Check != nil {
		tc.Check(t, res.body)
	}
	return in
}

// WaitSessionTable waits until instance i's session table (a transport
// built on connectors/ussdsession, named table) has read every record its
// topic holds, as its health check reports: a session written through
// another instance is then known to instance i.
func (e *Env) WaitSessionTable(t testing.TB, i int, table string) {
	t.Helper()
	topic := table + ".ussd_sessions"
	deadline := time.Now().Add(30 * time.Second)
	for {
		want := e.CountRecords(topic)
		var h struct {
			Table struct {
				RecordsRead int64 `json:"records_read"`
			} `json:"session_table"`
		}
		resp, err := http.Get(e.URLs[i] + "/health")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
		}
		if err == nil && h.Table.RecordsRead >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %d's session table read %d of %d records of %s within 30s (%v)", i, h.Table.RecordsRead, want, topic, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
