package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
)

func topicsCommand() *command {
	c := &command{
		name:    "topics",
		summary: "list, create, describe topics and add partitions",
		usage:   "list | create NAME... [-partitions N] [-compact] [-config k=v,...] | describe NAME... | add-partitions NAME -total N",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		sub, rest := args[0], args[1:]
		fs := newFlags(e, c)
		var conn connFlags
		conn.register(fs)
		partitions := fs.Int("partitions", 4, "partitions of a new topic")
		replication := fs.Int("replication", -1, "replication factor of a new topic (-1: broker default)")
		compact := fs.Bool("compact", false, "create the topic with cleanup.policy=compact")
		configs := fs.String("config", "", "comma-separated topic configs k=v for create")
		total := fs.Int("total", 0, "add-partitions: the new total partition count")
		if sub == "-h" || sub == "--help" {
			return parse(fs, []string{"-h"})
		}
		if err := parse(fs, rest); err != nil {
			return err
		}
		cl, err := conn.client()
		if err != nil {
			return err
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		switch sub {
		case "list":
			tds, err := adm.ListTopics(ctx)
			if err != nil {
				return err
			}
			for _, name := range tds.Names() {
				td := tds[name]
				fmt.Fprintf(e.stdout, "%-40s partitions=%d\n", name, len(td.Partitions))
			}
			return nil
		case "create":
			if fs.NArg() == 0 {
				return usagef("create needs at least one topic name")
			}
			if *partitions < 1 {
				return usagef("-partitions must be at least 1, got %d", *partitions)
			}
			cfg := map[string]*string{}
			if *compact {
				v := "compact"
				cfg["cleanup.policy"] = &v
			}
			if *configs != "" {
				for _, kv := range strings.Split(*configs, ",") {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return usagef("-config: %q is not k=v", kv)
					}
					cfg[k] = &v
				}
			}
			resp, err := adm.CreateTopics(ctx, int32(*partitions), int16(*replication), cfg, fs.Args()...)
			if err != nil {
				return err
			}
			var errs []error
			for _, r := range resp.Sorted() {
				if r.Err != nil {
					errs = append(errs, fmt.Errorf("create %s: %w (%s)", r.Topic, r.Err, r.ErrMessage))
					continue
				}
				fmt.Fprintf(e.stdout, "created %s with %d partitions\n", r.Topic, r.NumPartitions)
			}
			return errors.Join(errs...)
		case "describe":
			if fs.NArg() == 0 {
				return usagef("describe needs at least one topic name")
			}
			tds, err := adm.ListTopics(ctx, fs.Args()...)
			if err != nil {
				return err
			}
			ends, err := adm.ListEndOffsets(ctx, fs.Args()...)
			if err != nil {
				return err
			}
			rcs, err := adm.DescribeTopicConfigs(ctx, fs.Args()...)
			if err != nil {
				return err
			}
			var errs []error
			for _, name := range fs.Args() {
				td, ok := tds[name]
				if !ok || td.Err != nil {
					errs = append(errs, fmt.Errorf("topic %s: %v", name, td.Err))
					continue
				}
				fmt.Fprintf(e.stdout, "topic %s (%d partitions)\n", name, len(td.Partitions))
				if rc, err := rcs.On(name, nil); err == nil {
					for _, cfg := range rc.Configs {
						if cfg.Source == 1 && cfg.Value != nil { // DYNAMIC_TOPIC_CONFIG
							fmt.Fprintf(e.stdout, "  config %s=%s\n", cfg.Key, *cfg.Value)
						}
					}
				}
				parts := td.Partitions.Numbers()
				sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
				for _, p := range parts {
					pd := td.Partitions[p]
					end := int64(-1)
					if o, ok := ends.Lookup(name, p); ok {
						end = o.Offset
					}
					fmt.Fprintf(e.stdout, "  partition %d leader %d replicas %v end-offset %d\n", p, pd.Leader, pd.Replicas, end)
				}
			}
			return errors.Join(errs...)
		case "add-partitions":
			if fs.NArg() != 1 {
				return usagef("add-partitions needs exactly one topic name")
			}
			if *total < 1 {
				return usagef("-total (the new partition count) is required")
			}
			resp, err := adm.UpdatePartitions(ctx, *total, fs.Arg(0))
			if err != nil {
				return err
			}
			for _, r := range resp.Sorted() {
				if r.Err != nil {
					return fmt.Errorf("add partitions to %s: %w (%s)", r.Topic, r.Err, r.ErrMessage)
				}
				fmt.Fprintf(e.stdout, "%s now has %d partitions\n", r.Topic, *total)
			}
			return nil
		}
		return usagef("unknown subcommand %q", sub)
	}
	return c
}
