package routers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/vumi-kafka/vumi/processors/dispatcher"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/schemas/schematest"
	"github.com/vumi-kafka/vumi/topology"
)

// t0 is the harness clock's start.
var t0 = time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// registry is the kinds the tests load configs with.
func registry() *topology.Registry { return topology.NewRegistry().Add(Kinds()...) }

// load loads one dispatcher worker called "disp" from its config keys.
func load(workerYAML string) (*topology.Config, error) {
	doc := "cluster:\n  kafka:\n    brokers: [127.0.0.1:1]\n  schema_registry:\n    url: http://127.0.0.1:1\nworkers:\n  - name: disp\n    heartbeat_interval: -1s\n" +
		indent(strings.TrimLeft(workerYAML, "\n"), "    ")
	return topology.Load("test.yaml", []byte(doc), registry(), nil)
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = by + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// newRouter builds the router of a loaded config, as the kind would.
func newRouter(c topology.WorkerConfig) (dispatcher.Router, *dispatcher.Config, error) {
	switch c := c.(type) {
	case *SimpleConfig:
		r, err := newSimple(c)
		return r, &c.Config, err
	case *TransportToTransportConfig:
		r, err := newTransportToTransport(c)
		return r, &c.Config, err
	case *ToAddrConfig:
		r, err := newToAddr(c)
		return r, &c.Config, err
	case *FromAddrMultiplexConfig:
		r, err := newFromAddrMultiplex(c)
		return r, &c.Config, err
	case *UserGroupingConfig:
		r, err := newUserGrouping(c)
		return r, &c.Config, err
	case *ContentKeywordConfig:
		r, err := newContentKeyword(c)
		return r, &c.Config, err
	case *RedirectConfig:
		r, err := newRedirect(c)
		return r, &c.Config, err
	case *LoadBalancingConfig:
		r, err := newLoadBalancing(c)
		return r, &c.Config, err
	case *RoutingTableConfig:
		r, err := newRoutingTable(c)
		return r, &c.Config, err
	case *PassThroughConfig:
		return newPassThrough(&c.Config), &c.Config, nil
	}
	return nil, nil, fmt.Errorf("no router for %T", c)
}

// harness runs one dispatcher in goka's tester. The tester (and so the
// group table) outlives restarts of the dispatcher.
type harness struct {
	t      testing.TB
	tt     *tester.Tester
	codecs *schemas.Codecs
	deps   *topology.Deps
	spec   *topology.WorkerSpec
	clk    *clock
	d      *dispatcher.Dispatcher
	cancel context.CancelFunc
	done   chan error
	tracks map[string]*tester.QueueTracker
}

func newHarness(t testing.TB, workerYAML string) *harness {
	t.Helper()
	cfg, err := load(workerYAML)
	if err != nil {
		t.Fatal(err)
	}
	reg := schematest.New()
	var w io.Writer = io.Discard
	if os.Getenv("VUMI_TEST_LOG") != "" {
		w = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	deps, err := topology.NewDeps(&cfg.Cluster, cfg.Cluster.Kafka.Brokers, reg, registry(), log)
	if err != nil {
		t.Fatal(err)
	}
	codecs := deps.Codecs
	ctx := context.Background()
	for _, err := range []error{
		codecs.UserMessage.Register(ctx, "test-user_message"),
		codecs.Event.Register(ctx, "test-event"),
		codecs.Failure.Register(ctx, "test-failure"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, tt: tester.New(t), codecs: codecs, deps: deps, spec: cfg.Workers[0], clk: &clock{t: t0}}
	h.start()
	h.track()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start() {
	h.t.Helper()
	r, base, err := newRouter(h.spec.Config)
	if err != nil {
		h.t.Fatal(err)
	}
	if c, ok := r.(interface{ setClock(func() time.Time) }); ok {
		c.setClock(h.clk.now)
	}
	d, err := dispatcher.New(h.deps, h.spec, base, r)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.d, h.cancel, h.done = d, cancel, make(chan error, 1)
	go func() { h.done <- d.RunWith(ctx, goka.WithTester(h.tt)) }()
	readyCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := d.WaitForReady(readyCtx); err != nil {
		h.t.Fatalf("dispatcher not ready: %v", err)
	}
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("dispatcher: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Error("dispatcher did not stop within 10s")
	}
	h.cancel = nil
}

// restart stops the dispatcher and starts a new one, whose group table is
// recovered from the old one's (goka's tester cannot restart a processor
// on the same tester: it waits for every consumer group it ever made).
func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	table := string(goka.GroupTable(goka.Group("disp")))
	from, err := h.tt.StorageBuilder()(table, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tt = tester.New(h.t)
	to, err := h.tt.StorageBuilder()(table, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	it, err := from.Iterator()
	if err != nil {
		h.t.Fatal(err)
	}
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			h.t.Fatal(err)
		}
		if err := to.Set(string(it.Key()), append([]byte(nil), v...)); err != nil {
			h.t.Fatal(err)
		}
	}
	it.Release()
	h.start()
	h.track()
}

func (h *harness) track() {
	h.tracks = map[string]*tester.QueueTracker{}
	for _, e := range h.d.Graph().OutputStreams() {
		h.tracks[e.Topic()] = h.tt.NewQueueTracker(e.Topic())
	}
}

func (h *harness) inbound(transport string, m *schemas.UserMessage) {
	h.t.Helper()
	b, err := h.codecs.UserMessage.Encode(m)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tt.Consume(transport+".inbound", string(topology.InboundKey(m)), b)
}

func (h *harness) outbound(exposed string, m *schemas.UserMessage) {
	h.t.Helper()
	b, err := h.codecs.UserMessage.Encode(m)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tt.Consume(exposed+".outbound", string(topology.OutboundKey(m)), b)
}

func (h *harness) event(transport string, e *schemas.Event) {
	h.t.Helper()
	b, err := h.codecs.Event.Encode(e)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tt.Consume(transport+".event", string(topology.EventKey(e)), b)
}

// sweep runs the router's sweep at the harness's clock.
func (h *harness) sweep() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.d.Sweep(ctx, h.clk.now()); err != nil {
		h.t.Fatalf("sweep: %v", err)
	}
	h.tt.Catchup()
}

// out is one record the dispatcher emitted.
type out struct {
	topic, key string
	v          any
}

func (o out) String() string {
	switch v := o.v.(type) {
	case *schemas.UserMessage:
		return fmt.Sprintf("%s[%s] %q tn=%s", o.topic, o.key, v.Text(), v.Transport())
	case *schemas.Event:
		return fmt.Sprintf("%s[%s] %s", o.topic, o.key, v.EventType)
	case *schemas.Failure:
		return fmt.Sprintf("%s[%s] %s", o.topic, o.key, v.Reason)
	}
	return fmt.Sprintf("%s[%s] %T", o.topic, o.key, o.v)
}

// drain returns what the dispatcher emitted since the last drain, sorted
// by topic (order within a topic kept).
func (h *harness) drain() []out {
	var got []out
	topics := make([]string, 0, len(h.tracks))
	for t := range h.tracks {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		for {
			k, v, ok := h.tracks[t].Next()
			if !ok {
				break
			}
			got = append(got, out{t, k, v})
		}
	}
	return got
}

// topics returns the topics of outs, in order.
func topicsOf(outs []out) []string {
	var ts []string
	for _, o := range outs {
		ts = append(ts, o.topic)
	}
	return ts
}

func (h *harness) tableKeys() []string {
	return h.tt.GetTableKeys(goka.GroupTable(goka.Group("disp")))
}

func msg(from, to, content, transport string) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr = schemas.String(from), schemas.String(to)
	if content != "" {
		m.Content = schemas.String(content)
	}
	if transport != "" {
		m.TransportName = schemas.String(transport)
	}
	m.TransportType = schemas.String("sms")
	return m
}

func ack(of *schemas.UserMessage, transport string) *schemas.Event {
	return &schemas.Event{EventID: schemas.GenerateID(), EventType: schemas.EventAck, UserMessageID: of.MessageID,
		SentMessageID: schemas.String("remote-" + of.MessageID), Timestamp: schemas.Now(), TransportName: schemas.String(transport)}
}
