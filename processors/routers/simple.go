package routers

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/dispatcher"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

var permanent = worker.Permanent

// SimpleConfig configures Vumi's SimpleDispatchRouter.
type SimpleConfig struct {
	dispatcher.Config `yaml:",inline"`
	// RouteMappings maps a transport name to the exposed name(s) its
	// inbound messages and events go to, a copy each. Required.
	RouteMappings map[string]NameList `yaml:"route_mappings"`
	// TransportMappings re-maps an outbound message's transport_name to
	// the transport name it is sent to. Optional.
	TransportMappings map[string]string `yaml:"transport_mappings"`
}

func (c *SimpleConfig) base() *dispatcher.Config { return &c.Config }

// Validate implements topology.WorkerConfig.
func (c *SimpleConfig) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if err := validateRouteMappings(&c.Config, c.RouteMappings, true, true); err != nil {
		return err
	}
	return validateTransportMappings(&c.Config, c.TransportMappings)
}

func validateRouteMappings(c *dispatcher.Config, rm map[string]NameList, required, toExposed bool) error {
	if required && len(rm) == 0 {
		return errors.New("key route_mappings: is required (transport name -> exposed name or list of names)")
	}
	for _, t := range sortedKeys(rm) {
		if err := checkTransport(c, "route_mappings", t); err != nil {
			return err
		}
		if len(rm[t]) == 0 {
			return fmt.Errorf("key route_mappings.%s: needs at least one name", t)
		}
		for _, n := range rm[t] {
			check := checkExposed
			if !toExposed {
				check = checkTransport
			}
			if err := check(c, "route_mappings."+t, n); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateTransportMappings(c *dispatcher.Config, tm map[string]string) error {
	for _, k := range sortedKeys(tm) {
		if err := checkTransport(c, "transport_mappings."+k, tm[k]); err != nil {
			return err
		}
	}
	return nil
}

// SimpleKind is Vumi's SimpleDispatchRouter: inbound messages and events
// go from a transport to the exposed names of route_mappings (a copy
// each); outbound messages go to the transport named by their
// transport_name, re-mapped by transport_mappings.
func SimpleKind() *topology.Kind {
	return routerKind("simple_dispatch_router", vumiClasses("SimpleDispatchRouter"),
		"route_mappings: transport -> exposed names; outbound by transport_name and transport_mappings",
		func() *SimpleConfig { return &SimpleConfig{} },
		newSimple)
}

func newSimple(c *SimpleConfig) (dispatcher.Router, error) { return &simple{cfg: c}, nil }

type simple struct{ cfg *SimpleConfig }

func (r *simple) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, transport string) error {
	name := transportNameOf(m, transport)
	names, ok := r.cfg.RouteMappings[name]
	if !ok {
		return noRoute("unknown transport_name %q (route_mappings has %v)", name, sortedKeys(r.cfg.RouteMappings))
	}
	for _, n := range names {
		if err := c.PublishInbound(n, cloneMessage(m)); err != nil {
			return err
		}
	}
	return nil
}

func (r *simple) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, transport string) error {
	name := transport
	if e.TransportName != nil {
		name = *e.TransportName
	}
	names, ok := r.cfg.RouteMappings[name]
	if !ok {
		return noRoute("unknown transport_name %q (route_mappings has %v)", name, sortedKeys(r.cfg.RouteMappings))
	}
	for _, n := range names {
		if err := c.PublishEvent(n, cloneEvent(e)); err != nil {
			return err
		}
	}
	return nil
}

func (r *simple) DispatchOutboundMessage(c *dispatcher.Context, m *schemas.UserMessage, _ string) error {
	return outboundByTransportName(c, &r.cfg.Config, r.cfg.TransportMappings, m)
}

// outboundByTransportName is SimpleDispatchRouter's outbound routing: to
// the transport named by transport_name, re-mapped by transport_mappings.
func outboundByTransportName(c *dispatcher.Context, cfg *dispatcher.Config, mappings map[string]string, m *schemas.UserMessage) error {
	name := m.Transport()
	if to, ok := mappings[name]; ok {
		name = to
	}
	if !cfg.HasTransport(name) {
		return noRoute("unknown transport_name %q (transport_names: %v)", name, cfg.TransportNames)
	}
	return c.PublishOutbound(name, m)
}

// TransportToTransportConfig configures Vumi's TransportToTransportRouter.
type TransportToTransportConfig struct {
	dispatcher.Config `yaml:",inline"`
	// RouteMappings maps a transport name to the transport name(s) its
	// inbound messages are sent to as outbound messages. Required.
	RouteMappings map[string]NameList `yaml:"route_mappings"`
}

func (c *TransportToTransportConfig) base() *dispatcher.Config { return &c.Config }

// Validate implements topology.WorkerConfig.
func (c *TransportToTransportConfig) Validate() error {
	if err := c.ValidateBaseNoExposed(); err != nil {
		return err
	}
	return validateRouteMappings(&c.Config, c.RouteMappings, true, false)
}

// TransportToTransportKind is Vumi's TransportToTransportRouter: inbound
// messages of a transport become outbound messages of the transports of
// route_mappings; events are discarded, as transports cannot take them.
func TransportToTransportKind() *topology.Kind {
	return routerKind("transport_to_transport_router", vumiClasses("TransportToTransportRouter"),
		"route_mappings: transport -> transports; inbound becomes outbound, events discarded",
		func() *TransportToTransportConfig { return &TransportToTransportConfig{} },
		newTransportToTransport)
}

func newTransportToTransport(c *TransportToTransportConfig) (dispatcher.Router, error) {
	return &transportToTransport{cfg: c}, nil
}

type transportToTransport struct{ cfg *TransportToTransportConfig }

func (r *transportToTransport) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, transport string) error {
	name := transportNameOf(m, transport)
	names, ok := r.cfg.RouteMappings[name]
	if !ok {
		return noRoute("unknown transport_name %q (route_mappings has %v)", name, sortedKeys(r.cfg.RouteMappings))
	}
	for _, n := range names {
		if err := c.PublishOutbound(n, cloneMessage(m)); err != nil {
			return err
		}
	}
	return nil
}

