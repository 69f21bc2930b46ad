package smpp_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/smpp"
	"github.com/vumi-kafka/vumi/connectors/smpp/smsc"
	"github.com/vumi-kafka/vumi/internal/testcluster"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/processors/middleware/builtin"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// cluster is an embedded broker + registry for one test.
type cluster struct {
	*testcluster.Cluster
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	return &cluster{testcluster.Start(t)}
}

func startSMSC(t testing.TB, opts smsc.Options) *smsc.SMSC {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testlog.New(t)
	}
	s, err := smsc.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func kinds() *topology.Registry {
	r := topology.NewRegistry()
	r.Add(smpp.Kinds()...)
	r.Add(smsc.Kind())
	r.AddMiddleware(builtin.Kinds()...)
	return r
}

func (c *cluster) config(workers string) string {
	return c.ClusterYAML(2, c.State, "sms.outbound") + "workers:\n" + workers
}

// transportYAML is one SMPP transport worker on the simulator.
func transportYAML(name string, s *smsc.SMSC, extra string) string {
	host, port, _ := strings.Cut(s.Addr(), ":")
	out := fmt.Sprintf(`
  - name: %s
    kind: smpp
    transport_name: sms
    host: %s
    port: %s
    system_id: esme
    password: secret
    publish_status: true
    initial_reconnect_delay: 1
    max_reconnect_delay: 1
    heartbeat_interval: -1s
`, name, host, port)
	for _, line := range strings.Split(strings.Trim(extra, "\n"), "\n") {
		if line != "" {
			out += "    " + line + "\n"
		}
	}
	return out
}

type deployment struct {
	stop func()
}

func run(t testing.TB, c *cluster, workers string) *deployment {
	t.Helper()
	d := testcluster.RunText(t, c.config(workers), kinds, topology.RunOptions{}, testcluster.RunOptions{StopWithin: 60 * time.Second})
	return &deployment{stop: d.Stop}
}

// sender produces outbound messages as an application would.
type sender struct {
	c  *cluster
	cl *kgo.Client
}

func (c *cluster) sender(t testing.TB) *sender {
	t.Helper()
	ctx := context.Background()
	if err := c.Codecs.UserMessage.Register(ctx, "sms.outbound"); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "sms.outbound"); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatal(err)
	}
	return &sender{c: c, cl: cl}
}

func (s *sender) send(t testing.TB, msgs ...*schemas.UserMessage) {
	t.Helper()
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		v, err := s.c.Codecs.UserMessage.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: "sms.outbound", Key: topology.OutboundKey(m), Value: v}
	}
	if err := s.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func outbound(to, content string) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.ToAddr, m.FromAddr = schemas.String(to), schemas.String("1234")
	m.Content = schemas.String(content)
	m.TransportName, m.TransportType = schemas.String("sms"), schemas.String("sms")
	return m
}

// watcher collects what the transport publishes: events, inbound
// messages and status events.
type watcher struct {
	mu      sync.Mutex
	events  []*schemas.Event
	inbound []*schemas.UserMessage
	status  []*schemas.Status
	changed chan struct{}
}

func (c *cluster) watch(t testing.TB) *watcher {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ConsumeTopics("sms.event", "sms.inbound", "vumi.status"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond),
		kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				v, err := c.Any.Decode(ctx, r.Value)
				if err != nil {
					return
				}
				w.mu.Lock()
				switch x := v.(type) {
				case *schemas.Event:
					w.events = append(w.events, x)
				case *schemas.UserMessage:
					w.inbound = append(w.inbound, x)
				case *schemas.Status:
					w.status = append(w.status, x)
				}
				close(w.changed)
				w.changed = make(chan struct{})
				w.mu.Unlock()
			})
		}
	}()
	return w
}

// until waits for cond (called under the lock) to hold.
func (w *watcher) until(t testing.TB, within time.Duration, what string, cond func(w *watcher) bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		w.mu.Lock()
		ok := cond(w)
		ch := w.changed
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("timed out after %v waiting for %s (%d events, %d inbound, %d status: %v)", within, what, len(w.events), len(w.inbound), len(w.status), statusTypes(w.status))
		}
	}
}

func statusTypes(st []*schemas.Status) []string {
	var out []string
	for _, s := range st {
		out = append(out, s.Type)
	}
	return out
}

func (w *watcher) eventsOf(typ schemas.EventType) map[string]*schemas.Event {
	out := map[string]*schemas.Event{}
	for _, e := range w.events {
		if e.EventType == typ {
			out[e.UserMessageID] = e
		}
	}
	return out
}

func (w *watcher) hasStatus(typ string) bool {
	for _, s := range w.status {
		if s.Type == typ {
			return true
		}
	}
	return false
}

func (w *watcher) countStatus(typ string) int {
	n := 0
	for _, s := range w.status {
		if s.Type == typ {
			n++
		}
	}
	return n
}

// waitSubmitted waits until the simulator accepted n submit_sm.
func waitSubmitted(t testing.TB, s *smsc.SMSC, n int, within time.Duration) []smsc.Submitted {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := s.Submitted()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("simulator has %d submit_sm after %v, want %d", len(got), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
