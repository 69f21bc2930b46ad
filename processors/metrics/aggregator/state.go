package aggregator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/vumi-kafka/vumi/internal/metrics"
)

// AggSet is a set of aggregators; iteration is in Vumi's (alphabetical)
// order: avg, last, max, min, sum.
type AggSet uint8

const (
	aggAvg AggSet = 1 << iota
	aggLast
	aggMax
	aggMin
	aggSum
	aggAll = aggAvg | aggLast | aggMax | aggMin | aggSum
)

var aggBits = []struct {
	bit AggSet
	agg metrics.Aggregator
}{{aggAvg, metrics.Avg}, {aggLast, metrics.Last}, {aggMax, metrics.Max}, {aggMin, metrics.Min}, {aggSum, metrics.Sum}}

// parseAggs returns the set of the known aggregator names; unknown names
// are reported in the second result.
func parseAggs(names []string) (AggSet, []string) {
	var s AggSet
	var unknown []string
	for _, n := range names {
		switch metrics.Aggregator(n) {
		case metrics.Avg:
			s |= aggAvg
		case metrics.Last:
			s |= aggLast
		case metrics.Max:
			s |= aggMax
		case metrics.Min:
			s |= aggMin
		case metrics.Sum:
			s |= aggSum
		default:
			unknown = append(unknown, n)
		}
	}
	return s, unknown
}

// String lists the set's aggregators, comma separated.
func (s AggSet) String() string {
	var parts []string
	for _, b := range aggBits {
		if s&b.bit != 0 {
			parts = append(parts, string(b.agg))
		}
	}
	return strings.Join(parts, ",")
}

// Window is the running aggregate of one metric over one window: enough to
// give every aggregator exactly, whatever order datapoints arrive in.
type Window struct {
	// Start is the window's start in Unix seconds (a multiple of the
	// bucket size).
	Start int64
	// Aggs is the union of the aggregators its datapoints asked for.
	Aggs  AggSet
	Count int64
	Sum   float64
	Min   float64
	Max   float64
	// Last is the value of the datapoint with the latest timestamp
	// (LastTS, Unix microseconds); on a tie the later arrival wins.
	Last   float64
	LastTS int64
}

// add folds in n values whose mean is v (n is 1 for a single value).
func (w *Window) add(tsMicros int64, v float64, n int64, aggs AggSet) {
	w.Aggs |= aggs
	if w.Count == 0 {
		w.Min, w.Max, w.Last, w.LastTS = v, v, v, tsMicros
	} else {
		w.Min, w.Max = min(w.Min, v), max(w.Max, v)
		if tsMicros >= w.LastTS {
			w.Last, w.LastTS = v, tsMicros
		}
	}
	w.Count += n
	if n == 1 {
		w.Sum += v
	} else {
		w.Sum += v * float64(n)
	}
}

// value is the aggregate of the window for one aggregator; 0.0 for an
// empty window, as Vumi's aggregators return.
func (w *Window) value(a metrics.Aggregator) float64 {
	if w == nil || w.Count == 0 {
		return 0
	}
	switch a {
	case metrics.Sum:
		return w.Sum
	case metrics.Avg:
		return w.Sum / float64(w.Count)
	case metrics.Min:
		return w.Min
	case metrics.Max:
		return w.Max
	case metrics.Last:
		return w.Last
	}
	return 0
}

// State is what the group table holds per metric name: the open windows,
// and the last window emitted so that no window is emitted twice, across
// restarts and rebalances alike.
type State struct {
	// Aggs are the aggregators of the latest datapoint: what an empty
	// window emits.
	Aggs AggSet
	// HasClosed tells whether Closed is set.
	HasClosed bool
	// Closed is the start of the last window emitted (Unix seconds).
	Closed int64
	// LastData is the start of the latest window that had a datapoint.
	LastData int64
	// Windows are the open windows, by start.
	Windows []Window
}