// DispatchInboundEvent discards the event, as Vumi does: transports
// cannot receive events.
func (r *transportToTransport) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, _ string) error {
	c.Log().Debug("event discarded: transports cannot receive events", "event_id", e.EventID, "user_message_id", e.UserMessageID)
	return nil
}

// DispatchOutboundMessage is never called with no exposed names; with
// some, their outbound messages have nowhere to go.
func (r *transportToTransport) DispatchOutboundMessage(_ *dispatcher.Context, m *schemas.UserMessage, exposed string) error {
	return noRoute("a transport-to-transport router sends no outbound messages from %q (message %s)", exposed, m.MessageID)
}

// ToAddrConfig configures Vumi's ToAddrRouter.
type ToAddrConfig struct {
	dispatcher.Config `yaml:",inline"`
	// ToaddrMappings maps an exposed name to a regular expression: an
	// inbound message whose to_addr matches it (from the start, as
	// Python's re.match) goes to that exposed name. Required.
	ToaddrMappings map[string]string `yaml:"toaddr_mappings"`
	// TransportMappings re-maps an outbound message's transport_name.
	TransportMappings map[string]string `yaml:"transport_mappings"`
	MemoryConfig      `yaml:",inline"`
}

func (c *ToAddrConfig) base() *dispatcher.Config { return &c.Config }

// IO implements topology.WorkerConfig: the base's topics and the loop.
func (c *ToAddrConfig) IO(name string) topology.IO {
	return dispatcher.WithLoopback(c.Config.IO(name), name)
}

// Validate implements topology.WorkerConfig.
func (c *ToAddrConfig) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if len(c.ToaddrMappings) == 0 {
		return errors.New("key toaddr_mappings: is required (exposed name -> to_addr regular expression)")
	}
	if _, err := compileToAddr(c.ToaddrMappings); err != nil {
		return err
	}
	for _, n := range sortedKeys(c.ToaddrMappings) {
		if err := checkExposed(&c.Config, "toaddr_mappings", n); err != nil {
			return err
		}
	}
	if err := validateTransportMappings(&c.Config, c.TransportMappings); err != nil {
		return err
	}
	return c.MemoryConfig.validate()
}

type toAddrPattern struct {
	exposed string
	re      *regexp.Regexp
}

func compileToAddr(m map[string]string) ([]toAddrPattern, error) {
	var out []toAddrPattern
	for _, n := range sortedKeys(m) {
		re, err := regexp.Compile(`^(?:` + m[n] + `)`)
		if err != nil {
			return nil, fmt.Errorf("key toaddr_mappings.%s: %w", n, err)
		}
		out = append(out, toAddrPattern{n, re})
	}
	return out, nil
}

