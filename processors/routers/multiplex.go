package routers

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/vumi-kafka/vumi/processors/dispatcher"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// FromAddrMultiplexConfig configures Vumi's FromAddrMultiplexRouter.
type FromAddrMultiplexConfig struct {
	dispatcher.Config `yaml:",inline"`
	// FromaddrMappings maps an outbound message's from_addr to the
	// transport name it is sent through. Required.
	FromaddrMappings map[string]string `yaml:"fromaddr_mappings"`
}

func (c *FromAddrMultiplexConfig) base() *dispatcher.Config { return &c.Config }

// Validate implements topology.WorkerConfig: exactly one exposed name.
func (c *FromAddrMultiplexConfig) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if len(c.ExposedNames) != 1 {
		return fmt.Errorf("key exposed_names: only one exposed name allowed for FromAddrMultiplexRouter, got %v", c.ExposedNames)
	}
	if len(c.FromaddrMappings) == 0 {
		return errors.New("key fromaddr_mappings: is required (from_addr -> transport name)")
	}
	for _, k := range sortedKeys(c.FromaddrMappings) {
		if err := checkTransport(&c.Config, "fromaddr_mappings."+k, c.FromaddrMappings[k]); err != nil {
			return err
		}
	}
	return nil
}

// FromAddrMultiplexKind is Vumi's FromAddrMultiplexRouter: a pool of
// single-address transports shown to one exposed name as one transport;
// transport_name is rewritten in both directions.
func FromAddrMultiplexKind() *topology.Kind {
	return routerKind("from_addr_multiplex_router", vumiClasses("FromAddrMultiplexRouter"),
		"fromaddr_mappings: from_addr -> transport; one exposed name; rewrites transport_name",
		func() *FromAddrMultiplexConfig { return &FromAddrMultiplexConfig{} },
		newFromAddrMultiplex)
}

func newFromAddrMultiplex(c *FromAddrMultiplexConfig) (dispatcher.Router, error) {
	if len(c.ExposedNames) != 1 {
		return nil, fmt.Errorf("key exposed_names: only one exposed name allowed for FromAddrMultiplexRouter, got %v", c.ExposedNames)
	}
	return &fromAddrMultiplex{cfg: c, exposed: c.ExposedNames[0]}, nil
}

type fromAddrMultiplex struct {
	cfg     *FromAddrMultiplexConfig
	exposed string
}

func (r *fromAddrMultiplex) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, _ string) error {
	m.TransportName = schemas.String(r.exposed)
	return c.PublishInbound(r.exposed, m)
}

func (r *fromAddrMultiplex) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, _ string) error {
	e.TransportName = schemas.String(r.exposed)
	return c.PublishEvent(r.exposed, e)
}

func (r *fromAddrMultiplex) DispatchOutboundMessage(c *dispatcher.Context, m *schemas.UserMessage, _ string) error {
	name, ok := r.cfg.FromaddrMappings[m.From()]
	if !ok {
		return noRoute("no fromaddr_mappings entry for from_addr %q", m.From())
	}
	m.TransportName = schemas.String(name)
	return c.PublishOutbound(name, m)
}

// LoadBalancingConfig configures Vumi's LoadBalancingRouter.
type LoadBalancingConfig struct {
	dispatcher.Config `yaml:",inline"`
	// ReplyAffinity sends replies through the transport their message
	// came from. Default true.
	ReplyAffinity *bool `yaml:"reply_affinity"`
	// RewriteTransportNames rewrites transport_name in both directions.
	// Default true.
	RewriteTransportNames *bool `yaml:"rewrite_transport_names"`
}

func (c *LoadBalancingConfig) base() *dispatcher.Config { return &c.Config }

// Validate implements topology.WorkerConfig: exactly one exposed name.
func (c *LoadBalancingConfig) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if len(c.ExposedNames) != 1 {
		return fmt.Errorf("key exposed_names: only one exposed name allowed for LoadBalancingRouter, got %v", c.ExposedNames)
	}
	t := true
	if c.ReplyAffinity == nil {
		c.ReplyAffinity = &t
	}
	if c.RewriteTransportNames == nil {
		c.RewriteTransportNames = &t
	}
	return nil
}

