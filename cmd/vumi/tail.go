package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
)

func tailCommand() *command {
	c := &command{
		name:    "tail",
		summary: "print a topic's records as Vumi JSON lines, decoded through the schema registry",
		usage:   "-topic TOPIC [-from-beginning | -offset N | -since TIME] [-n COUNT] [-follow] [-meta]",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		var conn connFlags
		conn.register(fs)
		topic := fs.String("topic", "", "topic to read (required)")
		fromStart := fs.Bool("from-beginning", false, "start at the oldest record")
		offset := fs.Int64("offset", -1, "start at this offset in every partition")
		since := fs.String("since", "", "start at records newer than this: RFC 3339 time, Vumi timestamp, or a duration ago such as 15m")
		count := fs.Int("n", 0, "stop after this many records (0: no limit)")
		follow := fs.Bool("follow", false, "keep waiting for new records instead of stopping at the end (implied when no start is given)")
		meta := fs.Bool("meta", false, "wrap each record with its topic, partition, offset, key and time")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *topic == "" {
			return usagef("-topic is required")
		}
		starts := 0
		for _, set := range []bool{*fromStart, *offset >= 0, *since != ""} {
			if set {
				starts++
			}
		}
		if starts > 1 {
			return usagef("give at most one of -from-beginning, -offset and -since")
		}
		if starts == 0 {
			// Without a starting point there is nothing old to print: wait
			// for new records, like tail -f.
			*follow = true
		}
		cl, err := conn.client()
		if err != nil {
			return err
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		ends, err := adm.ListEndOffsets(ctx, *topic)
		if err != nil {
			return fmt.Errorf("topic %s: %w", *topic, err)
		}
		if err := ends.Error(); err != nil {
			return fmt.Errorf("topic %s: %w", *topic, err)
		}
		startAt := map[int32]kgo.Offset{}
		remaining := map[int32]int64{} // partition -> end offset still to reach
		var starting kadm.ListedOffsets
		switch {
		case *fromStart:
			if starting, err = adm.ListStartOffsets(ctx, *topic); err != nil {
				return err
			}
		case *since != "":
			t, err := parseSince(*since)
			if err != nil {
				return usagef("-since: %v", err)
			}
			if starting, err = adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), *topic); err != nil {
				return err
			}
		}
		ends.Each(func(o kadm.ListedOffset) {
			from := o.Offset // default: only new records
			switch {
			case *offset >= 0:
				from = min(*offset, o.Offset)
			case starting != nil:
				if s, ok := starting.Lookup(o.Topic, o.Partition); ok {
					from = s.Offset
				}
			}
			startAt[o.Partition] = kgo.NewOffset().At(from)
			if from < o.Offset {
				remaining[o.Partition] = o.Offset
			}
		})
		if !*follow && len(remaining) == 0 {
			return nil
		}
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{*topic: startAt})
		dec := schemas.NewAnyDecoder(conn.registryClient())
		printed := 0
		for {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return nil
			}
			var fetchErr error
			fetches.EachError(func(t string, p int32, err error) {
				fetchErr = fmt.Errorf("fetch %s partition %d: %w", t, p, err)
			})
			if fetchErr != nil {
				return fetchErr
			}
			for _, r := range fetches.Records() {
				line, err := renderRecord(ctx, dec, r, *meta)
				if err != nil {
					e.log.Error("cannot decode record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "error", err)
				} else {
					fmt.Fprintln(e.stdout, string(line))
					printed++
				}
				if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
					delete(remaining, r.Partition)
				}
				if *count > 0 && printed >= *count {
					return nil
				}
			}
			if !*follow && len(remaining) == 0 {
				return nil
			}
		}
	}
	return c
}

func renderRecord(ctx context.Context, dec *schemas.AnyDecoder, r *kgo.Record, meta bool) ([]byte, error) {
	value, err := dec.DecodeJSON(ctx, r.Value)
	if err != nil {
		return nil, err
	}
	if !meta {
		return value, nil
	}
	return json.Marshal(struct {
		Topic     string          `json:"topic"`
		Partition int32           `json:"partition"`
		Offset    int64           `json:"offset"`
		Key       string          `json:"key"`
		Timestamp string          `json:"timestamp"`
		Value     json.RawMessage `json:"value"`
	}{r.Topic, r.Partition, r.Offset, string(r.Key), r.Timestamp.UTC().Format(time.RFC3339Nano), value})
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := schemas.ParseVumiTime(s); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a duration, RFC 3339 time, Vumi timestamp or Unix milliseconds", s)
}
