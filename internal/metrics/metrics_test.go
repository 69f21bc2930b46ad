package metrics

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/schemas/schematest"
)

func TestAggregatorApply(t *testing.T) {
	vals := []float64{3, 1, 2}
	for _, tc := range []struct {
		agg   Aggregator
		vals  []float64
		want  float64
		label string
	}{
		{Sum, vals, 6, "sum"},
		{Avg, vals, 2, "avg"},
		{Min, vals, 1, "min"},
		{Max, vals, 3, "max"},
		{Last, vals, 2, "last"},
		{Sum, nil, 0, "sum empty"},
		{Avg, nil, 0, "avg empty"},
		{Min, nil, 0, "min empty"},
		{Max, nil, 0, "max empty"},
		{Last, nil, 0, "last empty"},
	} {
		t.Run(tc.label, func(t *testing.T) {
			if got := tc.agg.Apply(tc.vals); got != tc.want {
				t.Errorf("%s(%v) = %v, want %v", tc.agg, tc.vals, got, tc.want)
			}
		})
	}
}

func TestParseAggregator(t *testing.T) {
	for _, name := range []string{"sum", "avg", "min", "max", "last"} {
		if a, err := ParseAggregator(name); err != nil || string(a) != name {
			t.Errorf("ParseAggregator(%q) = %q, %v", name, a, err)
		}
	}
	if _, err := ParseAggregator("median"); err == nil {
		t.Error("median accepted")
	}
}

func TestRegister(t *testing.T) {
	for _, tc := range []struct {
		name    string
		first   Registrable
		second  func(first Registrable) Registrable
		wantErr error
	}{
		{"duplicate name", NewMetric("a"), func(Registrable) Registrable { return NewCount("a") }, ErrDuplicateMetric},
		{"same metric twice", NewMetric("a"), func(f Registrable) Registrable { return f }, ErrDuplicateMetric},
		{"distinct names", NewMetric("a"), func(Registrable) Registrable { return NewTimer("b") }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewManager("vumi.test.", Options{})
			if err := m.Register(tc.first); err != nil {
				t.Fatal(err)
			}
			err := m.Register(tc.second(tc.first))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("second register: %v, want %v", err, tc.wantErr)
			}
		})
	}
	t.Run("with a second manager", func(t *testing.T) {
		c := NewCount("c")
		if err := NewManager("a.", Options{}).Register(c); err != nil {
			t.Fatal(err)
		}
		if err := NewManager("b.", Options{}).Register(c); !errors.Is(err, ErrAlreadyManaged) {
			t.Fatalf("got %v, want ErrAlreadyManaged", err)
		}
	})
	t.Run("bad name", func(t *testing.T) {
		if err := NewManager("vumi.", Options{}).Register(NewMetric("has space")); err == nil {
			t.Fatal("name with a space accepted")
		}
	})
}

func TestDefaultAggregators(t *testing.T) {
	for _, tc := range []struct {
		m    Registrable
		want []Aggregator
	}{
		{NewMetric("m"), []Aggregator{Avg}},
		{NewCount("c"), []Aggregator{Sum}},
		{NewTimer("t"), []Aggregator{Avg}},
		{NewMetric("custom", Max, Min, Max, Avg), []Aggregator{Avg, Max, Min}},
	} {
		if got := tc.m.self().aggs; !slices.Equal(got, tc.want) {
			t.Errorf("%s: aggregators %v, want %v", tc.m.Name(), got, tc.want)
		}
	}
}

// clock is a settable clock.
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

type point struct {
	name string
	aggs string
	sec  int64
	v    float64
}

func points(dps []*schemas.MetricDatapoint) []point {
	var out []point
	for _, d := range dps {
		aggs := ""
		for i, a := range d.Aggregators {
			if i > 0 {
				aggs += ","
			}
			aggs += a
		}
		out = append(out, point{d.Name, aggs, d.Timestamp.Unix(), d.Value})
	}
	return out
}

