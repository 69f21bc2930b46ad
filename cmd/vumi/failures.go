package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/processors/failures"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func failuresCommand() *command {
	c := &command{
		name:    "failures",
		summary: "list, inspect, retry and discard the dead letters of a transport (parked by the failure worker)",
		usage:   "list|inspect|retry|discard -transport NAME [-reason TEXT] [-since TIME] [-until TIME] [-all] [ID...]",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		if len(args) == 0 {
			return usagef("missing subcommand (list, inspect, retry or discard)")
		}
		sub, rest := args[0], args[1:]
		fs := newFlags(e, c)
		var conn connFlags
		conn.register(fs)
		transport := fs.String("transport", "", "transport_name whose dead letters to use (required)")
		prefix := fs.String("prefix", "", "the deployment's topic prefix")
		reason := fs.String("reason", "", "only failures whose reason contains this text")
		since := fs.String("since", "", "only failures at or after this time (duration ago, RFC 3339 or Vumi timestamp)")
		until := fs.String("until", "", "only failures before this time")
		all := fs.Bool("all", false, "retry or discard every failure matching the filters (instead of listed ids)")
		to := fs.String("to", "", "retry: the topic to send to (default <transport>.outbound)")
		if sub == "-h" || sub == "--help" {
			return parse(fs, []string{"-h"})
		}
		if err := parse(fs, rest); err != nil {
			return err
		}
		if *transport == "" {
			return usagef("-transport is required")
		}
		var from, before time.Time
		var err error
		if *since != "" {
			if from, err = parseSince(*since); err != nil {
				return usagef("-since: %v", err)
			}
		}
		if *until != "" {
			if before, err = parseSince(*until); err != nil {
				return usagef("-until: %v", err)
			}
		}
		match := func(f *schemas.Failure) bool {
			if *reason != "" && !strings.Contains(f.Reason, *reason) {
				return false
			}
			if !from.IsZero() && f.Timestamp.Before(from) {
				return false
			}
			if !before.IsZero() && !f.Timestamp.Before(before) {
				return false
			}
			return true
		}
		names := topology.Names{Prefix: *prefix}
		topic := names.Prefix + failures.DeadLetterTopic(*transport)
		cl, err := conn.client()
		if err != nil {
			return err
		}
		defer cl.Close()
		reg := conn.registryClient()
		codecs := schemas.NewCodecs(reg)
		letters, err := readDeadLetters(ctx, cl, codecs, topic)
		if err != nil {
			return err
		}
		selected := func() ([]*schemas.Failure, error) {
			var out []*schemas.Failure
			if *all {
				for _, f := range letters {
					if match(f) {
						out = append(out, f)
					}
				}
				return out, nil
			}
			if fs.NArg() == 0 {
				return nil, usagef("give failure ids, or -all with filters")
			}
			byID := map[string]*schemas.Failure{}
			for _, f := range letters {
				byID[f.FailureID] = f
			}
			for _, id := range fs.Args() {
				f, ok := byID[id]
				if !ok {
					return nil, fmt.Errorf("no dead letter %s on %s", id, topic)
				}
				out = append(out, f)
			}
			return out, nil
		}
		switch sub {
		case "list":
			n := 0
			for _, f := range letters {
				if !match(f) {
					continue
				}
				n++
				code := "unspecified"
				if f.FailureCode != nil {
					code = string(*f.FailureCode)
				}
				msgType := ""
				if f.MessageType != nil {
					msgType = *f.MessageType
				}
				fmt.Fprintf(e.stdout, "%s  %s  %-11s %-12s %s\n", f.FailureID, schemas.FormatVumiTime(f.Timestamp), code, msgType, oneLine(f.Reason, 100))
			}
			fmt.Fprintf(e.stderr, "%d dead letter(s) on %s\n", n, topic)
			return nil
		case "inspect":
			sel, err := selected()
			if err != nil {
				return err
			}
			for _, f := range sel {
				b, err := json.Marshal(f)
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, string(b))
			}
			return nil
		case "retry", "discard":
			sel, err := selected()
			if err != nil {
				return err
			}
			target := *to
			if target == "" {
				target = names.Outbound(*transport)
			}
			for _, f := range sel {
				if sub == "retry" {
					if f.Message == nil || (f.MessageType != nil && *f.MessageType != schemas.TypeUserMessage) {
						return fmt.Errorf("dead letter %s holds no user message to retry (nothing more was done)", f.FailureID)
					}
					m, err := schemas.ParseUserMessage([]byte(*f.Message))
					if err != nil {
						return fmt.Errorf("dead letter %s: %w", f.FailureID, err)
					}
					if err := codecs.UserMessage.Register(ctx, target); err != nil {
						return err
					}
					v, err := codecs.UserMessage.Encode(m)
					if err != nil {
						return err
					}
					if err := kafka.ProduceSync(ctx, cl, &kgo.Record{Topic: target, Key: topology.OutboundKey(m), Value: v}); err != nil {
						return fmt.Errorf("retry %s to %s: %w", f.FailureID, target, err)
					}
				}
				// Remove it from the dead letters: a tombstone.
				if err := kafka.ProduceSync(ctx, cl, &kgo.Record{Topic: topic, Key: []byte(f.FailureID)}); err != nil {
					return fmt.Errorf("remove %s from %s: %w", f.FailureID, topic, err)
				}
				verb := "discarded"
				if sub == "retry" {
					verb = "retried to " + target
				}
				fmt.Fprintf(e.stdout, "%s %s\n", f.FailureID, verb)
			}
			return nil
		}
		return usagef("unknown subcommand %q", sub)
	}
	return c
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

// readDeadLetters reads a compacted dead-letter topic to its end and
// returns the live entries (tombstones remove), oldest first.
func readDeadLetters(ctx context.Context, cl *kgo.Client, codecs *schemas.Codecs, topic string) ([]*schemas.Failure, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	assign := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			assign[o.Partition] = kgo.NewOffset().AtStart()
			remaining[o.Partition] = o.Offset
		}
	})
	live := map[string]*schemas.Failure{}
	if len(assign) > 0 {
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign})
		defer cl.PurgeTopicsFromConsuming(topic)
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		for len(remaining) > 0 {
			fs := cl.PollFetches(rctx)
			if rctx.Err() != nil {
				return nil, fmt.Errorf("topic %s: timed out reading", topic)
			}
			for _, r := range fs.Records() {
				if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
					delete(remaining, r.Partition)
				}
				if r.Value == nil {
					delete(live, string(r.Key))
					continue
				}
				var f schemas.Failure
				if err := codecs.Failure.DecodeContext(rctx, r.Value, &f); err != nil {
					return nil, fmt.Errorf("topic %s partition %d offset %d: %w", topic, r.Partition, r.Offset, err)
				}
				live[string(r.Key)] = &f
			}
		}
	}
	out := make([]*schemas.Failure, 0, len(live))
	for _, f := range live {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timestamp.Before(out[j].Timestamp) })
	return out, nil
}
