// Package aggregator is the metric_aggregator worker: Vumi's
// MetricTimeBucket and MetricAggregator as one windowed goka processor. It
// consumes raw datapoints from vumi.metrics (keyed, so partitioned, by
// metric name), keeps each metric's open windows in its group table, and
// emits one aggregate per metric per aggregator per window to
// vumi.metrics.aggregates, named "<metric>.<aggregator>".
//
// Windows close on time, not on the next datapoint: a ticker in each
// instance visits every key of the partitions it owns (goka's Visitor,
// through Processor.VisitAll) and closes the windows that are due. Each
// visit runs in the partition's own goroutine, so it never races the
// datapoints of that partition, and its emits and table writes go out like
// any callback's. The table records the last window emitted per metric, so
// a window is emitted once, also after a restart or a rebalance.
package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// VisitClose is the name of the visitor that closes due windows.
const VisitClose = "close"

// Stats count what the aggregator did; they outlive restarts of the worker.
type Stats struct {
	Accepted *vm.Counter
	Late     *vm.Counter
	Invalid  *vm.Counter
	Emitted  *vm.Counter
	// Metrics is the number of metric names with state at the last tick.
	Metrics *vm.Gauge
	metrics float64
}

// NewStats registers the aggregator's figures for worker in set:
// vumi_metric_datapoints_total{worker,outcome},
// vumi_metric_aggregates_total{worker} and vumi_metric_names{worker}.
func NewStats(set *vm.Set, worker string) *Stats {
	s := &Stats{
		Accepted: set.GetOrCreateCounter(fmt.Sprintf(`vumi_metric_datapoints_total{worker=%q,outcome="accepted"}`, worker)),
		Late:     set.GetOrCreateCounter(fmt.Sprintf(`vumi_metric_datapoints_total{worker=%q,outcome="late"}`, worker)),
		Invalid:  set.GetOrCreateCounter(fmt.Sprintf(`vumi_metric_datapoints_total{worker=%q,outcome="invalid"}`, worker)),
		Emitted:  set.GetOrCreateCounter(fmt.Sprintf(`vumi_metric_aggregates_total{worker=%q}`, worker)),
	}
	s.Metrics = set.GetOrCreateGauge(fmt.Sprintf(`vumi_metric_names{worker=%q}`, worker), nil)
	return s
}

// Aggregator is the processor's logic and goka wiring, independent of how
// the processor is run (a worker, or goka's tester).
type Aggregator struct {
	Params Params
	// Group is the goka group (and table) name.
	Group      goka.Group
	Input      goka.Stream
	Output     goka.Stream
	Datapoints *schemas.Codec[schemas.MetricDatapoint]
	Aggregates *schemas.Codec[schemas.MetricAggregate]
	Log        *slog.Logger
	Stats      *Stats
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Count, if set, receives the worker's figures (heartbeats).
	Count func(name string, n int64)
	// WaitRegistry, if set, gives the context of decoding a datapoint, so
	// that an unknown schema id met while the registry is down waits for
	// it (worker.Base.RegistryWaitInProcessor); Hold then leaves a
	// datapoint whose wait ended with the processor unconsumed
	// (worker.Base.HoldInProcessor).
	WaitRegistry func(goka.Context) context.Context
	Hold         func(goka.Context, error)
}

func (a *Aggregator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Aggregator) count(name string, n int64) {
	if a.Count != nil {
		a.Count(name, n)
	}
}

// Graph is the aggregator's goka group graph.
func (a *Aggregator) Graph() *goka.GroupGraph {
	return goka.DefineGroup(a.Group,
		goka.Input(a.Input, new(gokacodec.Bytes), a.onDatapoint),
		goka.Visitor(VisitClose, a.onClose),
		goka.Output(a.Output, schemas.GokaCodec[schemas.MetricAggregate]{C: a.Aggregates}),
		goka.Persist(StateCodec{}),
	)
}

// Table is the group table holding the windows.
func (a *Aggregator) Table() goka.Table { return goka.GroupTable(a.Group) }

