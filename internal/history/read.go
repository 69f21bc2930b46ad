// Package history reads the platform's message-history topics over a time
// range, without a consumer group (nothing is committed, no live group is
// disturbed), and builds the timeline of one message across topics
// (`vumi trace`). `vumi replay` copies ranges read here.
package history

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Range is a time range [From, To). A zero From is the start of each
// partition, a zero To its end (the end offset when the range is resolved).
type Range struct {
	From, To time.Time
}

// Contains reports whether t is in the range.
func (r Range) Contains(t time.Time) bool {
	if !r.From.IsZero() && t.Before(r.From) {
		return false
	}
	if !r.To.IsZero() && !t.Before(r.To) {
		return false
	}
	return true
}

// String formats the range for messages.
func (r Range) String() string {
	f, t := "the start", "now"
	const layout = "2006-01-02T15:04:05.999Z07:00" // milliseconds, as Kafka stamps
	if !r.From.IsZero() {
		f = r.From.UTC().Format(layout)
	}
	if !r.To.IsZero() {
		t = r.To.UTC().Format(layout)
	}
	return f + " to " + t
}

// Span is the offsets [Start, End) of one partition that may hold records
// of a range.
type Span struct {
	Topic     string
	Partition int32
	Start     int64
	End       int64
}

// Len is the number of offsets in the span.
func (s Span) Len() int64 { return max(0, s.End-s.Start) }

// ErrNoTopic is wrapped by the error of a topic that does not exist.
var ErrNoTopic = errors.New("topic does not exist")

// Spans resolves a range to offsets with offsets-for-times (ListOffsets by
// timestamp), so that reading a day of a long topic does not scan the rest:
// Start is the first offset with a timestamp at or after From, End the first
// at or after To (or the end offset). Spans are sorted by topic and
// partition; empty partitions are left out.
func Spans(ctx context.Context, adm *kadm.Client, topics []string, r Range) ([]Span, error) {
	if len(topics) == 0 {
		return nil, nil
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	if err := topicErrors(ends); err != nil {
		return nil, err
	}
	var starts kadm.ListedOffsets
	if r.From.IsZero() {
		starts, err = adm.ListStartOffsets(ctx, topics...)
	} else {
		starts, err = adm.ListOffsetsAfterMilli(ctx, r.From.UnixMilli(), topics...)
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	if err := topicErrors(starts); err != nil {
		return nil, err
	}
	var stops kadm.ListedOffsets
	if !r.To.IsZero() {
		// Kafka timestamps are milliseconds: round up so that a record at
		// To - 0.5 ms is not cut off; Contains filters exactly.
		ms := r.To.Add(time.Millisecond - 1).UnixMilli()
		if stops, err = adm.ListOffsetsAfterMilli(ctx, ms, topics...); err != nil {
			return nil, fmt.Errorf("list end offsets for %s: %w", r.To.UTC().Format(time.RFC3339), err)
		}
		if err := topicErrors(stops); err != nil {
			return nil, err
		}
	}
	var out []Span
	ends.Each(func(o kadm.ListedOffset) {
		s := Span{Topic: o.Topic, Partition: o.Partition, Start: 0, End: o.Offset}
		if st, ok := starts.Lookup(o.Topic, o.Partition); ok && st.Offset >= 0 {
			s.Start = st.Offset
		}
		if stops != nil {
			if st, ok := stops.Lookup(o.Topic, o.Partition); ok && st.Offset >= 0 && st.Offset < s.End {
				s.End = st.Offset
			}
		}
		if s.Start > s.End {
			s.Start = s.End
		}
		if s.Len() > 0 {
			out = append(out, s)
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

func topicErrors(l kadm.ListedOffsets) error {
	var errs []error
	l.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w (%w)", o.Topic, ErrNoTopic, o.Err))
		}
	})
	return errors.Join(errs...)
}

// ReadOptions configure Read.
type ReadOptions struct {
	// Range filters records by timestamp (offsets-for-times is only a
	// bound: timestamps need not grow with offsets).
	Range Range
	// Progress, if set, is called after each fetch with the offsets read
	// so far and the total of the spans.
	Progress func(done, total int64)
}

// Read reads the spans by direct partition assignment (no consumer group,
// so nothing is committed) and calls fn for every record in the range, in
// offset order within each partition. cl must not consume anything else;
// the spans' partitions are removed from it when Read returns.
func Read(ctx context.Context, cl *kgo.Client, spans []Span, opts ReadOptions, fn func(*kgo.Record) error) error {
	assign := map[string]map[int32]kgo.Offset{}
	type tp struct {
		t string
		p int32
	}
	end := map[tp]int64{}
	var total, done int64
	for _, s := range spans {
		if s.Len() == 0 {
			continue
		}
		if assign[s.Topic] == nil {
			assign[s.Topic] = map[int32]kgo.Offset{}
		}
		assign[s.Topic][s.Partition] = kgo.NewOffset().At(s.Start)
		end[tp{s.Topic, s.Partition}] = s.End
		total += s.Len()
	}
	if opts.Progress != nil {
		opts.Progress(0, total)
	}
	if len(end) == 0 {
		return nil
	}
	cl.AddConsumePartitions(assign)
	defer func() {
		for t, ps := range assign {
			parts := make([]int32, 0, len(ps))
			for p := range ps {
				parts = append(parts, p)
			}
			cl.RemoveConsumePartitions(map[string][]int32{t: parts})
		}
	}()
	last := map[tp]int64{}
	for _, s := range spans {
		last[tp{s.Topic, s.Partition}] = s.Start
	}
	for len(end) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if _, ours := end[tp{t, p}]; ours || ferr == nil {
				ferr = errors.Join(ferr, fmt.Errorf("fetch %s partition %d: %w", t, p, err))
			}
		})
		if ferr != nil {
			return ferr
		}
		var err error
		fetches.EachRecord(func(r *kgo.Record) {
			k := tp{r.Topic, r.Partition}
			stop, ok := end[k]
			if !ok || err != nil {
				return
			}
			if r.Offset >= stop {
				done += stop - last[k]
				last[k] = stop
				delete(end, k)
				return
			}
			done += r.Offset + 1 - last[k]
			last[k] = r.Offset + 1
			if r.Offset+1 >= stop {
				delete(end, k)
			}
			if !opts.Range.Contains(r.Timestamp) {
				return
			}
			err = fn(r)
		})
		if err != nil {
			return err
		}
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	return nil
}
