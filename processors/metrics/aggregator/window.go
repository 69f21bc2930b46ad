package aggregator

import (
	"math"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

// Params are the windowing rules, as plain values so the logic is testable
// without Kafka.
type Params struct {
	// Bucket is the window length in whole seconds.
	Bucket int64
	// Lateness is how long after its end a window stays open for late
	// datapoints (Vumi's lag).
	Lateness time.Duration
	// ForgetAfter is how long a metric with no datapoints keeps emitting
	// empty windows (0.0) before its state is deleted.
	ForgetAfter time.Duration
	// EmitEmpty emits 0.0 for the windows of a known metric that got no
	// datapoint.
	EmitEmpty bool
}

// Outcome is what became of a datapoint.
type Outcome int

// Outcomes of Add.
const (
	// Accepted: folded into its window.
	Accepted Outcome = iota
	// Late: its window was already emitted (or is older than anything the
	// table still remembers); counted and dropped.
	Late
	// Invalid: no known aggregator, a value that is not a number, or a
	// timestamp too far in the future; counted and dropped.
	Invalid
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Late:
		return "late"
	}
	return "invalid"
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// WindowStart returns the start (Unix seconds) of the window holding t.
func (p Params) WindowStart(t time.Time) int64 { return floorDiv(t.Unix(), p.Bucket) * p.Bucket }

// lastDue is the start of the latest window that is due to close at now:
// a window [s, s+bucket) closes once s + bucket + lateness <= now.
func (p Params) lastDue(now time.Time) int64 {
	return p.WindowStart(now.Add(-p.Lateness)) - p.Bucket
}

func (p Params) forgetSeconds() int64 { return int64(math.Ceil(p.ForgetAfter.Seconds())) }

// Add folds a datapoint into st (nil for a metric without state) and
// returns the state to store. State is only changed when the datapoint is
// accepted.
func (p Params) Add(st *State, dp *schemas.MetricDatapoint, now time.Time) (*State, Outcome) {
	aggs, _ := parseAggs(dp.Aggregators)
	if aggs == 0 || math.IsNaN(dp.Value) || math.IsInf(dp.Value, 0) {
		return st, Invalid
	}
	ws := p.WindowStart(dp.Timestamp)
	nowSec := now.Unix()
	if ws > nowSec+p.forgetSeconds() {
		return st, Invalid
	}
	if st != nil && st.HasClosed && ws <= st.Closed {
		return st, Late
	}
	if st == nil && ws+p.Bucket+p.forgetSeconds() <= nowSec {
		// Older than anything a forgotten state could have emitted.
		return st, Late
	}
	if st == nil {
		st = &State{LastData: ws}
	}
	// A datapoint standing for several values (their mean, count of
	// them) weighs as many; older records without a count read as 1.
	st.window(ws).add(dp.Timestamp.UnixMicro(), dp.Value, max(dp.Count, 1), aggs)
	st.Aggs = aggs
	st.LastData = max(st.LastData, ws)
	return st, Accepted
}

// Close emits every window of st that is due at now, in order, one
// aggregate per aggregator, with 0.0 for the empty windows of a metric
// still in use. It returns the state to store, nil when the metric is
// forgotten (delete its key), and whether anything changed.
func (p Params) Close(name string, st *State, now time.Time, emit func(*schemas.MetricAggregate)) (*State, bool) {
	if st == nil {
		return nil, false
	}
	due := p.lastDue(now)
	from := st.Closed + p.Bucket
	if !st.HasClosed {
		if len(st.Windows) == 0 {
			return st, false
		}
		from = st.Windows[0].Start
	}
	if from > due {
		return st, false
	}
	forget := st.LastData + p.forgetSeconds()
	i := 0
	for ws := from; ws <= due; ws += p.Bucket {
		if i < len(st.Windows) && st.Windows[i].Start == ws {
			p.emitWindow(name, &st.Windows[i], emit)
			i++
			continue
		}
		if i >= len(st.Windows) && ws > forget {
			break
		}
		if p.EmitEmpty && ws <= forget && st.Aggs != 0 {
			p.emitWindow(name, &Window{Start: ws, Aggs: st.Aggs}, emit)
		}
	}
	st.Windows = st.Windows[i:]
	st.Closed, st.HasClosed = due, true
	if len(st.Windows) == 0 && due >= forget {
		return nil, true
	}
	if len(st.Windows) == 0 {
		st.Windows = nil
	}
	return st, true
}

func (p Params) emitWindow(name string, w *Window, emit func(*schemas.MetricAggregate)) {
	start := time.Unix(w.Start, 0).UTC()
	for _, b := range aggBits {
		if w.Aggs&b.bit == 0 {
			continue
		}
		emit(&schemas.MetricAggregate{
			Name:          name + "." + string(b.agg),
			Aggregator:    string(b.agg),
			WindowStart:   start,
			WindowSeconds: int32(p.Bucket),
			Value:         w.value(b.agg),
			Count:         w.Count,
		})
	}
}
