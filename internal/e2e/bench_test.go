package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// benchTransport is a transport whose outside world is the benchmark: it
// hands its base to the test and reports every outbound message.
type benchTransportConfig struct {
	transport.Config `yaml:",inline"`
}

func (c *benchTransportConfig) Validate() error { return c.ValidateBase() }

type benchHooks struct {
	ready    chan *transport.Transport
	outbound func(m *schemas.UserMessage)
}

var hooks benchHooks

func benchTransportKind() *topology.Kind {
	return &topology.Kind{
		Name: "bench_transport", Role: topology.RoleTransport, Summary: "benchmark transport",
		NewConfig: func() topology.WorkerConfig { return &benchTransportConfig{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*benchTransportConfig)
			return topology.WorkerFunc(func(ctx context.Context) error {
				t, err := transport.New(deps, spec, &cfg.Config)
				if err != nil {
					return err
				}
				defer t.Close()
				hooks.ready <- t
				return t.Run(ctx, transport.HandlerFunc(func(_ context.Context, m *schemas.UserMessage) error {
					hooks.outbound(m)
					return nil
				}))
			}), nil
		},
	}
}

// roundTrip runs a bench transport and the echo app; send publishes
// inbound messages, and every reply's latency is recorded.
type roundTrip struct {
	t       *transport.Transport
	mu      sync.Mutex
	sent    map[string]time.Time
	lat     []time.Duration
	replies atomic.Int64
}

// BenchmarkRoundTrip measures transport -> application -> transport on
// the embedded broker: b.N messages from 1,000 users published by 64
// concurrent senders as fast as the transport base takes them, timed until
// every reply is back at the transport. Reports msgs/s and latencies.
func BenchmarkRoundTrip(b *testing.B) {
	rt := setupRoundTrip(b)
	users := 1000
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				rt.send(b, fmt.Sprintf("+2776%07d", i%int64(users)), "benchmark message")
			}
		}()
	}
	wg.Wait()
	rt.wait(b, int64(b.N), 120*time.Second)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	rt.mu.Lock()
	matched := len(rt.lat)
	rt.mu.Unlock()
	if matched != b.N {
		b.Fatalf("%d replies matched their messages, want %d", matched, b.N)
	}
	p50, p99 := rt.percentiles()
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}

// BenchmarkRoundTripAt1000PerSecond sends at a steady 1,000 messages/s for
// b.N messages and reports the p50 and p99 round-trip latency.
func BenchmarkRoundTripAt1000PerSecond(b *testing.B) {
	rt := setupRoundTrip(b)
	b.ResetTimer()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < b.N; i++ {
		<-tick.C
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rt.send(b, fmt.Sprintf("+2776%07d", i%1000), "paced message")
		}()
	}
	wg.Wait()
	rt.wait(b, int64(b.N), 60*time.Second)
	b.StopTimer()
	p50, p99 := rt.percentiles()
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}

func setupRoundTrip(b *testing.B) *roundTrip {
	b.Helper()
	rt := &roundTrip{sent: map[string]time.Time{}}
	hooks = benchHooks{ready: make(chan *transport.Transport, 1), outbound: rt.received}
	c := startCluster(b)
	run(b, c, `
  - name: bench_transport
    kind: bench_transport
    transport_name: bench
    amqp_prefetch_count: 500
  - name: echo
    kind: echo
    transport_name: bench
`)
	select {
	case rt.t = <-hooks.ready:
	case <-time.After(30 * time.Second):
		b.Fatal("bench transport did not start")
	}
	// Warm up: one message through the whole pipeline.
	rt.send(b, "+27000000000", "warm up")
	rt.wait(b, 1, 60*time.Second)
	rt.mu.Lock()
	rt.lat = nil
	rt.mu.Unlock()
	rt.replies.Store(0)
	return rt
}

func (rt *roundTrip) received(m *schemas.UserMessage) {
	now := time.Now()
	rt.mu.Lock()
	if m.InReplyTo != nil {
		if t0, ok := rt.sent[*m.InReplyTo]; ok {
			rt.lat = append(rt.lat, now.Sub(t0))
			delete(rt.sent, *m.InReplyTo)
		}
	}
	rt.mu.Unlock()
	rt.replies.Add(1)
}

func (rt *roundTrip) send(b *testing.B, from, content string) {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr = schemas.String(from), schemas.String("1234")
	m.Content = schemas.String(content)
	m.TransportType = schemas.String("sms")
	rt.mu.Lock()
	rt.sent[m.MessageID] = time.Now()
	rt.mu.Unlock()
	if err := rt.t.PublishMessage(context.Background(), m); err != nil {
		b.Error(err)
	}
}

func (rt *roundTrip) wait(b *testing.B, n int64, within time.Duration) {
	deadline := time.Now().Add(within)
	for rt.replies.Load() < n {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d replies within %v", rt.replies.Load(), n, within)
		}
		time.Sleep(time.Millisecond)
	}
}

func (rt *roundTrip) percentiles() (p50, p99 time.Duration) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.lat) == 0 {
		return 0, 0
	}
	sort.Slice(rt.lat, func(i, j int) bool { return rt.lat[i] < rt.lat[j] })
	return rt.lat[len(rt.lat)/2], rt.lat[len(rt.lat)*99/100]
}
