// Package metrics is Vumi's metric API for workers (vumi.blinkenlights.metrics):
// a Manager holds a set of named metrics under a prefix and publishes their
// values as datapoints to vumi.metrics every publish interval, for the
// metric_aggregator workers to bucket and aggregate.
//
//	m := metrics.NewManager("vumi.myworker.", metrics.Options{Publisher: pub})
//	value := m.MustRegister(metrics.NewMetric("a.value"))       // averaged
//	count := m.MustRegister(metrics.NewCount("a.count"))        // summed
//	timer := m.MustRegister(metrics.NewTimer("handle"))         // averaged seconds
//	value.Set(1.23)
//	count.Inc()
//	t := timer.Start()
//	...
//	t.Stop()
//
// Every value is timestamped with the whole second it was set in, as Vumi
// does. Metrics whose only aggregator is sum, min, max or last have the
// values of one second combined before publishing (exact for those
// aggregators, and what keeps a busy counter to one datapoint a second);
// metrics whose only aggregator is avg (timers, by default) publish one
// datapoint a second too, the mean of the second's values with their
// number in the datapoint's count, which the aggregators weight it by;
// other metrics (several aggregators) publish every value.
package metrics

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Aggregator is the name of an aggregation function the aggregation workers
// apply to the values of one window.
type Aggregator string

// The aggregators Vumi defines. Every one returns 0.0 for an empty window.
const (
	Sum  Aggregator = "sum"
	Avg  Aggregator = "avg"
	Min  Aggregator = "min"
	Max  Aggregator = "max"
	Last Aggregator = "last"
)

// Aggregators lists every known aggregator in Vumi's (alphabetical) order.
var Aggregators = []Aggregator{Avg, Last, Max, Min, Sum}

// ParseAggregator returns the aggregator called name.
func ParseAggregator(name string) (Aggregator, error) {
	switch a := Aggregator(name); a {
	case Sum, Avg, Min, Max, Last:
		return a, nil
	}
	return "", fmt.Errorf("unknown aggregator %q (want one of avg, last, max, min, sum)", name)
}

// Apply applies the aggregator to values in the order they were taken,
// returning 0.0 when there are none, as Vumi's Aggregator functions do.
func (a Aggregator) Apply(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	switch a {
	case Sum, Avg:
		s := 0.0
		for _, v := range values {
			s += v
		}
		if a == Avg {
			return s / float64(len(values))
		}
		return s
	case Min, Max:
		r := values[0]
		for _, v := range values[1:] {
			if (a == Min && v < r) || (a == Max && v > r) {
				r = v
			}
		}
		return r
	case Last:
		return values[len(values)-1]
	}
	return 0
}

// combine merges a new value into a value already combined for the same
// second; only meaningful for single-aggregator sum, min, max and last.
func (a Aggregator) combine(old, v float64) float64 {
	switch a {
	case Sum:
		return old + v
	case Min:
		return min(old, v)
	case Max:
		return max(old, v)
	}
	return v // Last
}

// Errors of the metric API.
var (
	// ErrDuplicateMetric is returned when a name is registered twice with
	// one manager (Vumi's MetricRegistrationError).
	ErrDuplicateMetric = errors.New("duplicate metric name")
	// ErrAlreadyManaged is returned when a metric is registered with a
	// second manager.
	ErrAlreadyManaged = errors.New("metric already registered with a manager")
	// ErrTimerAlreadyStarted, ErrTimerNotStarted and
	// ErrTimerAlreadyStopped are Vumi's TimerError cases: a timing may be
	// started once and stopped once, in that order.
	ErrTimerAlreadyStarted = errors.New("timer already started")
	ErrTimerNotStarted     = errors.New("timer not started")
	ErrTimerAlreadyStopped = errors.New("timer already stopped")
)

// sample is one value, or the combination of one second's values: for a
// mean metric, v is the sum of n values.
type sample struct {
	sec int64
	v   float64
	n   int64
}

// DefaultMaxPending bounds the values one metric keeps between two
// publishes; beyond it the oldest are dropped (and counted), so a worker
// whose publishing is stuck does not grow without bound.
const DefaultMaxPending = 100_000

// base is what every metric kind shares.
type base struct {
	name     string
	aggs     []Aggregator // sorted, unique
	aggNames []string
	// combineWith is the aggregator a second's values are combined with,
	// or "" to keep every value.
	combineWith Aggregator
	// mean: the only aggregator is avg; a second's values are summed and
	// counted, and published as their mean and count.
	mean bool

	managed atomic.Bool
	now     func() time.Time
	mu      sync.Mutex
	values  []sample
	dropped int64
	max     int
}