func TestCollect(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name string
		run  func(m *Manager, c *clock)
		want []point
	}{
		{
			name: "count values of one second are summed",
			run: func(m *Manager, c *clock) {
				n := MustRegister(m, NewCount("n"))
				n.Inc()
				n.Inc()
				n.Add(3)
				c.set(t0.Add(time.Second))
				n.Inc()
			},
			want: []point{{"vumi.t.n", "sum", t0.Unix(), 5}, {"vumi.t.n", "sum", t0.Unix() + 1, 1}},
		},
		{
			name: "averaged values are combined per second into their mean",
			run: func(m *Manager, c *clock) {
				v := MustRegister(m, NewMetric("v"))
				v.Set(1.5)
				v.Set(2.5)
				c.t = c.t.Add(time.Second)
				v.Set(4)
			},
			want: []point{{"vumi.t.v", "avg", t0.Unix(), 2}, {"vumi.t.v", "avg", t0.Unix() + 1, 4}},
		},
		{
			name: "max and last are combined per second",
			run: func(m *Manager, c *clock) {
				mx := MustRegister(m, NewMetric("mx", Max))
				ls := MustRegister(m, NewMetric("ls", Last))
				mn := MustRegister(m, NewMetric("mn", Min))
				for _, v := range []float64{3, 7, 5} {
					mx.Set(v)
					ls.Set(v)
					mn.Set(v)
				}
			},
			want: []point{{"vumi.t.mx", "max", t0.Unix(), 7}, {"vumi.t.ls", "last", t0.Unix(), 5}, {"vumi.t.mn", "min", t0.Unix(), 3}},
		},
		{
			name: "several aggregators keep every value",
			run: func(m *Manager, c *clock) {
				x := MustRegister(m, NewCount("x", Sum, Avg))
				x.Inc()
				x.Inc()
			},
			want: []point{{"vumi.t.x", "avg,sum", t0.Unix(), 1}, {"vumi.t.x", "avg,sum", t0.Unix(), 1}},
		},
		{
			name: "oneshots come first and need no registration",
			run: func(m *Manager, c *clock) {
				MustRegister(m, NewCount("n")).Inc()
				m.Oneshot(NewMetric("once", Max), 42)
			},
			want: []point{{"vumi.t.once", "max", t0.Unix(), 42}, {"vumi.t.n", "sum", t0.Unix(), 1}},
		},
		{
			name: "figure hooks register lazily",
			run: func(m *Manager, c *clock) {
				m.Count("inbound", 2)
				m.Count("inbound", 3)
				m.Observe("handle", 250*time.Millisecond)
			},
			want: []point{{"vumi.t.inbound", "sum", t0.Unix(), 5}, {"vumi.t.handle", "avg", t0.Unix(), 0.25}},
		},
		{
			name: "nothing set, nothing published",
			run:  func(m *Manager, c *clock) { MustRegister(m, NewMetric("quiet")) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: t0}
			m := NewManager("vumi.t.", Options{Now: c.now, Source: "w1"})
			tc.run(m, c)
			dps := m.Collect()
			if got := points(dps); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v\nwant %v", got, tc.want)
			}
			for _, d := range dps {
				if d.Source == nil || *d.Source != "w1" {
					t.Errorf("%s: source %v, want w1", d.Name, d.Source)
				}
			}
			if again := m.Collect(); len(again) != 0 {
				t.Errorf("values published twice: %v", points(again))
			}
		})
	}
}

