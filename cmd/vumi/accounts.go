package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/vumi-kafka/vumi/internal/kvtopic"
	"github.com/vumi-kafka/vumi/processors/middleware"
)

// accountsCommand lists and changes account states in the accounts topic
// that every accounts middleware follows (docs/accounts.md).
func accountsCommand() *command {
	c := &command{
		name:    "accounts",
		summary: "list accounts; activate, deactivate or forget one (the accounts topic the accounts middleware follows)",
		usage: "[-c FILE | -brokers B] [-topic T] ACTION [ARGS]\n\nactions:\n" +
			"  list                           every account in the topic with its state\n" +
			"  activate NAME                  messages of NAME flow again\n" +
			"  deactivate NAME [-reason R]    messages of NAME are rejected to the failures topics\n" +
			"  forget NAME                    remove NAME from the topic (the config's state applies again)",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		var conn connFlags
		conn.register(fs)
		topic := fs.String("topic", middleware.DefaultAccountsTopic, "accounts topic, without the cluster prefix")
		reason := fs.String("reason", "", "deactivate: why, recorded with the state and in each rejection")
		if err := parse(fs, args); err != nil {
			return err
		}
		a := fs.Args()
		if len(a) == 0 {
			return usagef("an action is required")
		}
		want := map[string]int{"list": 0, "activate": 1, "deactivate": 1, "forget": 1}
		n, ok := want[a[0]]
		if !ok {
			return usagef("unknown action %q", a[0])
		}
		if len(a)-1 != n {
			return usagef("%s takes %d argument(s)", a[0], n)
		}
		if n == 1 {
			if err := middleware.ValidAccountName(a[1]); err != nil {
				return usagef("%v", err)
			}
		}
		full := *topic
		deps, err := conn.fromConfig()
		if err != nil {
			return err
		}
		if deps != nil {
			full = deps.Names.Prefix + *topic
		}
		cl, err := conn.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		// The topic is created (compacted) by deployments that use the
		// middleware; create it here too so that states can be set first.
		cfgs := map[string]*string{"cleanup.policy": strPtr("compact")}
		_, err = kadm.NewClient(cl).CreateTopic(ctx, 1, -1, cfgs, full)
		cl.Close()
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("accounts topic %s: %w", full, err)
		}
		kopts, err := conn.baseOpts()
		if err != nil {
			return err
		}
		kv, err := kvtopic.Open(ctx, full, kopts, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		defer kv.Close()
		put := func(state string) error {
			st := middleware.AccountState{State: state, UpdatedAt: time.Now().UTC()}
			if state == middleware.AccountInactive {
				st.Reason = *reason
			}
			b, _ := json.Marshal(st)
			if err := kv.Put(ctx, a[1], b); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s %s\n", a[1], state)
			return nil
		}
		switch a[0] {
		case "activate":
			return put(middleware.AccountActive)
		case "deactivate":
			return put(middleware.AccountInactive)
		case "forget":
			if err := kv.Delete(ctx, a[1]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s forgotten\n", a[1])
			return nil
		}
		type row struct{ name, state, reason, updated string }
		var rows []row
		kv.Each(func(k string, v []byte) {
			st, err := middleware.ParseAccountState(v)
			if err != nil {
				rows = append(rows, row{k, "unreadable", err.Error(), ""})
				return
			}
			rows = append(rows, row{k, st.State, st.Reason, st.UpdatedAt.Format(time.RFC3339)})
		})
		sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tSTATE\tUPDATED\tREASON")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, r.state, r.updated, r.reason)
		}
		return tw.Flush()
	}
	return c
}

func strPtr(s string) *string { return &s }