func (s *State) window(start int64) *Window {
	i, found := slices.BinarySearchFunc(s.Windows, start, func(w Window, t int64) int {
		switch {
		case w.Start < t:
			return -1
		case w.Start > t:
			return 1
		}
		return 0
	})
	if !found {
		s.Windows = slices.Insert(s.Windows, i, Window{Start: start})
	}
	return &s.Windows[i]
}

// StateCodec encodes State for the group table in a compact binary form
// (version byte 1), cheap enough to decode and encode per datapoint.
type StateCodec struct{}

const stateVersion = 1

// maxWindows bounds the open windows a decoded state may claim.
const maxWindows = 1 << 16

// Encode implements goka.Codec.
func (StateCodec) Encode(value any) ([]byte, error) {
	s, ok := value.(*State)
	if !ok {
		return nil, fmt.Errorf("state codec: cannot encode %T", value)
	}
	return AppendState(nil, s), nil
}

// AppendState appends the encoding of s to dst.
func AppendState(dst []byte, s *State) []byte {
	var flags byte
	if s.HasClosed {
		flags = 1
	}
	dst = append(dst, stateVersion, flags, byte(s.Aggs))
	dst = binary.AppendVarint(dst, s.Closed)
	dst = binary.AppendVarint(dst, s.LastData)
	dst = binary.AppendUvarint(dst, uint64(len(s.Windows)))
	for i := range s.Windows {
		w := &s.Windows[i]
		dst = binary.AppendVarint(dst, w.Start)
		dst = append(dst, byte(w.Aggs))
		dst = binary.AppendUvarint(dst, uint64(w.Count))
		for _, f := range [4]float64{w.Sum, w.Min, w.Max, w.Last} {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		}
		dst = binary.AppendVarint(dst, w.LastTS)
	}
	return dst
}

// ErrBadState is returned for a table value that is not a State.
var ErrBadState = errors.New("state codec: malformed state")

// Decode implements goka.Codec.
func (StateCodec) Decode(b []byte) (any, error) {
	s := new(State)
	if err := DecodeState(b, s); err != nil {
		return nil, err
	}
	return s, nil
}

// DecodeState decodes b into s, failing (never panicking) on bad input.
func DecodeState(b []byte, s *State) error {
	if len(b) < 3 {
		return fmt.Errorf("%w: %d bytes", ErrBadState, len(b))
	}
	if b[0] != stateVersion {
		return fmt.Errorf("%w: unknown version %d", ErrBadState, b[0])
	}
	if b[1] > 1 || AggSet(b[2])&^aggAll != 0 {
		return fmt.Errorf("%w: bad flags", ErrBadState)
	}
	*s = State{HasClosed: b[1] == 1, Aggs: AggSet(b[2])}
	r := reader{b: b[3:]}
	s.Closed = r.varint()
	s.LastData = r.varint()
	n := r.uvarint()
	if r.err != nil || n > maxWindows || n > uint64(len(r.b))/35+1 {
		return fmt.Errorf("%w: bad window count", ErrBadState)
	}
	if n > 0 {
		s.Windows = make([]Window, n)
	}
	for i := range s.Windows {
		w := &s.Windows[i]
		w.Start = r.varint()
		aggs := r.byte()
		if AggSet(aggs)&^aggAll != 0 {
			return fmt.Errorf("%w: bad aggregators", ErrBadState)
		}
		w.Aggs = AggSet(aggs)
		c := r.uvarint()
		if c > math.MaxInt64 {
			return fmt.Errorf("%w: bad count", ErrBadState)
		}
		w.Count = int64(c)
		w.Sum, w.Min, w.Max, w.Last = r.float(), r.float(), r.float(), r.float()
		w.LastTS = r.varint()
		if r.err != nil {
			return r.err
		}
		if i > 0 && w.Start <= s.Windows[i-1].Start {
			return fmt.Errorf("%w: windows out of order", ErrBadState)
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadState, len(r.b))
	}
	return nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() { r.err = fmt.Errorf("%w: truncated", ErrBadState) }

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) float() float64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}
