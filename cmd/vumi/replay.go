package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/history"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// pureKinds are the application kinds that only read and write topics:
// replaying into them touches nothing outside Kafka. Dispatchers (routers)
// are all pure. Everything else (transports, sinks, applications that call
// HTTP services or listen on ports) needs -allow-side-effects.
var pureKinds = []string{"echo", "reverse", "word_count", "calculator", "static_reply", "rps", "tictactoe"}

// Headers of a replayed copy: the record it came from (topic/partition/
// offset), for comparing a shadow run with the original, and the original
// record's timestamp (the copy is stamped with the time of the replay, so
// that retention and time-based expiry in the shadow behave as for new
// records; the message's own timestamp field is unchanged).
const (
	replaySourceHeader    = "vumi.replay.source"
	replayTimestampHeader = "vumi.replay.timestamp"
)

func replayCommand() *command {
	c := &command{
		name:    "replay",
		summary: "re-run a time range of topic history into a shadow copy of a worker, or copy it to other topics",
		usage: "-c FILE (-topic T[,T...] | -transport NAME -kind inbound|outbound|event|failures) -from TIME [-to TIME]\n" +
			"       (-into-worker NAME [-output-prefix shadow.] | -to-topic DEST | -output-prefix P) [-append] [-allow-live] [-allow-side-effects]",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		var conn connFlags
		conn.register(fs)
		topicList := fs.String("topic", "", "comma-separated source topics (full names)")
		transportName := fs.String("transport", "", "source: this transport's (or connector's) topic of -kind")
		kind := fs.String("kind", "", "with -transport: inbound, outbound, event or failures")
		fromS := fs.String("from", "", "start of the range (required): RFC 3339 time, Vumi timestamp, Unix milliseconds, or a duration ago (2h)")
		toS := fs.String("to", "", "end of the range, exclusive (default now)")
		intoWorker := fs.String("into-worker", "", "run this worker of the config on the range, as a shadow: its topics, consumer groups and tables all under -output-prefix")
		toTopic := fs.String("to-topic", "", "copy the range of the one source topic to this topic")
		outPrefix := fs.String("output-prefix", "", "with -into-worker: the shadow namespace (default shadow.); alone: copy each source topic T to PREFIX+T")
		appendTo := fs.Bool("append", false, "allow copying into shadow topics that already hold records")
		allowLive := fs.Bool("allow-live", false, "allow copying into a topic that workers of the config consume (re-runs them for real: transports would send again)")
		allowSide := fs.Bool("allow-side-effects", false, "allow -into-worker for transports, sinks and applications that reach outside Kafka")
		stateDir := fs.String("state-dir", "", "with -into-worker: where the shadow worker keeps its tables (default a temporary directory, removed afterwards)")
		idle := fs.Duration("timeout", 10*time.Minute, "with -into-worker: give up when the shadow worker has not caught up within this time")
		quiet := fs.Bool("quiet", false, "no progress bar on stderr")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("unexpected arguments %v", fs.Args())
		}
		if *fromS == "" {
			return usagef("-from is required (the start of the range to replay)")
		}
		var rng history.Range
		var err error
		if rng.From, err = parseSince(*fromS); err != nil {
			return usagef("-from: %v", err)
		}
		if *toS != "" {
			if rng.To, err = parseSince(*toS); err != nil {
				return usagef("-to: %v", err)
			}
			if !rng.From.Before(rng.To) {
				return usagef("-from must be before -to")
			}
		}
		modes := 0
		for _, set := range []bool{*intoWorker != "", *toTopic != "", *outPrefix != "" && *intoWorker == ""} {
			if set {
				modes++
			}
		}
		if modes != 1 {
			return usagef("give one of -into-worker NAME, -to-topic DEST or -output-prefix PREFIX")
		}
		if *intoWorker != "" && conn.config == "" {
			return usagef("-into-worker needs the deployment config (-c FILE)")
		}
		if _, err := conn.fromConfig(); err != nil {
			return err
		}
		names := topology.Names{}
		if conn.cfg != nil {
			names = conn.cfg.Cluster.Names()
		}
		var sources []string
		for _, t := range strings.Split(*topicList, ",") {
			if t = strings.TrimSpace(t); t != "" {
				sources = append(sources, t)
			}
		}
		if *transportName != "" {
			t, err := kindTopic(names, *transportName, *kind)
			if err != nil {
				return err
			}
			sources = append(sources, t)
		} else if *kind != "" {
			return usagef("-kind needs -transport")
		}
		cl, err := conn.client(kgo.FetchMaxWait(200 * time.Millisecond))
		if err != nil {
			return err
		}
		defer cl.Close()
		r := &replayer{e: e, cl: cl, adm: kadm.NewClient(cl), reg: conn.registryClient(), rng: rng, quiet: *quiet, appendTo: *appendTo}
		if conn.cfg != nil {
			r.graph = topology.BuildGraph(conn.cfg)
		}
		switch {
		case *intoWorker != "":
			prefix := *outPrefix
			if prefix == "" {
				prefix = "shadow."
			}
			return r.intoWorker(ctx, conn.cfg, conn.deps, *intoWorker, sources, prefix, *allowSide, *stateDir, *idle)
		case *toTopic != "":
			if len(sources) != 1 {
				return usagef("-to-topic copies exactly one source topic (give -topic or -transport/-kind), got %d", len(sources))
			}
			return r.copyTopics(ctx, map[string]string{sources[0]: *toTopic}, *allowLive)
		default:
			if len(sources) == 0 {
				return usagef("give the source topics (-topic, or -transport and -kind)")
			}
			pairs := map[string]string{}
			for _, s := range sources {
				pairs[s] = *outPrefix + s
			}
			return r.copyTopics(ctx, pairs, *allowLive)
		}
	}
	return c
}