// LoadBalancingKind is Vumi's LoadBalancingRouter: outbound messages are
// spread round-robin over the transports (per dispatcher instance, as
// Vumi's in-memory cycle), replies go back through the transport their
// message came in on (reply_affinity, remembered in helper_metadata).
func LoadBalancingKind() *topology.Kind {
	return routerKind("load_balancing_router",
		[]string{"vumi.dispatchers.load_balancer.LoadBalancingRouter", "vumi.dispatchers.LoadBalancingRouter"},
		"round-robin over transport_names for one exposed name; reply_affinity, rewrite_transport_names",
		func() *LoadBalancingConfig { return &LoadBalancingConfig{} },
		newLoadBalancing)
}

func newLoadBalancing(c *LoadBalancingConfig) (dispatcher.Router, error) {
	if len(c.ExposedNames) != 1 || c.ReplyAffinity == nil || c.RewriteTransportNames == nil {
		return nil, fmt.Errorf("key exposed_names: only one exposed name allowed for LoadBalancingRouter, got %v (or the config was not validated)", c.ExposedNames)
	}
	return &loadBalancing{cfg: c, exposed: c.ExposedNames[0]}, nil
}

type loadBalancing struct {
	cfg     *LoadBalancingConfig
	exposed string
	next    atomic.Uint64
}

const lbKey = "load_balancer"

func (r *loadBalancing) cycle() string {
	n := r.next.Add(1) - 1
	return r.cfg.TransportNames[n%uint64(len(r.cfg.TransportNames))]
}

func (r *loadBalancing) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, transport string) error {
	if *r.cfg.ReplyAffinity {
		pushTransportName(m, transportNameOf(m, transport))
	}
	if *r.cfg.RewriteTransportNames {
		m.TransportName = schemas.String(r.exposed)
	}
	return c.PublishInbound(r.exposed, m)
}

func (r *loadBalancing) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, _ string) error {
	if *r.cfg.RewriteTransportNames {
		e.TransportName = schemas.String(r.exposed)
	}
	return c.PublishEvent(r.exposed, e)
}

func (r *loadBalancing) DispatchOutboundMessage(c *dispatcher.Context, m *schemas.UserMessage, _ string) error {
	var name string
	if *r.cfg.ReplyAffinity && m.InReplyTo != nil && *m.InReplyTo != "" {
		name = popTransportName(m)
		if !r.cfg.HasTransport(name) {
			c.Log().Warn("reply for an unknown load balancer transport; using round-robin routing instead", "transport_name", name, "message_id", m.MessageID)
			name = r.cycle()
		}
	} else {
		name = r.cycle()
	}
	if *r.cfg.RewriteTransportNames {
		m.TransportName = schemas.String(name)
	}
	return c.PublishOutbound(name, m)
}

// pushTransportName appends name to helper_metadata.load_balancer.transport_names.
func pushTransportName(m *schemas.UserMessage, name string) {
	if m.HelperMetadata == nil {
		m.HelperMetadata = schemas.Metadata{}
	}
	lb, _ := m.HelperMetadata[lbKey].(map[string]any)
	if lb == nil {
		lb = map[string]any{}
	}
	names, _ := lb["transport_names"].([]any)
	lb["transport_names"] = append(names, name)
	m.HelperMetadata[lbKey] = lb
}

// popTransportName removes and returns the last of
// helper_metadata.load_balancer.transport_names ("" when none).
func popTransportName(m *schemas.UserMessage) string {
	lb, _ := m.HelperMetadata[lbKey].(map[string]any)
	names, _ := lb["transport_names"].([]any)
	if len(names) == 0 {
		return ""
	}
	last, _ := names[len(names)-1].(string)
	lb["transport_names"] = names[:len(names)-1]
	return last
}
