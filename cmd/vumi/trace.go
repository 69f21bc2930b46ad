package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/history"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func traceCommand() *command {
	c := &command{
		name:    "trace",
		summary: "the life of one message across topics: hops, replies, acks, delivery reports, failures",
		usage:   "[-c FILE] [-since 24h] [-until TIME] [-topics T,...] [-json] MESSAGE_ID",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		var conn connFlags
		conn.register(fs)
		since := fs.String("since", "24h", "search records from this time: a duration ago (24h), an RFC 3339 time, a Vumi timestamp or Unix milliseconds")
		until := fs.String("until", "", "search records before this time (default now)")
		topicList := fs.String("topics", "", "comma-separated topics to search (default: with -c the config's message, event, failure and dead-letter topics; without, every such topic on the cluster)")
		prefix := fs.String("prefix", "", "without -c: only topics with this topic_prefix")
		asJSON := fs.Bool("json", false, "print the timeline as one JSON document")
		quiet := fs.Bool("quiet", false, "no progress on stderr")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usagef("give exactly one message id")
		}
		id := strings.TrimSpace(fs.Arg(0))
		if id == "" {
			return usagef("the message id is empty")
		}
		var rng history.Range
		var err error
		if *since != "" {
			if rng.From, err = parseSince(*since); err != nil {
				return usagef("-since: %v", err)
			}
		}
		if *until != "" {
			if rng.To, err = parseSince(*until); err != nil {
				return usagef("-until: %v", err)
			}
		}
		if !rng.To.IsZero() && !rng.From.Before(rng.To) {
			return usagef("-since must be before -until")
		}
		cl, err := conn.client(kgo.FetchMaxWait(200 * time.Millisecond))
		if err != nil {
			return err
		}
		defer cl.Close()
		opts := history.TraceOptions{Range: rng, Decoder: schemas.NewAnyDecoder(conn.registryClient())}
		if cfg := conn.cfg; cfg != nil {
			opts.Graph = topology.BuildGraph(cfg)
			opts.Copies = middlewareCopies(cfg)
		}
		switch {
		case *topicList != "":
			for _, t := range strings.Split(*topicList, ",") {
				if t = strings.TrimSpace(t); t != "" {
					opts.Topics = append(opts.Topics, t)
				}
			}
		case opts.Graph != nil:
			opts.Topics = historyTopics(opts.Graph)
		default:
			if opts.Topics, err = clusterHistoryTopics(ctx, kadm.NewClient(cl), *prefix); err != nil {
				return err
			}
		}
		if len(opts.Topics) == 0 {
			return errors.New("no message topics to search (give -c FILE or -topics)")
		}
		bar := newProgress(e.stderr, "scanning "+fmt.Sprint(len(opts.Topics))+" topics", *quiet)
		bar.onlySlow = true
		opts.Progress = bar.update
		tl, err := history.Trace(ctx, cl, id, opts)
		bar.finish()
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(tl)
		}
		return writeTimeline(e.stdout, tl)
	}
	return c
}

// historyTopics are the topics of a config's graph that carry messages,
// events and failures (the history a trace searches).
func historyTopics(g *topology.Graph) []string {
	var out []string
	for _, name := range g.TopicNames() {
		switch g.Topics[name].Kind {
		case "user_message", "event", "failure":
			out = append(out, name)
		}
	}
	return out
}

// middlewareCopies maps the topics that middleware of a config writes
// (the storing middleware's store topics) to a description.
func middlewareCopies(cfg *topology.Config) map[string]string {
	out := map[string]string{}
	n := cfg.Cluster.Names()
	for _, w := range cfg.Workers {
		for _, m := range w.Middleware {
			if m.Kind.IO == nil {
				continue
			}
			for _, s := range m.Kind.IO(w.Name, m).Produces {
				if s.Kind == "user_message" || s.Kind == "event" {
					out[n.Prefix+s.Topic] = "copy by middleware " + m.Name + " (" + m.Kind.Name + ")"
				}
			}
		}
	}
	return out
}

// clusterHistoryTopics lists the topics of the cluster that look like
// message history: <name>.inbound, .outbound, .event, .failures and
// .dead-letters, with the given prefix.
func clusterHistoryTopics(ctx context.Context, adm *kadm.Client, prefix string) ([]string, error) {
	tds, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var out []string
	for _, name := range tds.Names() {
		if !strings.HasPrefix(name, prefix) || strings.HasPrefix(name, "_") {
			continue
		}
		if topology.DirectionOf(name) != topology.DirUnknown || strings.HasSuffix(name, ".dead-letters") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// writeTimeline prints a timeline for people.
func writeTimeline(w io.Writer, tl *history.Timeline) error {
	var b strings.Builder
	span := time.Duration(0)
	if n := len(tl.Steps); n > 0 {
		span = time.Duration(tl.Steps[n-1].ElapsedMS * float64(time.Millisecond))
		for _, s := range tl.Steps {
			span = max(span, time.Duration(s.ElapsedMS*float64(time.Millisecond)))
		}
	}
	fmt.Fprintf(&b, "message %s: %d steps over %s\n", tl.MessageID, len(tl.Steps), span.Round(time.Millisecond))
	fmt.Fprintf(&b, "searched %d topics, %d records, %s to %s\n",
		len(tl.Topics), tl.Scanned, fmtTime(tl.From), fmtTime(tl.To))
	width := 0
	for _, s := range tl.Steps {
		width = max(width, len(fmt.Sprintf("%s p%d@%d", s.Topic, s.Partition, s.Offset)))
	}
	current := ""
	for _, s := range tl.Steps {
		if s.MessageID != current {
			current = s.MessageID
			role := "the traced message"
			switch {
			case s.Generation < 0:
				role = "the message it replies to"
			case s.Generation == 1:
				role = "a reply"
			case s.Generation > 1:
				role = fmt.Sprintf("a reply, %d levels down", s.Generation)
			}
			fmt.Fprintf(&b, "\n%s (%s)\n", s.MessageID, role)
		}
		what := s.Step
		if s.Type == history.TypeEvent || s.Type == history.TypeFailure || s.Type == history.TypeDeadLetter || s.Type == history.TypeCopy {
			what = strings.ReplaceAll(s.Step, "_", " ")
		} else {
			what = s.Type + " " + s.Step
		}
		by := ""
		if len(s.WrittenBy) > 0 {
			by = "  [" + strings.Join(s.WrittenBy, ", ") + "]"
		}
		if len(s.ConsumedBy) > 0 {
			by += " -> " + strings.Join(s.ConsumedBy, ", ")
		}
		if len(s.PendingFor) > 0 {
			by += " (not yet consumed by " + strings.Join(s.PendingFor, ", ") + ")"
		}
		where := fmt.Sprintf("%s p%d@%d", s.Topic, s.Partition, s.Offset)
		fmt.Fprintf(&b, "  %s %9s  %-18s %-*s  %s%s\n",
			s.Time.Format("15:04:05.000"), fmtElapsed(s.ElapsedMS), what, width, where, s.Detail, by)
		if len(s.Protocol) > 0 {
			p, _ := json.Marshal(s.Protocol)
			fmt.Fprintf(&b, "  %12s %9s  %-18s %s\n", "", "", "", "transport: "+string(p))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtElapsed(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d < time.Second:
		return fmt.Sprintf("+%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("+%.3fs", d.Seconds())
	}
	return "+" + d.Round(time.Second).String()
}
