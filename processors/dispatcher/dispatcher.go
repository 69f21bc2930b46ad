// Package dispatcher is the base of Vumi's dispatchers: a goka processor
// that connects many transport endpoints (transport_names) to many
// application endpoints (exposed_names) through a pluggable Router. It
// consumes <transport>.inbound and <transport>.event of every transport
// name and <exposed>.outbound of every exposed name, and lets the router
// publish to <exposed>.inbound / .event and <transport>.outbound. Routers
// that remember things keep them in the group table.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the part of every dispatcher's config the base reads (Vumi's
// BaseDispatchWorker config). Embed it with `yaml:",inline"`.
type Config struct {
	// RouterClass names the router (Vumi's router_class); with kind
	// "dispatcher" it selects the worker kind.
	RouterClass string `yaml:"router_class"`
	// TransportNames are the transport-side connectors. Required.
	TransportNames []string `yaml:"transport_names"`
	// ExposedNames are the application-side connectors. Required.
	ExposedNames []string `yaml:"exposed_names"`
	// AmqpPrefetchCount is accepted for Vumi compatibility (parallelism
	// comes from partitions).
	AmqpPrefetchCount int `yaml:"amqp_prefetch_count"`
	worker.Common     `yaml:",inline"`
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// ValidateBase checks the base keys and fills defaults.
func (c *Config) ValidateBase() error { return c.validateBase(true) }

// ValidateBaseNoExposed is ValidateBase for routers that only connect
// transports to each other (Vumi's TransportToTransportRouter), whose
// exposed_names may be empty.
func (c *Config) ValidateBaseNoExposed() error { return c.validateBase(false) }

func (c *Config) validateBase(needExposed bool) error {
	if len(c.TransportNames) == 0 {
		return errors.New("key transport_names: at least one transport name is required")
	}
	if needExposed && len(c.ExposedNames) == 0 {
		return errors.New("key exposed_names: at least one exposed name is required")
	}
	seen := map[string]string{}
	for _, l := range []struct {
		key   string
		names []string
	}{{"transport_names", c.TransportNames}, {"exposed_names", c.ExposedNames}} {
		for _, n := range l.names {
			if !nameRe.MatchString(n) {
				return fmt.Errorf("key %s: %q may only contain letters, digits, '_' and '-'", l.key, n)
			}
			if prev, dup := seen[n]; dup {
				return fmt.Errorf("key %s: %q is already in %s (a connector cannot be both, or twice)", l.key, n, prev)
			}
			seen[n] = l.key
		}
	}
	c.Common.Defaults()
	return nil
}

// HasTransport reports whether name is one of the transport names.
func (c *Config) HasTransport(name string) bool { return has(c.TransportNames, name) }

// HasExposed reports whether name is one of the exposed names.
func (c *Config) HasExposed(name string) bool { return has(c.ExposedNames, name) }

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// IO is the topics of a dispatcher worker called name.
func (c *Config) IO(name string) topology.IO {
	io := topology.IO{}
	var group []string
	for _, t := range c.TransportNames {
		io.Consumes = append(io.Consumes,
			topology.Stream{Topic: t + topology.SuffixInbound, Kind: "user_message"},
			topology.Stream{Topic: t + topology.SuffixEvent, Kind: "event"})
		io.Produces = append(io.Produces,
			topology.Stream{Topic: t + topology.SuffixOutbound, Kind: "user_message"},
			topology.Stream{Topic: t + topology.SuffixFailures, Kind: "failure"})
		group = append(group, t+topology.SuffixInbound, t+topology.SuffixEvent)
	}
	for _, e := range c.ExposedNames {
		io.Consumes = append(io.Consumes, topology.Stream{Topic: e + topology.SuffixOutbound, Kind: "user_message"})
		io.Produces = append(io.Produces,
			topology.Stream{Topic: e + topology.SuffixInbound, Kind: "user_message"},
			topology.Stream{Topic: e + topology.SuffixEvent, Kind: "event"},
			topology.Stream{Topic: e + topology.SuffixFailures, Kind: "failure"})
		group = append(group, e+topology.SuffixOutbound)
	}
	table := string(goka.GroupTable(goka.Group(name)))
	io.Consumes = append(io.Consumes, topology.Stream{Topic: table, Kind: "state", Compacted: true})
	io.Produces = append(io.Produces, topology.Stream{Topic: table, Kind: "state", Compacted: true})
	io.CoPartitioned = [][]string{append(group, table)}
	return io
}

// WithLoopback adds the loopback topic of the dispatcher called name
// (goka's "<group>-loop") to io, co-partitioned with the inputs and the
// group table. Configs of routers that implement Looper call it from IO.
func WithLoopback(io topology.IO, name string) topology.IO {
	loop := LoopTopic(name)
	s := topology.Stream{Topic: loop, Kind: "state"}
	io.Consumes = append(io.Consumes, s)
	io.Produces = append(io.Produces, s)
	if len(io.CoPartitioned) > 0 {
		io.CoPartitioned[0] = append(io.CoPartitioned[0], loop)
	} else {
		io.CoPartitioned = [][]string{{loop}}
	}
	return io
}

// LoopTopic is the loopback topic of the dispatcher called name, without
// the cluster prefix.
func LoopTopic(name string) string { return name + "-loop" }

// Router decides where messages go (Vumi's BaseDispatchRouter). Each call
// gets the connector the message arrived on.
type Router interface {
	DispatchInboundMessage(c *Context, m *schemas.UserMessage, transport string) error
	DispatchInboundEvent(c *Context, e *schemas.Event, transport string) error
	DispatchOutboundMessage(c *Context, m *schemas.UserMessage, exposed string) error
}

// Setupper is implemented by routers with setup work (Vumi's
// setup_routing); Teardowner by routers with teardown work.
type Setupper interface {
	Setup(ctx context.Context, d *Dispatcher) error
}

// Teardowner releases what Setup acquired.
type Teardowner interface {
	Teardown() error
}

// Looper is implemented by routers that send records to another key of
// their own group table (goka's loopback topic): state for a key can only
// be written while a record of that key is processed, so a router that
// learns something about key B while handling key A (an outbound message
// keyed by to_addr whose message_id will key its events) loops a record
// to B with Context.Loopback and stores it in DispatchLoopback. The
// config of such a router must add the loop topic with WithLoopback.
type Looper interface {
	DispatchLoopback(c *Context, payload []byte) error
}

// Sweeper is implemented by routers whose table entries expire. Every
// SweepInterval the dispatcher visits each key of the partitions it owns
// (goka's Visitor) and calls Sweep with the key's entry in c.State; Sweep
// deletes or rewrites what has expired. Visits run in the partition's own
// goroutine, between records, so they never race the record callbacks.
type Sweeper interface {
	SweepInterval() time.Duration
	Sweep(c *Context, now time.Time) error
}

// VisitSweep is the name of the goka visitor that runs Sweeper.Sweep.
const VisitSweep = "sweep"

// Context is handed to a router's calls: publish in either direction, the
// group table entry of the record's key, logging.
type Context struct {
	d *Dispatcher
	g goka.Context
}

// Context returns the call's context.
func (c *Context) Context() context.Context { return c.g.Context() }

// Log returns the worker's logger.
func (c *Context) Log() *slog.Logger { return c.d.Log }

// Key is the record key.
func (c *Context) Key() string { return c.g.Key() }

// State returns the group table entry of the record's key, nil if none.
func (c *Context) State() []byte {
	v := c.g.Value()
	if v == nil {
		return nil
	}
	return v.([]byte)
}

// SetState stores the entry of the record's key; nil deletes it.
func (c *Context) SetState(b []byte) {
	if b == nil {
		c.g.Delete()
		return
	}
	c.g.SetValue(b)
}

// Loopback sends payload to key on the dispatcher's loopback topic; the
// router's DispatchLoopback gets it with key as the record key. Only for
// routers that implement Looper.
func (c *Context) Loopback(key string, payload []byte) {
	c.g.Loopback(key, payload)
}

// Fail publishes a failure about m (a *schemas.UserMessage or
// *schemas.Event, or nil) to <connector>.failures, as the base does for a
// router's error; routers use it for messages they give up on outside
// the call that brought them (e.g. an event parked until it expired).
func (c *Context) Fail(connector string, m interface{ MarshalJSON() ([]byte, error) }, msgType string, cause error) {
	c.d.FailInProcessor(c.g, connector, m, msgType, nil, cause)
}

// PublishInbound sends a user message to an exposed name's application.
func (c *Context) PublishInbound(exposed string, m *schemas.UserMessage) error {
	if !c.d.cfg.HasExposed(exposed) {
		return worker.Permanent(fmt.Errorf("no exposed name %q (exposed_names: %v)", exposed, c.d.cfg.ExposedNames))
	}
	out, err := c.d.Stack.Inbound(c.Context(), m, c.d.mw(middleware.Publish, exposed))
	if err != nil || out == nil {
		return err
	}
	c.g.Emit(goka.Stream(c.d.Deps.Names.Inbound(exposed)), string(topology.InboundKey(out)), out)
	c.d.Count("inbound", 1)
	return nil
}

// PublishEvent sends an event to an exposed name's application.
func (c *Context) PublishEvent(exposed string, e *schemas.Event) error {
	if !c.d.cfg.HasExposed(exposed) {
		return worker.Permanent(fmt.Errorf("no exposed name %q (exposed_names: %v)", exposed, c.d.cfg.ExposedNames))
	}
	out, err := c.d.Stack.Event(c.Context(), e, c.d.mw(middleware.Publish, exposed))
	if err != nil || out == nil {
		return err
	}
	c.g.Emit(goka.Stream(c.d.Deps.Names.Event(exposed)), string(topology.EventKey(out)), out)
	c.d.Count("event", 1)
	return nil
}

// PublishOutbound sends a user message to a transport.
func (c *Context) PublishOutbound(transport string, m *schemas.UserMessage) error {
	if !c.d.cfg.HasTransport(transport) {
		return worker.Permanent(fmt.Errorf("no transport name %q (transport_names: %v)", transport, c.d.cfg.TransportNames))
	}
	out, err := c.d.Stack.Outbound(c.Context(), m, c.d.mw(middleware.Publish, transport))
	if err != nil || out == nil {
		return err
	}
	c.g.Emit(goka.Stream(c.d.Deps.Names.Outbound(transport)), string(topology.OutboundKey(out)), out)
	c.d.Count("outbound", 1)
	return nil
}

// Dispatcher is a running dispatcher worker.
type Dispatcher struct {
	*worker.Base
	cfg    *Config
	router Router
	// connector of each input topic
	inbound, events, outbound map[string]string
	proc                      atomic.Pointer[goka.Processor]
}

// Worker returns a topology.Worker that runs a fresh Dispatcher around the
// router made by newRouter each time it is (re)started.
func Worker(deps *topology.Deps, spec *topology.WorkerSpec, cfg *Config, newRouter func() (Router, error)) topology.Worker {
	return topology.WorkerFunc(func(ctx context.Context) error {
		r, err := newRouter()
		if err != nil {
			return err
		}
		d, err := New(deps, spec, cfg, r)
		if err != nil {
			return err
		}
		return d.Run(ctx)
	})
}

// New builds a dispatcher around router.
func New(deps *topology.Deps, spec *topology.WorkerSpec, cfg *Config, router Router) (*Dispatcher, error) {
	b, err := worker.NewBase(deps, spec, cfg.Common)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{Base: b, cfg: cfg, router: router,
		inbound: map[string]string{}, events: map[string]string{}, outbound: map[string]string{}}
	n := deps.Names
	for _, t := range cfg.TransportNames {
		d.inbound[n.Inbound(t)] = t
		d.events[n.Event(t)] = t
	}
	for _, e := range cfg.ExposedNames {
		d.outbound[n.Outbound(e)] = e
	}
	return d, nil
}

// Config returns the dispatcher's base config.
func (d *Dispatcher) Config() *Config { return d.cfg }

func (d *Dispatcher) mw(p middleware.Phase, connector string) middleware.Context {
	return middleware.Context{Phase: p, Connector: connector, Worker: d.Name}
}

// Graph is the goka group graph of the dispatcher.
func (d *Dispatcher) Graph() *goka.GroupGraph {
	c := d.Deps.Codecs
	um := schemas.GokaCodec[schemas.UserMessage]{C: c.UserMessage}
	ev := schemas.GokaCodec[schemas.Event]{C: c.Event}
	fc := schemas.GokaCodec[schemas.Failure]{C: c.Failure}
	var edges []goka.Edge
	for topic := range d.inbound {
		edges = append(edges, goka.Input(goka.Stream(topic), new(gokacodec.Bytes), d.onInbound))
	}
	for topic := range d.events {
		edges = append(edges, goka.Input(goka.Stream(topic), new(gokacodec.Bytes), d.onEvent))
	}
	for topic := range d.outbound {
		edges = append(edges, goka.Input(goka.Stream(topic), new(gokacodec.Bytes), d.onOutbound))
	}
	n := d.Deps.Names
	for _, t := range d.cfg.TransportNames {
		edges = append(edges, goka.Output(goka.Stream(n.Outbound(t)), um), goka.Output(goka.Stream(n.Failures(t)), fc))
	}
	for _, e := range d.cfg.ExposedNames {
		edges = append(edges, goka.Output(goka.Stream(n.Inbound(e)), um), goka.Output(goka.Stream(n.Event(e)), ev),
			goka.Output(goka.Stream(n.Failures(e)), fc))
	}
	if _, ok := d.router.(Looper); ok {
		edges = append(edges, goka.Loop(new(gokacodec.Bytes), d.onLoopback))
	}
	if _, ok := d.router.(Sweeper); ok {
		edges = append(edges, goka.Visitor(VisitSweep, d.onSweep))
	}
	edges = append(edges, goka.Persist(new(gokacodec.Bytes)))
	return goka.DefineGroup(goka.Group(n.Prefix+d.Name), edges...)
}

// Run runs the processor until ctx is cancelled, then releases everything.
func (d *Dispatcher) Run(ctx context.Context) error { return d.RunWith(ctx) }

// RunWith is Run with extra goka processor options applied last (goka's
// tester in unit tests: goka.WithTester).
func (d *Dispatcher) RunWith(ctx context.Context, opts ...goka.ProcessorOption) error {
	defer d.Close()
	if s, ok := d.router.(Setupper); ok {
		if err := s.Setup(ctx, d); err != nil {
			return fmt.Errorf("dispatcher %s: router setup: %w", d.Name, err)
		}
	}
	if t, ok := d.router.(Teardowner); ok {
		defer func() {
			if err := t.Teardown(); err != nil {
				d.Log.Warn("router teardown failed", "error", err)
			}
		}()
	}
	p, err := d.NewProcessor(d.Graph(), opts...)
	if err != nil {
		return err
	}
	d.proc.Store(p)
	defer d.proc.Store(nil)
	// The background goroutines end before the deferred Close runs.
	hbCtx, stop := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer bg.Wait()
	defer stop()
	bg.Go(func() { d.RunHeartbeat(hbCtx) })
	if s, ok := d.router.(Sweeper); ok && s.SweepInterval() > 0 {
		bg.Go(func() { d.sweepEvery(hbCtx, p, s.SweepInterval()) })
	}
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("dispatcher %s: %w", d.Name, err)
	}
	return nil
}