func TestTimerReentrant(t *testing.T) {
	m := NewManager("vumi.t.", Options{})
	tm := MustRegister(m, NewTimer("work", Avg, Max)) // every value kept
	outer := tm.Start()
	inner := tm.Timeit()
	if err := inner.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := inner.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := outer.Stop(); err != nil {
		t.Fatal(err)
	}
	dps := m.Collect()
	if len(dps) != 2 {
		t.Fatalf("got %d datapoints, want 2", len(dps))
	}
	if !(dps[1].Value > dps[0].Value) || dps[0].Value < 0.005 {
		t.Errorf("inner %v s, outer %v s: the outer timing must be the longer, both ≥ 5 ms", dps[0].Value, dps[1].Value)
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"start twice", func() error { return tm.Start().Start() }, ErrTimerAlreadyStarted},
		{"stop unstarted", func() error { return tm.Timeit().Stop() }, ErrTimerNotStarted},
		{"stop twice", func() error { x := tm.Start(); _ = x.Stop(); return x.Stop() }, ErrTimerAlreadyStopped},
	} {
		if err := tc.do(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	tm.Time(func() {})
}

func TestMaxPending(t *testing.T) {
	m := NewManager("vumi.t.", Options{})
	v := MustRegister(m, NewMetric("v", Avg, Max)) // every value kept
	v.max = 3
	for i := range 5 {
		v.Set(float64(i))
	}
	dps := m.Collect()
	if len(dps) != 3 || dps[0].Value != 2 || m.dropped.Load() != 2 {
		t.Fatalf("kept %v, dropped %d; want the newest 3 kept and 2 dropped", points(dps), m.dropped.Load())
	}
}

// An averaged metric (a timer) publishes one datapoint per second: the
// mean of the second's values, with their number as its count; the
// aggregators weight it by that count. Other metrics' datapoints count 1.
func TestMeanDatapointCount(t *testing.T) {
	c := &clock{t: time.Unix(1700000000, 0)}
	m := NewManager("vumi.t.", Options{Now: c.now})
	tm := MustRegister(m, NewTimer("handle"))
	n := MustRegister(m, NewCount("n"))
	both := MustRegister(m, NewMetric("both", Avg, Max))
	for i := range 1000 {
		tm.Observe(time.Duration(i) * time.Millisecond)
		n.Inc()
		if i < 2 {
			both.Set(float64(i))
		}
	}
	c.t = c.t.Add(time.Second)
	tm.Observe(time.Second)
	m.Oneshot(NewMetric("once"), 1)
	got := map[string][]string{}
	for _, d := range m.Collect() {
		got[d.Name] = append(got[d.Name], fmt.Sprintf("%d:%g/%d", d.Timestamp.Unix()-1700000000, d.Value, d.Count))
	}
	want := map[string][]string{
		"vumi.t.handle": {"0:0.4995/1000", "1:1/1"},
		"vumi.t.n":      {"0:1000/1"},
		"vumi.t.both":   {"0:0/1", "0:1/1"},
		"vumi.t.once":   {"1:1/1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("datapoints (second:value/count) %v\nwant %v", got, want)
	}
}

type recorder struct {
	mu  sync.Mutex
	got []*schemas.MetricDatapoint
	err error
}

func (r *recorder) PublishDatapoints(_ context.Context, dps []*schemas.MetricDatapoint) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.got = append(r.got, dps...)
	return nil
}

func (r *recorder) len() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.got) }

func TestPublishLoop(t *testing.T) {
	rec := &recorder{}
	published := make(chan struct{}, 10)
	m := NewManager("vumi.t.", Options{PublishInterval: 10 * time.Millisecond, Publisher: rec,
		OnPublish: func(*Manager) { published <- struct{}{} }})
	n := MustRegister(m, NewCount("n"))
	n.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.Start(ctx)
	select {
	case <-published:
	case <-ctx.Done():
		t.Fatal("no publish within 10s")
	}
	n.Inc()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if rec.len() != 2 || m.Published() != 2 {
		t.Fatalf("published %d datapoints (counter %d), want 2: the final Stop publishes what is left", rec.len(), m.Published())
	}
}

func TestPublishWithoutPublisher(t *testing.T) {
	m := NewManager("vumi.t.", Options{})
	if err := m.Publish(context.Background()); !errors.Is(err, ErrNoPublisher) {
		t.Fatalf("got %v", err)
	}
}

func TestKafkaPublisher(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "vumi.metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := schematest.New()
	codecs := schemas.NewCodecs(reg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := codecs.MetricDatapoint.Register(ctx, "vumi.metrics"); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("vumi.metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	m := NewManager("vumi.w.", Options{Source: "w", Publisher: &KafkaPublisher{Client: cl, Codec: codecs.MetricDatapoint, Topic: "vumi.metrics"}})
	m.Count("outbound", 4)
	if err := m.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("got %d records", len(recs))
	}
	if string(recs[0].Key) != "vumi.w.outbound" {
		t.Errorf("key %q, want the metric name", recs[0].Key)
	}
	var dp schemas.MetricDatapoint
	if err := codecs.MetricDatapoint.Decode(recs[0].Value, &dp); err != nil {
		t.Fatal(err)
	}
	if dp.Name != "vumi.w.outbound" || dp.Value != 4 || !slices.Equal(dp.Aggregators, []string{"sum"}) || *dp.Source != "w" {
		t.Errorf("datapoint %+v", dp)
	}
}