// ToAddrKind is Vumi's ToAddrRouter: inbound messages go to every exposed
// name whose toaddr_mappings pattern matches their to_addr; outbound as
// SimpleDispatchRouter. Where Vumi drops events (a TODO in its source),
// this router sends each event to the exposed name that sent its message,
// from its routing memory.
func ToAddrKind() *topology.Kind {
	return routerKind("to_addr_router", vumiClasses("ToAddrRouter"),
		"toaddr_mappings: exposed name -> to_addr regex; events go home by routing memory",
		func() *ToAddrConfig { return &ToAddrConfig{} },
		newToAddr)
}

func newToAddr(c *ToAddrConfig) (dispatcher.Router, error) {
	p, err := compileToAddr(c.ToaddrMappings)
	if err != nil {
		return nil, err
	}
	return &toAddr{cfg: c, patterns: p, memory: newMemory(c.MemoryConfig)}, nil
}

type toAddr struct {
	cfg      *ToAddrConfig
	patterns []toAddrPattern
	*memory
}

func (r *toAddr) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, _ string) error {
	matched := false
	for _, p := range r.patterns {
		if p.re.MatchString(m.To()) {
			matched = true
			if err := c.PublishInbound(p.exposed, cloneMessage(m)); err != nil {
				return err
			}
		}
	}
	if !matched {
		return noRoute("to_addr %q matches no toaddr_mappings pattern", m.To())
	}
	return nil
}

func (r *toAddr) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, transport string) error {
	return r.routeEvent(c, e, transport)
}

func (r *toAddr) DispatchOutboundMessage(c *dispatcher.Context, m *schemas.UserMessage, exposed string) error {
	if err := outboundByTransportName(c, &r.cfg.Config, r.cfg.TransportMappings, m); err != nil {
		return err
	}
	return r.remember(c, m.MessageID, exposed)
}

// RedirectConfig configures Vumi's RedirectRouter.
type RedirectConfig struct {
	dispatcher.Config `yaml:",inline"`
	// RedirectOutbound maps an outbound message's transport_name to the
	// transport name it is sent to.
	RedirectOutbound map[string]string `yaml:"redirect_outbound"`
	// RedirectInbound maps a transport name to the exposed name its
	// inbound messages and events go to, with transport_name rewritten.
	RedirectInbound map[string]string `yaml:"redirect_inbound"`
}

func (c *RedirectConfig) base() *dispatcher.Config { return &c.Config }

// Validate implements topology.WorkerConfig.
func (c *RedirectConfig) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	for _, k := range sortedKeys(c.RedirectOutbound) {
		if err := checkTransport(&c.Config, "redirect_outbound."+k, c.RedirectOutbound[k]); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(c.RedirectInbound) {
		if err := checkTransport(&c.Config, "redirect_inbound", k); err != nil {
			return err
		}
		if err := checkExposed(&c.Config, "redirect_inbound."+k, c.RedirectInbound[k]); err != nil {
			return err
		}
	}
	return nil
}

// RedirectKind is Vumi's RedirectRouter (and its deprecated
// RedirectOutboundRouter).
func RedirectKind() *topology.Kind {
	return routerKind("redirect_router",
		append(vumiClasses("RedirectRouter"), "vumi.dispatchers.base.RedirectOutboundRouter", "vumi.dispatchers.RedirectOutboundRouter"),
		"redirect_inbound: transport -> exposed; redirect_outbound: transport_name -> transport",
		func() *RedirectConfig { return &RedirectConfig{} },
		newRedirect)
}

func newRedirect(c *RedirectConfig) (dispatcher.Router, error) { return &redirect{cfg: c}, nil }

type redirect struct{ cfg *RedirectConfig }

func (r *redirect) inboundTarget(name string) (string, error) {
	to, ok := r.cfg.RedirectInbound[name]
	if !ok || to == "" {
		return "", noRoute("no redirect_inbound for transport_name %q", name)
	}
	return to, nil
}

func (r *redirect) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, transport string) error {
	to, err := r.inboundTarget(transportNameOf(m, transport))
	if err != nil {
		return err
	}
	out := cloneMessage(m)
	out.TransportName = schemas.String(to)
	return c.PublishInbound(to, out)
}

func (r *redirect) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, transport string) error {
	name := transport
	if e.TransportName != nil {
		name = *e.TransportName
	}
	to, err := r.inboundTarget(name)
	if err != nil {
		return err
	}
	out := cloneEvent(e)
	out.TransportName = schemas.String(to)
	return c.PublishEvent(to, out)
}

func (r *redirect) DispatchOutboundMessage(c *dispatcher.Context, m *schemas.UserMessage, _ string) error {
	to, ok := r.cfg.RedirectOutbound[m.Transport()]
	if !ok || to == "" {
		return noRoute("no redirect_outbound specified for %q", m.Transport())
	}
	return c.PublishOutbound(to, m)
}