func kindTopic(n topology.Names, transport, kind string) (string, error) {
	switch kind {
	case "inbound":
		return n.Inbound(transport), nil
	case "outbound":
		return n.Outbound(transport), nil
	case "event":
		return n.Event(transport), nil
	case "failures":
		return n.Failures(transport), nil
	case "":
		return "", usagef("-transport needs -kind (inbound, outbound, event or failures)")
	}
	return "", usagef("-kind must be inbound, outbound, event or failures, got %q", kind)
}

type replayer struct {
	e        *env
	cl       *kgo.Client
	adm      *kadm.Client
	reg      schemas.Registry
	graph    *topology.Graph
	rng      history.Range
	quiet    bool
	appendTo bool
}

// copyTopics copies the range of each source topic to its destination,
// creating destinations that do not exist with the source's partition count.
func (r *replayer) copyTopics(ctx context.Context, pairs map[string]string, allowLive bool) error {
	sources := make([]string, 0, len(pairs))
	for s, d := range pairs {
		if s == d && !allowLive {
			return fmt.Errorf("copying %s onto itself re-runs its consumers; pass -allow-live if that is what you want", s)
		}
		sources = append(sources, s)
	}
	sort.Strings(sources)
	if r.graph != nil && !allowLive {
		for _, s := range sources {
			if t, ok := r.graph.Topics[pairs[s]]; ok && len(t.Consumers) > 0 {
				return fmt.Errorf("%s is consumed by %s of the config: copying into it re-runs them for real (a transport would send to the outside world again); copy to another topic, or pass -allow-live", pairs[s], strings.Join(t.Consumers, ", "))
			}
		}
	}
	if !allowLive {
		// Without a config (or for consumers outside it): any consumer
		// group with offsets on a destination reads it.
		dests := make([]string, 0, len(pairs))
		for _, s := range sources {
			dests = append(dests, pairs[s])
		}
		readers, err := r.readers(ctx, dests)
		if err != nil {
			return err
		}
		for _, d := range dests {
			if len(readers[d]) > 0 {
				return fmt.Errorf("%s is read by the consumer group(s) %s: copying into it re-runs them for real; copy to another topic, or pass -allow-live", d, strings.Join(readers[d], ", "))
			}
		}
	}
	tds, err := r.adm.ListTopics(ctx, sources...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, s := range sources {
		td, ok := tds[s]
		if !ok || td.Err != nil {
			return fmt.Errorf("source topic %s: %w", s, history.ErrNoTopic)
		}
		if err := r.ensureTopic(ctx, pairs[s], len(td.Partitions)); err != nil {
			return err
		}
	}
	n, err := r.copy(ctx, pairs)
	if err != nil {
		return err
	}
	for _, s := range sources {
		fmt.Fprintf(r.e.stdout, "copied %d records of %s (%s) to %s\n", n[s], s, r.rng, pairs[s])
	}
	return nil
}

// readers returns, per topic, the consumer groups with committed offsets
// on it.
func (r *replayer) readers(ctx context.Context, topics []string) (map[string][]string, error) {
	groups, err := r.adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list consumer groups: %w", err)
	}
	out := map[string][]string{}
	if len(groups) == 0 {
		return out, nil
	}
	for _, f := range r.adm.FetchManyOffsets(ctx, groups.Groups()...) {
		if f.Err != nil {
			continue
		}
		for _, t := range topics {
			if _, ok := f.Fetched[t]; ok && !slices.Contains(out[t], f.Group) {
				out[t] = append(out[t], f.Group)
			}
		}
	}
	for _, g := range out {
		sort.Strings(g)
	}
	return out, nil
}

