package aggregator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/schemas/schematest"
)

// t0 is a window boundary (a multiple of 5 s).
var t0 = time.Unix(1_700_000_000, 0).UTC()

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// harness runs the aggregator in goka's tester; processors can be stopped
// and started again on the same tester (a restart: the table survives).
type harness struct {
	t      *testing.T
	tt     *tester.Tester
	codecs *schemas.Codecs
	clk    *clock
	agg    *Aggregator
	out    *tester.QueueTracker
	proc   *goka.Processor
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, p Params) *harness {
	t.Helper()
	reg := schematest.New()
	codecs := schemas.NewCodecs(reg)
	ctx := context.Background()
	if err := codecs.MetricDatapoint.Register(ctx, "vumi.metrics"); err != nil {
		t.Fatal(err)
	}
	if err := codecs.MetricAggregate.Register(ctx, "vumi.metrics.aggregates"); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, tt: tester.New(t), codecs: codecs, clk: &clock{t: t0}}
	h.agg = &Aggregator{
		Params: p, Group: "aggregator", Input: "vumi.metrics", Output: "vumi.metrics.aggregates",
		Datapoints: codecs.MetricDatapoint, Aggregates: codecs.MetricAggregate,
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Stats: NewStats(vm.NewSet(), "aggregator"), Now: h.clk.now,
	}
	h.start()
	h.out = h.tt.NewQueueTracker("vumi.metrics.aggregates")
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start() {
	h.t.Helper()
	p, err := goka.NewProcessor(nil, h.agg.Graph(), goka.WithTester(h.tt))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.proc, h.cancel, h.done = p, cancel, make(chan error, 1)
	go func() { h.done <- p.Run(ctx) }()
	readyCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := p.WaitForReadyContext(readyCtx); err != nil {
		h.t.Fatalf("processor not ready: %v", err)
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
			h.t.Errorf("processor: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Error("processor did not stop within 10s")
	}
	h.cancel = nil
}

// restart stops the processor and starts a new instance whose table holds
// what the old one's held: what a restarted worker, or the new owner of
// the partition after a rebalance, recovers from the table's changelog.
// goka's tester cannot run a group twice, so the new instance runs on a new
// tester and the table is carried over key by key.
func (h *harness) restart() {
	h.t.Helper()
	table := h.agg.Table()
	saved := map[string]any{}
	for _, k := range h.tt.GetTableKeys(table) {
		saved[k] = h.tt.TableValue(table, k)
	}
	h.stop()
	h.tt = tester.New(h.t)
	h.start()
	for k, v := range saved {
		h.tt.SetTableValue(table, k, v)
	}
	h.out = h.tt.NewQueueTracker("vumi.metrics.aggregates")
}

// send consumes one datapoint at the harness's current time.
func (h *harness) send(name string, ts time.Time, v float64, source string, aggs ...string) {
	h.t.Helper()
	if len(aggs) == 0 {
		aggs = []string{"sum"}
	}
	dp := &schemas.MetricDatapoint{Name: name, Aggregators: aggs, Timestamp: ts, Value: v, Source: &source}
	b, err := h.codecs.MetricDatapoint.Encode(dp)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tt.Consume("vumi.metrics", name, b)
}

// tick closes what is due at now.
func (h *harness) tick(now time.Time) {
	h.t.Helper()
	h.clk.set(now)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.agg.Tick(ctx, h.proc, now); err != nil {
		h.t.Fatalf("tick: %v", err)
	}
	h.tt.Catchup()
}

// agg is an emitted aggregate, compactly.
type agg struct {
	name  string
	start float64 // seconds after t0
	value float64
	count int64
}

func (a agg) String() string {
	return fmt.Sprintf("%s@%g=%g(n=%d)", a.name, a.start, a.value, a.count)
}

// emitted returns every aggregate emitted since the last call.
func (h *harness) emitted() []agg {
	h.t.Helper()
	var out []agg
	for {
		key, v, ok := h.out.Next()
		if !ok {
			return out
		}
		a := v.(*schemas.MetricAggregate)
		if key != a.Name {
			h.t.Errorf("aggregate %s keyed %q, want its name", a.Name, key)
		}
		if a.WindowSeconds != 5 {
			h.t.Errorf("aggregate %s: window_seconds %d, want 5", a.Name, a.WindowSeconds)
		}
		if a.Aggregator != a.Name[strings.LastIndexByte(a.Name, '.')+1:] {
			h.t.Errorf("aggregate %s: aggregator %q does not match the name's suffix", a.Name, a.Aggregator)
		}
		out = append(out, agg{a.Name, a.WindowStart.Sub(t0).Seconds(), a.Value, a.Count})
	}
}

func (h *harness) expect(want ...agg) {
	h.t.Helper()
	got := h.emitted()
	if !slices.Equal(got, want) {
		h.t.Fatalf("emitted %v\nwant    %v", got, want)
	}
}

var defaultParams = Params{Bucket: 5, Lateness: 5 * time.Second, ForgetAfter: time.Minute, EmitEmpty: true}

func TestWindowBoundaries(t *testing.T) {
	h := newHarness(t, defaultParams)
	h.clk.set(at(5))
	h.send("vumi.w.n", at(-0.000001), 1, "w1") // last microsecond of window -5
	h.send("vumi.w.n", at(0), 10, "w1")        // first instant of window 0
	h.send("vumi.w.n", at(4.999999), 100, "w1")
	h.send("vumi.w.n", at(5), 1000, "w1")
	// Window -5 closes once its end (0) plus the lateness (5 s) has passed.
	h.tick(at(4.999))
	h.expect()
	h.tick(at(5))
	h.expect(agg{"vumi.w.n.sum", -5, 1, 1})
	h.tick(at(10))
	h.expect(agg{"vumi.w.n.sum", 0, 110, 2})
	h.tick(at(15))
	h.expect(agg{"vumi.w.n.sum", 5, 1000, 1})
}

func TestAggregators(t *testing.T) {
	h := newHarness(t, defaultParams)
	h.clk.set(at(1))
	for i, v := range []float64{4, 2, 9, 5} {
		h.send("vumi.w.t", at(float64(i)*0.5), v, "w1", "sum", "avg", "min", "max", "last")
	}
	h.tick(at(10))
	// Vumi's order: aggregator names sorted.
	h.expect(
		agg{"vumi.w.t.avg", 0, 5, 4},
		agg{"vumi.w.t.last", 0, 5, 4},
		agg{"vumi.w.t.max", 0, 9, 4},
		agg{"vumi.w.t.min", 0, 2, 4},
		agg{"vumi.w.t.sum", 0, 20, 4},
	)
}

func TestEmptyWindows(t *testing.T) {
	h := newHarness(t, defaultParams)
	h.clk.set(at(1))
	h.send("vumi.w.n", at(1), 3, "w1", "sum", "max")
	// No datapoints arrive, and windows still close on time, with 0.0.
	h.tick(at(20))
	h.expect(
		agg{"vumi.w.n.max", 0, 3, 1}, agg{"vumi.w.n.sum", 0, 3, 1},
		agg{"vumi.w.n.max", 5, 0, 0}, agg{"vumi.w.n.sum", 5, 0, 0},
		agg{"vumi.w.n.max", 10, 0, 0}, agg{"vumi.w.n.sum", 10, 0, 0},
	)
	h.tick(at(21)) // nothing new is due
	h.expect()
	// After forget_after without datapoints the metric is forgotten.
	h.tick(at(90))
	if got := len(h.emitted()); got != 2*12-4 {
		t.Errorf("emitted %d empty aggregates up to forget_after, want %d", got, 2*12-4)
	}
	if v := h.tt.TableValue(h.agg.Table(), "vumi.w.n"); v != nil {
		t.Errorf("state kept after forget_after: %+v", v)
	}
	h.tick(at(200))
	h.expect()
}

func TestNoEmptyWindows(t *testing.T) {
	p := defaultParams
	p.EmitEmpty = false
	h := newHarness(t, p)
	h.clk.set(at(1))
	h.send("vumi.w.n", at(1), 3, "w1")
	h.send("vumi.w.n", at(11), 4, "w1")
	h.clk.set(at(11))
	h.tick(at(30))
	h.expect(agg{"vumi.w.n.sum", 0, 3, 1}, agg{"vumi.w.n.sum", 10, 4, 1})
}

func TestLateData(t *testing.T) {
	h := newHarness(t, defaultParams)
	h.clk.set(at(1))
	h.send("vumi.w.n", at(1), 1, "w1")
	// After the window's end but within the lateness: folded in.
	h.clk.set(at(9.9))
	h.send("vumi.w.n", at(4), 2, "w2")
	h.tick(at(10))
	h.expect(agg{"vumi.w.n.sum", 0, 3, 2})
	// The window is emitted: later datapoints for it are counted and dropped.
	h.clk.set(at(11))
	h.send("vumi.w.n", at(2), 100, "w3")
	if n := h.agg.Stats.Late.Get(); n != 1 {
		t.Errorf("late counter %d, want 1", n)
	}
	h.send("vumi.w.n", at(6), 5, "w1")
	h.tick(at(15))
	h.expect(agg{"vumi.w.n.sum", 5, 5, 1})
	// A datapoint for an unknown metric older than forget_after is late too.
	h.send("vumi.w.other", at(-120), 1, "w1")
	if n := h.agg.Stats.Late.Get(); n != 2 {
		t.Errorf("late counter %d, want 2", n)
	}
	if v := h.tt.TableValue(h.agg.Table(), "vumi.w.other"); v != nil {
		t.Errorf("state created for a late datapoint: %+v", v)
	}
}

func TestSeveralWorkers(t *testing.T) {
	h := newHarness(t, defaultParams)
	h.clk.set(at(4))
	for i, src := range []string{"w1", "w2", "w3"} {
		h.send("vumi.app.inbound", at(float64(i)), float64(i+1), src)
		h.send("vumi.app.time", at(float64(i)), float64(i+1), src, "avg")
	}
	h.tick(at(10))
	h.expect(agg{"vumi.app.inbound.sum", 0, 6, 3}, agg{"vumi.app.time.avg", 0, 2, 3})
}

func TestRestartMidWindow(t *testing.T) {
	h := newHarness(t, defaultParams)
	h.clk.set(at(1))
	h.send("vumi.w.n", at(1), 1, "w1")
	h.restart()
	h.send("vumi.w.n", at(2), 2, "w1")
	h.tick(at(10))
	h.expect(agg{"vumi.w.n.sum", 0, 3, 2})
}

func TestEmittedOnce(t *testing.T) {
	h := newHarness(t, defaultParams)
	h.clk.set(at(1))
	h.send("vumi.w.n", at(1), 1, "w1")
	h.send("vumi.w.n", at(6), 2, "w1")
	h.tick(at(10))
	h.tick(at(10))
	h.tick(at(11))
	h.expect(agg{"vumi.w.n.sum", 0, 1, 1})
	// A restart (or a rebalance: the new owner recovers the same table)
	// does not emit the closed window again, and closes the open one once.
	h.restart()
	h.tick(at(12))
	h.expect()
	h.tick(at(15))
	h.expect(agg{"vumi.w.n.sum", 5, 2, 1})
	h.restart()
	h.tick(at(15))
	h.tick(at(16))
	h.expect()
	h.send("vumi.w.n", at(3), 7, "w1") // its window is long emitted
	h.tick(at(30))
	got := h.emitted()
	for _, a := range got {
		if a.start <= 5 {
			t.Errorf("window %v emitted again", a)
		}
	}
}

func TestInvalidDatapoints(t *testing.T) {
	h := newHarness(t, defaultParams)
	h.clk.set(at(1))
	h.tt.Consume("vumi.metrics", "junk", []byte("not avro"))
	h.send("vumi.w.n", at(1), 1, "w1", "median")
	h.send("vumi.w.n", at(1e6), 1, "w1") // far in the future
	b, _ := h.codecs.MetricDatapoint.Encode(&schemas.MetricDatapoint{Name: "vumi.w.x", Aggregators: []string{"sum"}, Timestamp: at(1), Value: 1})
	h.tt.Consume("vumi.metrics", "wrong-key", b)
	if n := h.agg.Stats.Invalid.Get(); n != 4 {
		t.Errorf("invalid counter %d, want 4", n)
	}
	h.tick(at(10))
	h.expect()
}