// WaitForReady blocks until the processor runs and has recovered its
// tables, or ctx is done.
func (d *Dispatcher) WaitForReady(ctx context.Context) error {
	for {
		if p := d.proc.Load(); p != nil {
			return p.WaitForReadyContext(ctx)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ErrNotRunning is returned by Sweep when the processor is not running.
var ErrNotRunning = errors.New("dispatcher: processor not running")

// Sweep visits every key of the partitions this instance owns with the
// router's Sweep at now, and returns the number of keys visited once all
// visits are done. Run calls it every SweepInterval.
func (d *Dispatcher) Sweep(ctx context.Context, now time.Time) (int64, error) {
	p := d.proc.Load()
	if p == nil {
		return 0, ErrNotRunning
	}
	if _, ok := d.router.(Sweeper); !ok {
		return 0, nil
	}
	return worker.VisitAll(ctx, p, VisitSweep, now)
}

func (d *Dispatcher) sweepEvery(ctx context.Context, p *goka.Processor, every time.Duration) {
	if err := p.WaitForReadyContext(ctx); err != nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n, err := d.Sweep(ctx, now)
			if errors.Is(err, goka.ErrVisitAborted) {
				continue // a rebalance: the next tick sweeps the new assignment
			}
			if err != nil && ctx.Err() == nil {
				d.Log.Warn("table sweep failed", "error", err)
				continue
			}
			d.Log.Debug("table swept", "keys", n)
		}
	}
}

// failConnector is where failures about loopback records and sweeps go:
// the first transport name's failures topic.
func (d *Dispatcher) failConnector() string { return d.cfg.TransportNames[0] }

func (d *Dispatcher) onLoopback(g goka.Context, v any) {
	raw, _ := v.([]byte)
	l := d.router.(Looper)
	if err := worker.Safely(func() error { return l.DispatchLoopback(&Context{d: d, g: g}, raw) }); err != nil {
		d.FailInProcessor(g, d.failConnector(), nil, "loopback", raw, err)
	}
}

func (d *Dispatcher) onSweep(g goka.Context, meta any) {
	now, ok := meta.(time.Time)
	if !ok {
		now = time.Now()
	}
	s := d.router.(Sweeper)
	if err := worker.Safely(func() error { return s.Sweep(&Context{d: d, g: g}, now) }); err != nil {
		d.Log.Warn("sweep of a table entry failed", "key", g.Key(), "error", err)
	}
}

// timed reports a routing call's time as a metric.
func (d *Dispatcher) timed(name string, start time.Time) { d.Metrics.Observe(name, time.Since(start)) }

func (d *Dispatcher) onInbound(g goka.Context, v any) {
	defer d.timed("inbound.route_time", time.Now())
	connector := d.inbound[string(g.Topic())]
	raw, _ := v.([]byte)
	var m schemas.UserMessage
	if !worker.DecodeInProcessor(d.Base, g, d.Deps.Codecs.UserMessage, raw, &m, connector, schemas.TypeUserMessage) {
		return
	}
	in, err := d.Stack.Inbound(g.Context(), &m, d.mw(middleware.Consume, connector))
	if err == nil && in != nil {
		err = worker.Safely(func() error { return d.router.DispatchInboundMessage(&Context{d: d, g: g}, in, connector) })
	}
	if err != nil {
		d.FailInProcessor(g, connector, &m, schemas.TypeUserMessage, raw, err)
	}
}

func (d *Dispatcher) onEvent(g goka.Context, v any) {
	defer d.timed("event.route_time", time.Now())
	connector := d.events[string(g.Topic())]
	raw, _ := v.([]byte)
	var e schemas.Event
	if !worker.DecodeInProcessor(d.Base, g, d.Deps.Codecs.Event, raw, &e, connector, schemas.TypeEvent) {
		return
	}
	in, err := d.Stack.Event(g.Context(), &e, d.mw(middleware.Consume, connector))
	if err == nil && in != nil {
		err = worker.Safely(func() error { return d.router.DispatchInboundEvent(&Context{d: d, g: g}, in, connector) })
	}
	if err != nil {
		d.FailInProcessor(g, connector, &e, schemas.TypeEvent, raw, err)
	}
}

func (d *Dispatcher) onOutbound(g goka.Context, v any) {
	defer d.timed("outbound.route_time", time.Now())
	connector := d.outbound[string(g.Topic())]
	raw, _ := v.([]byte)
	var m schemas.UserMessage
	if !worker.DecodeInProcessor(d.Base, g, d.Deps.Codecs.UserMessage, raw, &m, connector, schemas.TypeUserMessage) {
		return
	}
	in, err := d.Stack.Outbound(g.Context(), &m, d.mw(middleware.Consume, connector))
	if err == nil && in != nil {
		err = worker.Safely(func() error { return d.router.DispatchOutboundMessage(&Context{d: d, g: g}, in, connector) })
	}
	if err != nil {
		d.FailInProcessor(g, connector, &m, schemas.TypeUserMessage, raw, err)
	}
}