func (b *base) init(name string, aggs []Aggregator, def Aggregator) {
	if len(aggs) == 0 {
		aggs = []Aggregator{def}
	}
	seen := map[Aggregator]bool{}
	var uniq []Aggregator
	for _, a := range aggs {
		if !seen[a] {
			seen[a] = true
			uniq = append(uniq, a)
		}
	}
	sort.Slice(uniq, func(i, j int) bool { return uniq[i] < uniq[j] })
	b.name, b.aggs, b.now, b.max = name, uniq, time.Now, DefaultMaxPending
	for _, a := range uniq {
		b.aggNames = append(b.aggNames, string(a))
	}
	if len(uniq) == 1 && uniq[0] != Avg {
		b.combineWith = uniq[0]
	}
	b.mean = len(uniq) == 1 && uniq[0] == Avg
}

// Name is the metric's name without the manager's prefix.
func (b *base) Name() string { return b.name }

// Aggregators returns the aggregators requested for the metric, sorted.
func (b *base) Aggregators() []Aggregator { return append([]Aggregator(nil), b.aggs...) }

// Set records a value for the next publish.
func (b *base) Set(v float64) {
	sec := b.now().Unix()
	b.mu.Lock()
	if n := len(b.values); n > 0 && b.values[n-1].sec == sec && (b.mean || b.combineWith != "") {
		last := &b.values[n-1]
		if b.mean {
			last.v += v
			last.n++
		} else {
			last.v = b.combineWith.combine(last.v, v)
		}
	} else {
		if len(b.values) >= b.max {
			b.dropped += b.values[0].n
			copy(b.values, b.values[1:])
			b.values = b.values[:len(b.values)-1]
		}
		b.values = append(b.values, sample{sec, v, 1})
	}
	b.mu.Unlock()
}

// poll takes the values recorded since the last poll (Vumi's poll).
func (b *base) poll(buf []sample) ([]sample, int64) {
	b.mu.Lock()
	buf = append(buf, b.values...)
	b.values = b.values[:0]
	d := b.dropped
	b.dropped = 0
	b.mu.Unlock()
	return buf, d
}

func (b *base) self() *base { return b }

// Registrable is a metric that a Manager can manage: *Metric, *Count or
// *Timer.
type Registrable interface {
	Name() string
	self() *base
}

// Metric is Vumi's simple metric: values set are published and, by default,
// averaged.
type Metric struct{ base }

// NewMetric returns a metric; with no aggregators it is averaged (AVG).
func NewMetric(name string, aggs ...Aggregator) *Metric {
	m := &Metric{}
	m.init(name, aggs, Avg)
	return m
}

// Count is a counter: by default its values are summed (SUM).
type Count struct{ base }

// NewCount returns a counter; with no aggregators it is summed.
func NewCount(name string, aggs ...Aggregator) *Count {
	m := &Count{}
	m.init(name, aggs, Sum)
	return m
}

// Inc adds 1 (Vumi's inc).
func (c *Count) Inc() { c.Set(1) }

// Add adds n.
func (c *Count) Add(n float64) { c.Set(n) }

// Timer records durations in seconds; by default they are averaged.
type Timer struct{ base }

// NewTimer returns a timer; with no aggregators it is averaged.
func NewTimer(name string, aggs ...Aggregator) *Timer {
	m := &Timer{}
	m.init(name, aggs, Avg)
	return m
}

// Observe records a duration.
func (t *Timer) Observe(d time.Duration) { t.Set(d.Seconds()) }

// Timing is one timing of a Timer (Vumi's EventTimer): every Timeit or Start
// returns its own, so overlapping timings of one Timer do not interfere.
type Timing struct {
	t       *Timer
	start   time.Time
	stopped bool
}

// Timeit returns a timing that is not started yet (Vumi's timeit()).
func (t *Timer) Timeit() *Timing { return &Timing{t: t} }

// Start returns a started timing (Vumi's timeit(start=True)).
func (t *Timer) Start() *Timing { return &Timing{t: t, start: time.Now()} }

// Time runs fn and records how long it took, also when it panics.
func (t *Timer) Time(fn func()) {
	start := time.Now()
	defer func() { t.Observe(time.Since(start)) }()
	fn()
}

// Start starts the timing; a timing starts once.
func (tm *Timing) Start() error {
	if !tm.start.IsZero() {
		return fmt.Errorf("timer %s: %w", tm.t.name, ErrTimerAlreadyStarted)
	}
	tm.start = time.Now()
	return nil
}

// Stop stops the timing and records its duration; a timing stops once,
// after it started.
func (tm *Timing) Stop() error {
	if tm.start.IsZero() {
		return fmt.Errorf("timer %s: %w", tm.t.name, ErrTimerNotStarted)
	}
	if tm.stopped {
		return fmt.Errorf("timer %s: %w", tm.t.name, ErrTimerAlreadyStopped)
	}
	tm.stopped = true
	tm.t.Observe(time.Since(tm.start))
	return nil
}

// validName reports whether a metric name is usable as a Graphite path
// component: no whitespace or control characters.
func validName(s string) bool {
	if s == "" {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}
