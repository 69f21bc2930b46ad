package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Graph is the deployment's workers and the topics between them.
type Graph struct {
	cfg    *Config
	Topics map[string]*TopicNode // by full topic name (with prefix)
	// Workers in config order with their IO (full topic names).
	Workers []*WorkerNode
}

// TopicNode is one topic of the graph.
type TopicNode struct {
	Name       string // full name
	Logical    string // without prefix
	Kind       string
	Partitions int
	Compacted  bool
	Config     map[string]string
	Producers  []string
	Consumers  []string
	External   bool
}

// WorkerNode is one worker of the graph.
type WorkerNode struct {
	Name     string
	Kind     string
	Role     Role
	Consumes []string
	Produces []string
	IO       IO
}

// Always-present topics: status and metrics are written by every worker.
func (c *Config) builtinStreams() []Stream {
	return []Stream{
		{Topic: TopicStatus, Kind: "status"},
		{Topic: TopicMetrics, Kind: "metric_datapoint"},
		{Topic: TopicHeartbeat, Kind: "heartbeat"},
	}
}

// BuildGraph builds the graph of a loaded config. It does not validate.
func BuildGraph(cfg *Config) *Graph {
	g := &Graph{cfg: cfg, Topics: map[string]*TopicNode{}}
	names := cfg.Cluster.Names()
	node := func(s Stream) *TopicNode {
		full := names.Prefix + s.Topic
		t, ok := g.Topics[full]
		if !ok {
			tc := cfg.Cluster.Topics[s.Topic]
			t = &TopicNode{Name: full, Logical: s.Topic, Kind: s.Kind, Partitions: cfg.Cluster.PartitionsOf(s.Topic),
				Compacted: s.Compacted, Config: tc.Config, External: tc.External}
			g.Topics[full] = t
		}
		return t
	}
	for _, s := range cfg.builtinStreams() {
		node(s)
	}
	if cfg.Management.Enabled() {
		// One partition keeps every change to the channel set in order.
		t := node(Stream{Topic: cfg.Management.ControlTopic, Kind: "control", Compacted: true})
		if tc, ok := cfg.Cluster.Topics[cfg.Management.ControlTopic]; !ok || tc.Partitions == 0 {
			t.Partitions = 1
		}
		t.External = true
	}
	for _, w := range cfg.Workers {
		io := w.Config.IO(w.Name)
		for _, m := range w.Middleware {
			if m.Kind.IO != nil {
				mio := m.Kind.IO(w.Name, m)
				io.Consumes = append(io.Consumes, mio.Consumes...)
				io.Produces = append(io.Produces, mio.Produces...)
				io.CoPartitioned = append(io.CoPartitioned, mio.CoPartitioned...)
			}
		}
		wn := &WorkerNode{Name: w.Name, Kind: w.Kind.Name, Role: w.Kind.Role, IO: io}
		for _, s := range io.Consumes {
			t := node(s)
			if t.Kind != s.Kind && t.Kind != "" {
				t.Kind = t.Kind + "|" + s.Kind // flagged by Validate
			}
			t.Consumers = append(t.Consumers, w.Name)
			wn.Consumes = append(wn.Consumes, t.Name)
		}
		for _, s := range append(io.Produces, cfg.builtinStreams()...) {
			t := node(s)
			if t.Kind != s.Kind {
				t.Kind = t.Kind + "|" + s.Kind
			}
			t.Producers = append(t.Producers, w.Name)
			if !contains(wn.Produces, t.Name) {
				wn.Produces = append(wn.Produces, t.Name)
			}
		}
		g.Workers = append(g.Workers, wn)
	}
	return g
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TopicNames returns every topic, sorted.
func (g *Graph) TopicNames() []string { return sortedKeys(g.Topics) }

// Validate checks the graph before anything runs: every consumed topic
// has a producer (or is declared external), every topic carries one kind
// of message, and co-partitioned topics have equal partition counts.
func (g *Graph) Validate() error {
	var errs []error
	for _, name := range g.TopicNames() {
		t := g.Topics[name]
		if strings.Contains(t.Kind, "|") {
			errs = append(errs, fmt.Errorf("topic %s: workers disagree on its message kind (%s); producers %v, consumers %v",
				name, strings.ReplaceAll(t.Kind, "|", " vs "), t.Producers, t.Consumers))
		}
		if len(t.Consumers) > 0 && len(t.Producers) == 0 && !t.External {
			errs = append(errs, fmt.Errorf("topic %s: consumed by %s but no worker produces it (mark it cluster.topics.%s.external: true if something outside this config writes it)",
				name, strings.Join(t.Consumers, ", "), t.Logical))
		}
	}
	for _, w := range g.Workers {
		for _, group := range w.IO.CoPartitioned {
			want := -1
			for _, logical := range group {
				p := g.cfg.Cluster.PartitionsOf(logical)
				if want == -1 {
					want = p
				} else if p != want {
					errs = append(errs, fmt.Errorf("worker %s: topics %s must be co-partitioned but have partition counts %s",
						w.Name, strings.Join(group, ", "), g.partitionList(group)))
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}

func (g *Graph) partitionList(group []string) string {
	parts := make([]string, len(group))
	for i, l := range group {
		parts[i] = strconv.Itoa(g.cfg.Cluster.PartitionsOf(l))
	}
	return strings.Join(parts, ", ")
}

// WriteText prints the graph for people.
func (g *Graph) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "workers (%d):\n", len(g.Workers))
	for _, wn := range g.Workers {
		fmt.Fprintf(&b, "  %s (%s %s)\n", wn.Name, wn.Role, wn.Kind)
		for _, t := range wn.Consumes {
			fmt.Fprintf(&b, "    <- %s\n", t)
		}
		for _, t := range wn.Produces {
			if n := g.cfg.Cluster.Names(); t == n.Status() || t == n.Metrics() || t == n.Heartbeat() {
				continue
			}
			fmt.Fprintf(&b, "    -> %s\n", t)
		}
	}
	fmt.Fprintf(&b, "topics (%d):\n", len(g.Topics))
	for _, name := range g.TopicNames() {
		t := g.Topics[name]
		extra := ""
		if t.Compacted {
			extra += " compacted"
		}
		if t.External {
			extra += " external"
		}
		fmt.Fprintf(&b, "  %-40s %-16s partitions=%d%s\n", name, t.Kind, t.Partitions, extra)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMermaid prints the graph as a Mermaid flowchart.
func (g *Graph) WriteMermaid(w io.Writer) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	id := func(s string) string { return strings.NewReplacer(".", "_", "-", "_").Replace(s) }
	for _, wn := range g.Workers {
		fmt.Fprintf(&b, "  w_%s[\"%s<br/>%s\"]\n", id(wn.Name), wn.Name, wn.Kind)
	}
	for _, name := range g.TopicNames() {
		fmt.Fprintf(&b, "  t_%s[(\"%s\")]\n", id(name), name)
	}
	for _, wn := range g.Workers {
		for _, t := range wn.Consumes {
			fmt.Fprintf(&b, "  t_%s --> w_%s\n", id(t), id(wn.Name))
		}
		for _, t := range wn.Produces {
			fmt.Fprintf(&b, "  w_%s --> t_%s\n", id(wn.Name), id(t))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDot prints the graph in Graphviz dot.
func (g *Graph) WriteDot(w io.Writer) error {
	var b strings.Builder
	b.WriteString("digraph vumi {\n  rankdir=LR;\n")
	for _, wn := range g.Workers {
		fmt.Fprintf(&b, "  %q [shape=box, label=\"%s\\n%s\"];\n", "w:"+wn.Name, wn.Name, wn.Kind)
	}
	for _, name := range g.TopicNames() {
		fmt.Fprintf(&b, "  %q [shape=cylinder, label=%q];\n", "t:"+name, name)
	}
	for _, wn := range g.Workers {
		for _, t := range wn.Consumes {
			fmt.Fprintf(&b, "  %q -> %q;\n", "t:"+t, "w:"+wn.Name)
		}
		for _, t := range wn.Produces {
			fmt.Fprintf(&b, "  %q -> %q;\n", "w:"+wn.Name, "t:"+t)
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// CreateTopics creates every topic of the graph that does not exist yet,
// with its partition count and configs. Existing topics are left alone; a
// partition count that differs from the config is returned as a warning.
func (g *Graph) CreateTopics(ctx context.Context, adm *kadm.Client) (warnings []string, err error) {
	existing, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var errs []error
	for _, name := range g.TopicNames() {
		t := g.Topics[name]
		if td, ok := existing[name]; ok && td.Err == nil {
			if n := len(td.Partitions); n != t.Partitions {
				warnings = append(warnings, fmt.Sprintf("topic %s has %d partitions, the config says %d (use 'vumi topics add-partitions' to grow it)", name, n, t.Partitions))
			}
			continue
		}
		cfg := map[string]*string{}
		for k, v := range t.Config {
			cfg[k] = &v
		}
		if t.Compacted {
			v := "compact"
			cfg["cleanup.policy"] = &v
		}
		resp, err := adm.CreateTopic(ctx, int32(t.Partitions), int16(g.cfg.Cluster.ReplicationFactor), cfg, name)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", name, err))
			continue
		}
		if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w (%s)", name, resp.Err, resp.ErrMessage))
		}
	}
	sort.Strings(warnings)
	return warnings, errors.Join(errs...)
}
