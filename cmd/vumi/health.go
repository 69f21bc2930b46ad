package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func healthCommand() *command {
	c := &command{
		name:    "health",
		summary: "report every worker's last heartbeat and status; exit 1 if a worker has been silent for two heartbeat intervals",
		usage:   "[-since 15m] [-prefix P]",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		var conn connFlags
		conn.register(fs)
		since := fs.Duration("since", 15*time.Minute, "look at heartbeats and statuses this far back")
		prefix := fs.String("prefix", "", "the deployment's topic prefix")
		if err := parse(fs, args); err != nil {
			return err
		}
		cl, err := conn.client()
		if err != nil {
			return err
		}
		defer cl.Close()
		names := topology.Names{Prefix: *prefix}
		dec := schemas.NewAnyDecoder(conn.registryClient())
		now := time.Now()
		beats := map[string]*schemas.Heartbeat{}
		statuses := map[string]*schemas.Status{}
		err = readSince(ctx, cl, names.Heartbeat(), now.Add(-*since), func(v any) {
			if hb, ok := v.(*schemas.Heartbeat); ok {
				if old, seen := beats[hb.WorkerID]; !seen || hb.Timestamp.After(old.Timestamp) {
					beats[hb.WorkerID] = hb
				}
			}
		}, dec)
		if err != nil {
			return err
		}
		err = readSince(ctx, cl, names.Status(), now.Add(-*since), func(v any) {
			if st, ok := v.(*schemas.Status); ok {
				key := string(topology.StatusKey(st))
				if old, seen := statuses[key]; !seen || !st.Timestamp.Before(old.Timestamp) {
					statuses[key] = st
				}
			}
		}, dec)
		if err != nil {
			return err
		}
		ids := make([]string, 0, len(beats))
		for id := range beats {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		silent := 0
		fmt.Fprintf(e.stdout, "%-32s %-8s %-10s %s\n", "WORKER", "STATE", "LAST SEEN", "HOST/PID")
		for _, id := range ids {
			hb := beats[id]
			age := now.Sub(hb.Timestamp)
			state := "alive"
			if interval := time.Duration(hb.IntervalSeconds) * time.Second; interval > 0 && age > 2*interval {
				state = "SILENT"
				silent++
			}
			fmt.Fprintf(e.stdout, "%-32s %-8s %-10s %s/%d\n", id, state, age.Round(time.Second).String()+" ago", hb.Hostname, hb.PID)
		}
		if len(statuses) > 0 {
			keys := make([]string, 0, len(statuses))
			for k := range statuses {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			fmt.Fprintf(e.stdout, "\n%-32s %-8s %-18s %s\n", "COMPONENT", "STATUS", "TYPE", "MESSAGE")
			for _, k := range keys {
				st := statuses[k]
				fmt.Fprintf(e.stdout, "%-32s %-8s %-18s %s\n", k, st.Status, st.Type, st.Message)
			}
		}
		if len(ids) == 0 {
			return fmt.Errorf("no heartbeats on %s in the last %v", names.Heartbeat(), *since)
		}
		if silent > 0 {
			return fmt.Errorf("%d worker(s) silent for more than two heartbeat intervals", silent)
		}
		return nil
	}
	return c
}

// readSince reads a topic from the first record at or after t up to its
// current end, giving each decodable value to fn.
func readSince(ctx context.Context, cl *kgo.Client, topic string, t time.Time, fn func(any), dec *schemas.AnyDecoder) error {
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("topic %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil
		}
		return fmt.Errorf("topic %s: %w", topic, err)
	}
	starts, err := adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topic)
	if err != nil {
		return fmt.Errorf("topic %s: %w", topic, err)
	}
	from := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		s, ok := starts.Lookup(topic, o.Partition)
		if !ok || s.Offset >= o.Offset {
			return
		}
		from[o.Partition] = kgo.NewOffset().At(s.Offset)
		remaining[o.Partition] = o.Offset
	})
	if len(from) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: from})
	defer cl.PurgeTopicsFromConsuming(topic)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(remaining) > 0 {
		fetches := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			return fmt.Errorf("topic %s: timed out reading", topic)
		}
		for _, r := range fetches.Records() {
			if v, err := dec.Decode(rctx, r.Value); err == nil {
				fn(v)
			}
			if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		}
	}
	return nil
}
