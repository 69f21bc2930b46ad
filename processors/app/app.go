// Package app is the base of every application: a goka processor that
// consumes <transport_name>.inbound and <transport_name>.event, dispatches
// them to a small Go interface with Vumi's semantics (new_session,
// close_session, consume_user_message, consume_ack / _nack /
// _delivery_report), and emits replies and sends on
// <transport_name>.outbound. Per-user state lives in the group table.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the part of every application's config the base reads (Vumi's
// ApplicationConfig). Embed it with `yaml:",inline"`.
type Config struct {
	// TransportName is the connector the application reads and writes:
	// <transport_name>.inbound, .event and .outbound. Required.
	TransportName string `yaml:"transport_name"`
	// SendTo gives, per endpoint, extra fields for messages sent with
	// SendTo (Vumi's send_to), e.g. {default: {transport_name: sms}}.
	SendTo map[string]map[string]string `yaml:"send_to"`
	// AmqpPrefetchCount is accepted for Vumi compatibility; a goka
	// processor handles one message per partition at a time, so
	// parallelism comes from partitions.
	AmqpPrefetchCount int `yaml:"amqp_prefetch_count"`
	// Scheduler names the message_scheduler worker that Context.Schedule
	// publishes to (its <scheduler>.schedule topic); none by default.
	Scheduler     string `yaml:"scheduler"`
	worker.Common `yaml:",inline"`
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

var sendToFields = map[string]bool{"transport_name": true, "transport_type": true, "from_addr": true, "provider": true, "group": true, "to_addr_type": true, "from_addr_type": true}

// ValidateBase checks the base keys and fills defaults.
func (c *Config) ValidateBase() error {
	if c.TransportName == "" {
		return errors.New("key transport_name: is required")
	}
	if !nameRe.MatchString(c.TransportName) {
		return fmt.Errorf("key transport_name: %q may only contain letters, digits, '_' and '-'", c.TransportName)
	}
	if c.Scheduler != "" && !nameRe.MatchString(c.Scheduler) {
		return fmt.Errorf("key scheduler: %q is not a worker name", c.Scheduler)
	}
	for ep, fields := range c.SendTo {
		for k := range fields {
			if !sendToFields[k] {
				return fmt.Errorf("key send_to.%s.%s: not a message field that send_to may set (want one of %s)", ep, k, strings.Join(sortedSet(sendToFields), ", "))
			}
		}
	}
	c.Common.Defaults()
	return nil
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// IO is the topics of an application worker called name.
func (c *Config) IO(name string) topology.IO {
	n := c.TransportName
	table := string(goka.GroupTable(goka.Group(name)))
	io := topology.IO{
		Consumes: []topology.Stream{
			{Topic: n + topology.SuffixInbound, Kind: "user_message"},
			{Topic: n + topology.SuffixEvent, Kind: "event"},
			{Topic: table, Kind: "state", Compacted: true},
		},
		Produces: []topology.Stream{
			{Topic: n + topology.SuffixOutbound, Kind: "user_message"},
			{Topic: n + topology.SuffixFailures, Kind: "failure"},
			{Topic: table, Kind: "state", Compacted: true},
		},
		CoPartitioned: [][]string{{n + topology.SuffixInbound, n + topology.SuffixEvent, table}},
	}
	if c.Scheduler != "" {
		io.Produces = append(io.Produces, topology.Stream{Topic: c.Scheduler + scheduleSuffix, Kind: "user_message", Compacted: true})
	}
	return io
}

// scheduleSuffix names a message_scheduler's request topic.
const scheduleSuffix = ".schedule"

// Application is what an application implements: handle a user message.
type Application interface {
	ConsumeUserMessage(c *Context, m *schemas.UserMessage) error
}

// SessionHandler is implemented by applications that treat session starts
// and ends specially. Without it, a new session goes to
// ConsumeUserMessage and a close is ignored, as in Vumi.
type SessionHandler interface {
	NewSession(c *Context, m *schemas.UserMessage) error
	CloseSession(c *Context, m *schemas.UserMessage) error
}

// EventHandler is implemented by applications that want acks, nacks and
// delivery reports.
type EventHandler interface {
	ConsumeAck(c *Context, e *schemas.Event) error
	ConsumeNack(c *Context, e *schemas.Event) error
	ConsumeDeliveryReport(c *Context, e *schemas.Event) error
}

// Context is handed to an application's handlers: reply, send, per-user
// state, logging. It is valid only during the call.
type Context struct {
	app  *App
	g    goka.Context
	ctx  context.Context
	sent int
}

// Context returns the call's context.
func (c *Context) Context() context.Context { return c.ctx }

// Log returns the worker's logger.
func (c *Context) Log() *slog.Logger { return c.app.Log }

// Key is the record key: the end user's address for user messages, the
// user_message_id for events.
func (c *Context) Key() string { return c.g.Key() }

// State returns the stored state of the current key, nil when none.
func (c *Context) State() []byte {
	v := c.g.Value()
	if v == nil {
		return nil
	}
	return v.([]byte)
}

// SetState stores state for the current key (the group table replaces
// Vumi's Redis); nil deletes it.
func (c *Context) SetState(b []byte) {
	if b == nil {
		c.g.Delete()
		return
	}
	c.g.SetValue(b)
}

// LoadState decodes the current key's JSON state into v; false when none.
func (c *Context) LoadState(v any) (bool, error) {
	b := c.State()
	if b == nil {
		return false, nil
	}
	return true, json.Unmarshal(b, v)
}

// SaveState stores v as the current key's JSON state.
func (c *Context) SaveState(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.SetState(b)
	return nil
}

// ReplyTo replies to m (Vumi's reply_to): addresses swapped, same
// endpoint; continueSession false closes the session.
func (c *Context) ReplyTo(m *schemas.UserMessage, content string, continueSession bool) error {
	return c.publish(m.Reply(content, continueSession))
}

// ReplyToGroup replies to m's group (Vumi's reply_to_group).
func (c *Context) ReplyToGroup(m *schemas.UserMessage, content string, continueSession bool) error {
	return c.publish(m.ReplyGroup(content, continueSession))
}

// SendTo sends a new message (Vumi's send_to) on an endpoint ("" is
// default), with the endpoint's send_to fields from the config. The
// endpoint must be one the application allows.
func (c *Context) SendTo(toAddr, content, endpoint string) error {
	if endpoint == "" {
		endpoint = schemas.DefaultEndpoint
	}
	if err := c.app.checkEndpoint(endpoint); err != nil {
		return err
	}
	m := schemas.NewUserMessage()
	m.ToAddr = schemas.String(toAddr)
	m.Content = schemas.String(content)
	for k, v := range c.app.cfg.SendTo[endpoint] {
		if err := m.SetString(k, v); err != nil {
			return fmt.Errorf("send_to.%s: %w", endpoint, err)
		}
	}
	m.SetEndpoint(endpoint)
	return c.publish(m)
}

// Schedule publishes a schedule request (built with scheduler.Request:
// the message with its send time, and for a grouped message its
// addresses) to the configured scheduler, keyed by its message_id.
func (c *Context) Schedule(m *schemas.UserMessage) error {
	if c.app.cfg.Scheduler == "" {
		return errors.New("schedule: no scheduler configured (key scheduler)")
	}
	c.g.Emit(goka.Stream(c.app.Deps.Names.Prefix+c.app.cfg.Scheduler+scheduleSuffix), m.MessageID, m)
	c.app.Count("scheduled", 1)
	return nil
}

// publish runs the publish middleware and emits m on the outbound topic.
func (c *Context) publish(m *schemas.UserMessage) error {
	out, err := c.app.Stack.Outbound(c.ctx, m, c.app.mw(middleware.Publish))
	if err != nil || out == nil {
		return err
	}
	c.g.Emit(goka.Stream(c.app.outbound), string(topology.OutboundKey(out)), out)
	c.sent++
	c.app.Count("outbound", 1)
	return nil
}

// Options configure an App.
type Options struct {
	// AllowedEndpoints for SendTo (Vumi's ALLOWED_ENDPOINTS); nil allows
	// only "default"; a list containing "*" allows any.
	AllowedEndpoints []string
}

// App is a running application worker.
type App struct {
	*worker.Base
	cfg      *Config
	impl     Application
	opts     Options
	inbound  string
	event    string
	outbound string
	failures string
}

// New builds an application worker around impl.
func New(deps *topology.Deps, spec *topology.WorkerSpec, cfg *Config, impl Application, opts Options) (*App, error) {
	b, err := worker.NewBase(deps, spec, cfg.Common)
	if err != nil {
		return nil, err
	}
	n := deps.Names
	return &App{Base: b, cfg: cfg, impl: impl, opts: opts,
		inbound: n.Inbound(cfg.TransportName), event: n.Event(cfg.TransportName),
		outbound: n.Outbound(cfg.TransportName), failures: n.Failures(cfg.TransportName)}, nil
}

func (a *App) mw(p middleware.Phase) middleware.Context {
	return middleware.Context{Phase: p, Connector: a.cfg.TransportName, Worker: a.Name}
}

func (a *App) checkEndpoint(ep string) error {
	allowed := a.opts.AllowedEndpoints
	if allowed == nil {
		allowed = []string{schemas.DefaultEndpoint}
	}
	for _, e := range allowed {
		if e == "*" || e == ep {
			return nil
		}
	}
	return fmt.Errorf("endpoint %q not defined in list of allowed endpoints %v", ep, allowed)
}

// Graph is the goka group graph of the application.
func (a *App) Graph() *goka.GroupGraph {
	codecs := a.Deps.Codecs
	edges := []goka.Edge{
		goka.Input(goka.Stream(a.inbound), new(gokacodec.Bytes), a.onInbound),
		goka.Input(goka.Stream(a.event), new(gokacodec.Bytes), a.onEvent),
		goka.Output(goka.Stream(a.outbound), schemas.GokaCodec[schemas.UserMessage]{C: codecs.UserMessage}),
		goka.Output(goka.Stream(a.failures), schemas.GokaCodec[schemas.Failure]{C: codecs.Failure}),
		goka.Persist(new(gokacodec.Bytes)),
	}
	if a.cfg.Scheduler != "" {
		edges = append(edges, goka.Output(goka.Stream(a.Deps.Names.Prefix+a.cfg.Scheduler+scheduleSuffix), schemas.GokaCodec[schemas.UserMessage]{C: codecs.UserMessage}))
	}
	return goka.DefineGroup(goka.Group(a.Deps.Names.Prefix+a.Name), edges...)
}

// Worker returns a topology.Worker that runs a fresh App around impl each
// time it is (re)started.
func Worker(deps *topology.Deps, spec *topology.WorkerSpec, cfg *Config, impl Application, opts Options) topology.Worker {
	return topology.WorkerFunc(func(ctx context.Context) error {
		a, err := New(deps, spec, cfg, impl, opts)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	})
}

// Run runs the processor until ctx is cancelled, then releases the App.
func (a *App) Run(ctx context.Context) error {
	defer a.Close()
	p, err := a.NewProcessor(a.Graph())
	if err != nil {
		return err
	}
	hbCtx, stop := context.WithCancel(ctx)
	defer stop()
	go a.RunHeartbeat(hbCtx)
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("application %s: %w", a.Name, err)
	}
	return nil
}

// timed reports a handler's time as a metric (Vumi's Timer).
func (a *App) timed(name string, start time.Time) { a.Metrics.Observe(name, time.Since(start)) }

func (a *App) onInbound(g goka.Context, v any) {
	defer a.timed("inbound.handle_time", time.Now())
	raw, _ := v.([]byte)
	var m schemas.UserMessage
	if !worker.DecodeInProcessor(a.Base, g, a.Deps.Codecs.UserMessage, raw, &m, a.cfg.TransportName, schemas.TypeUserMessage) {
		return
	}
	a.Count("inbound", 1)
	in, err := a.Stack.Inbound(g.Context(), &m, a.mw(middleware.Consume))
	if err != nil {
		a.FailInProcessor(g, a.cfg.TransportName, &m, schemas.TypeUserMessage, raw, err)
		return
	}
	if in == nil {
		return
	}
	c := &Context{app: a, g: g, ctx: g.Context()}
	err = worker.Safely(func() error {
		sh, hasSessions := a.impl.(SessionHandler)
		switch in.Session() {
		case schemas.SessionNew:
			if hasSessions {
				return sh.NewSession(c, in)
			}
		case schemas.SessionClose:
			if hasSessions {
				return sh.CloseSession(c, in)
			}
			return nil
		}
		return a.impl.ConsumeUserMessage(c, in)
	})
	if err != nil {
		a.FailInProcessor(g, a.cfg.TransportName, in, schemas.TypeUserMessage, raw, err)
	}
}

func (a *App) onEvent(g goka.Context, v any) {
	defer a.timed("event.handle_time", time.Now())
	raw, _ := v.([]byte)
	var e schemas.Event
	if !worker.DecodeInProcessor(a.Base, g, a.Deps.Codecs.Event, raw, &e, a.cfg.TransportName, schemas.TypeEvent) {
		return
	}
	a.Count("event."+e.Status(), 1)
	in, err := a.Stack.Event(g.Context(), &e, a.mw(middleware.Consume))
	if err != nil {
		a.FailInProcessor(g, a.cfg.TransportName, &e, schemas.TypeEvent, raw, err)
		return
	}
	eh, ok := a.impl.(EventHandler)
	if in == nil || !ok {
		return
	}
	c := &Context{app: a, g: g, ctx: g.Context()}
	err = worker.Safely(func() error {
		switch in.EventType {
		case schemas.EventAck:
			return eh.ConsumeAck(c, in)
		case schemas.EventNack:
			return eh.ConsumeNack(c, in)
		case schemas.EventDeliveryReport:
			return eh.ConsumeDeliveryReport(c, in)
		}
		return nil
	})
	if err != nil {
		a.FailInProcessor(g, a.cfg.TransportName, in, schemas.TypeEvent, raw, err)
	}
}