// ensureTopic creates topic with partitions unless it exists; an existing
// topic that holds records is refused unless -append.
func (r *replayer) ensureTopic(ctx context.Context, topic string, partitions int) error {
	tds, err := r.adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	if td, ok := tds[topic]; ok && td.Err == nil {
		return r.checkEmpty(ctx, topic)
	}
	resp, err := r.adm.CreateTopic(ctx, int32(partitions), -1, nil, topic)
	if err != nil {
		return fmt.Errorf("create %s: %w", topic, err)
	}
	if resp.Err != nil {
		return fmt.Errorf("create %s: %w (%s)", topic, resp.Err, resp.ErrMessage)
	}
	fmt.Fprintf(r.e.stderr, "created %s with %d partitions\n", topic, partitions)
	return nil
}

func (r *replayer) checkEmpty(ctx context.Context, topic string) error {
	if r.appendTo {
		return nil
	}
	starts, err := r.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return err
	}
	ends, err := r.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			n += o.Offset - s.Offset
		}
	})
	if n > 0 {
		return fmt.Errorf("%s already holds %d records (an earlier replay?): use another prefix or topic, delete it, or pass -append", topic, n)
	}
	return nil
}

// copy reads the range of every source and produces each record (key,
// value and headers kept, plus the vumi.replay.* headers) to
// its destination, keyed as before so it lands on the same partition
// number. It returns the count per source.
func (r *replayer) copy(ctx context.Context, pairs map[string]string) (map[string]int64, error) {
	sources := make([]string, 0, len(pairs))
	for s := range pairs {
		sources = append(sources, s)
	}
	sort.Strings(sources)
	spans, err := history.Spans(ctx, r.adm, sources, r.rng)
	if err != nil {
		return nil, err
	}
	bar := newProgress(r.e.stderr, "copying", r.quiet)
	counts := map[string]int64{}
	var mu sync.Mutex
	var perr error
	var wg sync.WaitGroup
	registered := map[string]bool{}
	err = history.Read(ctx, r.cl, spans, history.ReadOptions{Range: r.rng, Progress: bar.update}, func(rec *kgo.Record) error {
		dest := pairs[rec.Topic]
		if !registered[dest] && rec.Value != nil {
			// Register the record's schema under the destination's subject,
			// so that registry-based tools find it (TopicNameStrategy).
			if err := r.registerLike(ctx, dest, rec.Value); err != nil {
				return err
			}
			registered[dest] = true
		}
		out := &kgo.Record{
			Topic: dest, Key: rec.Key, Value: rec.Value,
			Headers: append(slices.Clone(rec.Headers),
				kgo.RecordHeader{Key: replaySourceHeader, Value: fmt.Appendf(nil, "%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)},
				kgo.RecordHeader{Key: replayTimestampHeader, Value: []byte(rec.Timestamp.UTC().Format(time.RFC3339Nano))}),
		}
		counts[rec.Topic]++
		wg.Add(1)
		r.cl.Produce(ctx, out, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				perr = errors.Join(perr, fmt.Errorf("produce to %s: %w", dest, err))
				mu.Unlock()
			}
		})
		return nil
	})
	bar.finish()
	if ferr := r.cl.Flush(ctx); ferr != nil && err == nil {
		err = ferr
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return counts, perr
}

func (r *replayer) registerLike(ctx context.Context, topic string, value []byte) error {
	id, err := schemas.SchemaID(value)
	if err != nil {
		return nil // not Confluent-framed: nothing to register
	}
	text, err := r.reg.SchemaByID(ctx, int(id))
	if err != nil {
		return fmt.Errorf("schema id %d: %w", id, err)
	}
	if _, err := r.reg.Register(ctx, topic+"-value", text); err != nil {
		return fmt.Errorf("register the schema of %s: %w", topic, err)
	}
	return nil
}

// intoWorker runs a shadow copy of a worker over the range: the worker's
// inputs are copied to prefix+topic, and the worker runs with the topic
// prefix prefix+<cluster prefix>, so its outputs, consumer groups, tables
// and status all live under that prefix and no live group is touched.
func (r *replayer) intoWorker(ctx context.Context, cfg *topology.Config, deps *topology.Deps, name string, sources []string, prefix string, allowSide bool, stateDir string, timeout time.Duration) error {
	spec, ok := cfg.Worker(name)
	if !ok {
		return fmt.Errorf("%s: no worker named %q (workers: %v)", cfg.File, name, cfg.WorkerNames())
	}
	if !topology.ValidTopicPrefix(prefix) || prefix == "" {
		return usagef("-output-prefix %q: may only contain letters, digits, '.', '_' and '-'", prefix)
	}
	pure := spec.Kind.Role == topology.RoleDispatcher || slices.Contains(pureKinds, spec.Kind.Name)
	if !pure && !allowSide {
		return fmt.Errorf("worker %s is a %s (%s): a shadow copy of it could reach the outside world (send messages, call HTTP services, listen on its ports); pass -allow-side-effects if you mean it", name, spec.Kind.Role, spec.Kind.Name)
	}
	live := cfg.Cluster.Names()
	shadowCluster := cfg.Cluster
	shadowCluster.TopicPrefix = prefix + cfg.Cluster.TopicPrefix
	shadow := shadowCluster.Names()
	logicalOf := func(full string) string { return strings.TrimPrefix(full, live.Prefix) }

	// The worker's inputs that hold history (not its own state topics).
	var inputs []string
	for _, s := range spec.Config.IO(spec.Name).Consumes {
		switch s.Kind {
		case "user_message", "event", "failure":
			inputs = append(inputs, live.Prefix+s.Topic)
		}
	}
	if len(sources) == 0 {
		sources = inputs
	}
	for _, s := range sources {
		if !slices.Contains(inputs, s) {
			return fmt.Errorf("worker %s does not consume %s (it consumes %s)", name, s, strings.Join(inputs, ", "))
		}
	}
	if stateDir == "" {
		dir, err := os.MkdirTemp("", "vumi-replay-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		stateDir = dir
	}
	shadowCluster.StateDir = stateDir
	log := r.e.log.With("replay", prefix)
	sdeps, err := topology.NewDeps(&shadowCluster, deps.Brokers, deps.Registry, deps.Kinds, log)
	if err != nil {
		return err
	}
	// The shadow deployment: this one worker, every topic under the prefix.
	scfg := topology.ConfigOf(&shadowCluster, spec)
	graph := topology.BuildGraph(scfg)
	for _, s := range sources {
		if err := r.checkEmpty(ctx, shadow.Prefix+logicalOf(s)); err != nil && !isNoTopic(err) {
			return err
		}
	}
	if err := topology.Prepare(ctx, sdeps, graph, log); err != nil {
		return err
	}
	pairs := map[string]string{}
	for _, s := range sources {
		pairs[s] = shadow.Prefix + logicalOf(s)
	}
	counts, err := r.copy(ctx, pairs)
	if err != nil {
		return err
	}
	var total int64
	for _, s := range sources {
		fmt.Fprintf(r.e.stderr, "copied %d records of %s to %s\n", counts[s], s, pairs[s])
		total += counts[s]
	}
	// Note the shadow outputs' end offsets now, to count what the run adds.
	var outputs []string
	for _, s := range spec.Config.IO(spec.Name).Produces {
		switch s.Kind {
		case "user_message", "event", "failure":
			outputs = append(outputs, shadow.Prefix+s.Topic)
		}
	}
	before, err := r.adm.ListEndOffsets(ctx, outputs...)
	if err != nil {
		return err
	}

	w, err := spec.Kind.Build(sdeps, spec)
	if err != nil {
		return fmt.Errorf("worker %s: %w", name, err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	log.Info("shadow worker running", "worker", name, "prefix", shadow.Prefix, "state_dir", stateDir)

	// Wait until the shadow consumer groups have committed every copied
	// record (the worker's outputs are written before its offsets commit).
	bar := newProgress(r.e.stderr, "processing", r.quiet)
	var inputsShadow []string
	for _, s := range inputs {
		inputsShadow = append(inputsShadow, shadow.Prefix+logicalOf(s))
	}
	deadline := time.Now().Add(timeout)
	for {
		consumed, target, err := r.shadowProgress(ctx, shadow.Prefix, inputsShadow)
		if err != nil {
			log.Debug("progress", "error", err)
		}
		bar.update(min(consumed, target), target)
		if err == nil && target > 0 && consumed >= target || total == 0 {
			break
		}
		select {
		case err := <-done:
			bar.finish()
			if err == nil {
				err = errors.New("returned before catching up")
			}
			return fmt.Errorf("shadow worker %s: %w", name, err)
		case <-ctx.Done():
			bar.finish()
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			bar.finish()
			return fmt.Errorf("shadow worker %s did not catch up within %s (see -timeout)", name, timeout)
		}
	}
	bar.finish()
	stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("shadow worker stopped with an error", "error", err)
		}
	case <-time.After(30 * time.Second):
		log.Warn("shadow worker did not stop within 30s")
	}
	after, err := r.adm.ListEndOffsets(context.WithoutCancel(ctx), outputs...)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.e.stdout, "replayed %d records (%s) into a shadow %s under %q\n", total, r.rng, name, shadow.Prefix)
	sort.Strings(outputs)
	for _, o := range outputs {
		var n int64
		after.Each(func(a kadm.ListedOffset) {
			if a.Topic != o {
				return
			}
			b, _ := before.Lookup(a.Topic, a.Partition)
			n += a.Offset - max(b.Offset, 0)
		})
		fmt.Fprintf(r.e.stdout, "  %-40s %d new records\n", o, n)
	}
	return nil
}

// shadowProgress sums, over the shadow inputs, the offsets committed by
// the shadow consumer groups (every group under the prefix) and the end
// offsets.
func (r *replayer) shadowProgress(ctx context.Context, prefix string, inputs []string) (consumed, target int64, err error) {
	ends, err := r.adm.ListEndOffsets(ctx, inputs...)
	if err != nil {
		return 0, 0, err
	}
	groups, err := r.adm.ListGroups(ctx)
	if err != nil {
		return 0, 0, err
	}
	var ours []string
	for _, g := range groups.Groups() {
		if strings.HasPrefix(g, prefix) {
			ours = append(ours, g)
		}
	}
	best := map[string]map[int32]int64{}
	if len(ours) > 0 {
		fetched := r.adm.FetchManyOffsets(ctx, ours...)
		for _, f := range fetched {
			f.Fetched.Each(func(o kadm.OffsetResponse) {
				if best[o.Topic] == nil {
					best[o.Topic] = map[int32]int64{}
				}
				best[o.Topic][o.Partition] = max(best[o.Topic][o.Partition], o.At)
			})
		}
	}
	ends.Each(func(o kadm.ListedOffset) {
		target += o.Offset
		consumed += min(best[o.Topic][o.Partition], o.Offset)
	})
	return consumed, target, nil
}

func isNoTopic(err error) bool {
	return err != nil && (errors.Is(err, history.ErrNoTopic) || strings.Contains(err.Error(), "UNKNOWN_TOPIC_OR_PARTITION"))
}
