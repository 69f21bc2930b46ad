package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// DefaultPublishInterval is Vumi's default publish_interval.
const DefaultPublishInterval = 5 * time.Second

// Publisher sends datapoints on their way (to vumi.metrics).
type Publisher interface {
	PublishDatapoints(ctx context.Context, dps []*schemas.MetricDatapoint) error
}

// Options configure a Manager.
type Options struct {
	// PublishInterval is how often values are published; default 5s.
	PublishInterval time.Duration
	// Publisher receives the datapoints; nil keeps them until one is set
	// with SetPublisher (publishing without one is an error).
	Publisher Publisher
	// Source names the worker in every datapoint (the datapoint's source).
	Source string
	// OnPublish, if set, is called after every publish (Vumi's on_publish).
	OnPublish func(*Manager)
	// Logger for publish errors; default slog.Default().
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Manager is Vumi's MetricManager: a set of metrics under one prefix,
// published every publish interval. It is safe for concurrent use.
type Manager struct {
	prefix string
	opts   Options
	log    *slog.Logger

	mu       sync.RWMutex
	metrics  []Registrable
	byName   map[string]Registrable
	oneshots []*schemas.MetricDatapoint

	pub       atomic.Pointer[publisherBox]
	published atomic.Int64
	dropped   atomic.Int64
	pubMu     sync.Mutex // one publish at a time

	runMu   sync.Mutex
	stop    chan struct{}
	done    chan struct{}
	stopped bool
}

type publisherBox struct{ p Publisher }

// NewManager returns a manager whose metric names all start with prefix
// (e.g. "vumi.myworker.").
func NewManager(prefix string, opts Options) *Manager {
	if opts.PublishInterval <= 0 {
		opts.PublishInterval = DefaultPublishInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{prefix: prefix, opts: opts, log: log, byName: map[string]Registrable{}}
	if opts.Publisher != nil {
		m.SetPublisher(opts.Publisher)
	}
	return m
}

// Prefix returns the manager's prefix.
func (m *Manager) Prefix() string { return m.prefix }

// PublishInterval returns how often the manager publishes.
func (m *Manager) PublishInterval() time.Duration { return m.opts.PublishInterval }

// SetPublisher sets where datapoints go.
func (m *Manager) SetPublisher(p Publisher) { m.pub.Store(&publisherBox{p}) }

// Register adds a metric to the manager. A name may be registered once per
// manager and a metric with one manager only.
func (m *Manager) Register(metric Registrable) error {
	b := metric.self()
	if !validName(m.prefix + b.name) {
		return fmt.Errorf("metric %q: names may not be empty or contain whitespace or control characters", m.prefix+b.name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.byName[b.name]; dup {
		return fmt.Errorf("%w %s", ErrDuplicateMetric, m.prefix+b.name)
	}
	if !b.managed.CompareAndSwap(false, true) {
		return fmt.Errorf("metric %s: %w", b.name, ErrAlreadyManaged)
	}
	b.now = m.opts.Now
	m.byName[b.name] = metric
	m.metrics = append(m.metrics, metric)
	return nil
}

// MustRegister registers a metric and returns it, panicking when the name
// is taken: for metrics a worker registers once at start-up.
func MustRegister[T Registrable](m *Manager, metric T) T {
	if err := m.Register(metric); err != nil {
		panic(err)
	}
	return metric
}

// Get returns the metric registered under name (without the prefix), as
// Vumi's manager[name].
func (m *Manager) Get(name string) (Registrable, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.byName[name]
	return r, ok
}

// Count adds n to the counter called name, registering a Count (summed) on
// first use. This is the hook for the standard figures every worker keeps
// (messages in and out, acks, nacks, failures). If name is already taken by
// a metric of another kind, the value is set on that metric.
func (m *Manager) Count(name string, n int64) {
	m.counter(name).Set(float64(n))
}

// Observe records d on the timer called name, registering a Timer
// (averaged) on first use: the hook for handler times.
func (m *Manager) Observe(name string, d time.Duration) {
	m.lookupOrRegister(name, func() Registrable { return NewTimer(name) }).self().Set(d.Seconds())
}

// Timer returns the timer called name, registering one on first use; nil
// when name is taken by another kind of metric.
func (m *Manager) Timer(name string) *Timer {
	t, _ := m.lookupOrRegister(name, func() Registrable { return NewTimer(name) }).(*Timer)
	return t
}

func (m *Manager) counter(name string) *base {
	return m.lookupOrRegister(name, func() Registrable { return NewCount(name) }).self()
}

func (m *Manager) lookupOrRegister(name string, mk func() Registrable) Registrable {
	m.mu.RLock()
	r, ok := m.byName[name]
	m.mu.RUnlock()
	if ok {
		return r
	}
	r = mk()
	if err := m.Register(r); err != nil {
		if got, ok := m.Get(name); ok {
			return got // registered concurrently
		}
		// An unusable name: keep the metric unpublished rather than fail
		// the caller's message handling.
		m.log.Warn("metric not registered", "metric", m.prefix+name, "error", err)
	}
	return r
}

// Oneshot publishes a single value for metric at the next publish (the
// metric need not be registered; the prefix is added).
func (m *Manager) Oneshot(metric Registrable, value float64) {
	b := metric.self()
	dp := &schemas.MetricDatapoint{
		Name:        m.prefix + b.name,
		Aggregators: b.aggNames,
		Timestamp:   time.Unix(m.opts.Now().Unix(), 0).UTC(),
		Value:       value,
		Count:       1,
	}
	if m.opts.Source != "" {
		dp.Source = &m.opts.Source
	}
	m.mu.Lock()
	m.oneshots = append(m.oneshots, dp)
	m.mu.Unlock()
}

// Collect takes every value recorded since the last collection as
// datapoints, oneshots first, then the registered metrics in registration
// order (Vumi's publish_metrics without the publishing).
func (m *Manager) Collect() []*schemas.MetricDatapoint {
	m.mu.Lock()
	out := m.oneshots
	m.oneshots = nil
	metrics := append([]Registrable(nil), m.metrics...)
	m.mu.Unlock()
	var src *string
	if m.opts.Source != "" {
		src = &m.opts.Source
	}
	var buf []sample
	for _, r := range metrics {
		b := r.self()
		var dropped int64
		buf, dropped = b.poll(buf[:0])
		if dropped > 0 {
			m.dropped.Add(dropped)
			m.log.Warn("metric values dropped: more than the pending bound between publishes", "metric", m.prefix+b.name, "dropped", dropped)
		}
		name := m.prefix + b.name
		for _, s := range buf {
			dp := &schemas.MetricDatapoint{
				Name: name, Aggregators: b.aggNames, Timestamp: time.Unix(s.sec, 0).UTC(), Value: s.v, Source: src, Count: 1,
			}
			if b.mean {
				dp.Value, dp.Count = s.v/float64(s.n), s.n
			}
			out = append(out, dp)
		}
	}
	return out
}

// ErrNoPublisher is returned by Publish when no publisher is set.
var ErrNoPublisher = errors.New("metrics: no publisher available")

// Publish publishes every waiting value now (Vumi's publish_metrics).
func (m *Manager) Publish(ctx context.Context) error {
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	box := m.pub.Load()
	if box == nil {
		return ErrNoPublisher
	}
	dps := m.Collect()
	var err error
	if len(dps) > 0 {
		err = box.p.PublishDatapoints(ctx, dps)
		if err == nil {
			m.published.Add(int64(len(dps)))
		}
	}
	if m.opts.OnPublish != nil {
		m.opts.OnPublish(m)
	}
	return err
}

// Published returns how many datapoints were published so far.
func (m *Manager) Published() int64 { return m.published.Load() }

// Start publishes every publish interval until Stop is called or ctx is
// done (Vumi's start_polling).
func (m *Manager) Start(ctx context.Context) {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	if m.stop != nil || m.stopped {
		return // running already, or stopped for good
	}
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	go m.loop(ctx)
}

func (m *Manager) loop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.opts.PublishInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.stop:
			return
		case <-t.C:
			if err := m.Publish(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("metrics not published", "error", err)
			}
		}
	}
}

// Stop stops the publishing loop and publishes what is still waiting, so a
// worker that stops does not lose its last counts.
func (m *Manager) Stop(ctx context.Context) error {
	// Start and Stop may run on different goroutines (a worker's heartbeat
	// starts publishing; its Close stops it): the mutex orders them.
	m.runMu.Lock()
	stop, done := m.stop, m.done
	if stop != nil && !m.stopped {
		close(stop)
	}
	m.stopped = true
	m.runMu.Unlock()
	if done != nil {
		<-done
	}
	if m.pub.Load() == nil {
		return nil
	}
	return m.Publish(ctx)
}

// KafkaPublisher produces datapoints to a topic (vumi.metrics), keyed by
// metric name, and waits for the broker's acks.
type KafkaPublisher struct {
	Client *kgo.Client
	Codec  *schemas.Codec[schemas.MetricDatapoint]
	Topic  string
}

// PublishDatapoints implements Publisher.
func (p *KafkaPublisher) PublishDatapoints(ctx context.Context, dps []*schemas.MetricDatapoint) error {
	recs := make([]*kgo.Record, 0, len(dps))
	for _, dp := range dps {
		v, err := p.Codec.Encode(dp)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		recs = append(recs, &kgo.Record{Topic: p.Topic, Key: []byte(dp.Name), Value: v})
	}
	if err := kafka.ProduceSync(ctx, p.Client, recs...); err != nil {
		return fmt.Errorf("metrics: produce to %s: %w", p.Topic, err)
	}
	return nil
}

// WorkerPrefix is the prefix of a worker's standard metrics: "vumi.<worker>."
// (the documentation's example prefix is "vumi.worker0.").
func WorkerPrefix(worker string) string { return "vumi." + worker + "." }

// ForWorker returns the manager of a worker's standard figures: prefix
// "vumi.<worker>.", source the worker's name, publishing through client
// (the worker's producer) to the deployment's vumi.metrics with its
// registered codec. Call Start once the worker runs and Stop when it stops.
func ForWorker(deps *topology.Deps, worker string, client *kgo.Client, interval time.Duration) *Manager {
	return NewManager(WorkerPrefix(worker), Options{
		PublishInterval: interval,
		Source:          worker,
		Logger:          deps.WorkerLogger(worker).With("component", "metrics"),
		Publisher:       &KafkaPublisher{Client: client, Codec: deps.Codecs.MetricDatapoint, Topic: deps.Names.Metrics()},
	})
}