func (a *Aggregator) onDatapoint(ctx goka.Context, v any) {
	raw, _ := v.([]byte)
	var dp schemas.MetricDatapoint
	dctx := ctx.Context()
	if a.WaitRegistry != nil {
		dctx = a.WaitRegistry(ctx)
	}
	if err := a.Datapoints.DecodeContext(dctx, raw, &dp); err != nil {
		if schemas.IsRegistryUnavailable(err) && a.Hold != nil {
			a.Hold(ctx, err)
			return
		}
		a.Stats.Invalid.Inc()
		a.count("datapoints_invalid", 1)
		a.Log.Warn("undecodable datapoint dropped", "key", ctx.Key(), "partition", ctx.Partition(), "offset", ctx.Offset(), "error", err)
		return
	}
	if dp.Name != ctx.Key() {
		// Keyed by something else: it may sit on another partition than
		// the metric's windows, so folding it in could split a window.
		a.Stats.Invalid.Inc()
		a.count("datapoints_invalid", 1)
		a.Log.Warn("datapoint not keyed by its metric name dropped", "key", ctx.Key(), "name", dp.Name)
		return
	}
	var st *State
	if cur := ctx.Value(); cur != nil {
		st = cur.(*State)
	}
	st, out := a.Params.Add(st, &dp, a.now())
	switch out {
	case Accepted:
		a.Stats.Accepted.Inc()
		ctx.SetValue(st)
	case Late:
		a.Stats.Late.Inc()
		a.count("datapoints_late", 1)
		a.Log.Debug("late datapoint dropped", "metric", dp.Name, "timestamp", dp.Timestamp, "source", deref(dp.Source))
	default:
		a.Stats.Invalid.Inc()
		a.count("datapoints_invalid", 1)
		a.Log.Debug("invalid datapoint dropped", "metric", dp.Name, "aggregators", dp.Aggregators, "value", dp.Value, "timestamp", dp.Timestamp)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (a *Aggregator) onClose(ctx goka.Context, meta any) {
	now, ok := meta.(time.Time)
	if !ok {
		now = a.now()
	}
	cur := ctx.Value()
	if cur == nil {
		return
	}
	st, changed := a.Params.Close(ctx.Key(), cur.(*State), now, func(agg *schemas.MetricAggregate) {
		ctx.Emit(a.Output, agg.Name, agg)
		a.Stats.Emitted.Inc()
	})
	switch {
	case st == nil:
		ctx.Delete()
	case changed:
		ctx.SetValue(st)
	}
}

// Tick closes the windows due at now in every partition p owns; it returns
// once every visit is done.
func (a *Aggregator) Tick(ctx context.Context, p *goka.Processor, now time.Time) error {
	n, err := worker.VisitAll(ctx, p, VisitClose, now)
	if err == nil {
		a.Stats.Metrics.Set(float64(n))
	}
	return err
}

// Kind is the metric_aggregator worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name:    "metric_aggregator",
		Aliases: []string{"vumi.blinkenlights.MetricAggregator", "vumi.blinkenlights.metrics_workers.MetricAggregator"},
		Role:    topology.Role("processor"),
		Summary: "buckets vumi.metrics datapoints into windows and emits aggregates to vumi.metrics.aggregates",
		NewConfig: func() topology.WorkerConfig {
			return &Config{}
		},
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return &Worker{deps: deps, spec: spec, cfg: spec.Config.(*Config), stats: NewStats(vm.GetDefaultSet(), spec.Name)}, nil
		},
	}
}

// Worker runs an Aggregator as a goka processor with a ticker.
type Worker struct {
	deps  *topology.Deps
	spec  *topology.WorkerSpec
	cfg   *Config
	stats *Stats
}

// New returns the aggregator of a worker.
func (w *Worker) New(b *worker.Base) *Aggregator {
	n := w.deps.Names
	return &Aggregator{
		Params:     w.cfg.Params(),
		Group:      goka.Group(n.Prefix + w.spec.Name),
		Input:      goka.Stream(n.Metrics()),
		Output:     goka.Stream(n.MetricAggregates()),
		Datapoints: w.deps.Codecs.MetricDatapoint,
		Aggregates: w.deps.Codecs.MetricAggregate,
		Log:        b.Log,
		Stats:      w.stats,
		Count:      b.Count,

		WaitRegistry: b.RegistryWaitInProcessor,
		Hold:         b.HoldInProcessor,
	}
}

// Run runs the processor and its ticker until ctx is cancelled.
func (w *Worker) Run(ctx context.Context) error {
	b, err := worker.NewBase(w.deps, w.spec, w.cfg.Common)
	if err != nil {
		return err
	}
	defer b.Close()
	a := w.New(b)
	p, err := b.NewProcessor(a.Graph())
	if err != nil {
		return err
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go b.RunHeartbeat(hbCtx)
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	b.Log.Info("metric aggregator running", "bucket_size", w.cfg.BucketSize.D(), "lateness", w.cfg.Lateness.D(), "tick_interval", w.cfg.TickInterval.D())
	t := time.NewTicker(w.cfg.TickInterval.D())
	defer t.Stop()
	for {
		select {
		case err := <-errc:
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("metric aggregator %s: %w", w.spec.Name, err)
			}
			return nil
		case now := <-t.C:
			if err := a.Tick(ctx, p, now); err != nil && ctx.Err() == nil && !errors.Is(err, goka.ErrVisitAborted) {
				b.Log.Warn("closing windows failed", "error", err)
			}
		}
	}
}
