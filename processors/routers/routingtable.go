package routers

import (
	"errors"
	"fmt"

	"github.com/vumi-kafka/vumi/processors/dispatcher"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// RoutingTableConfig configures Vumi's endpoint RoutingTableDispatcher.
// Its connectors map onto the base: receive_inbound_connectors are the
// transport-side connectors (transport_names), receive_outbound_connectors
// the application-side ones (exposed_names).
type RoutingTableConfig struct {
	dispatcher.Config `yaml:",inline"`
	// ReceiveInboundConnectors receive inbound messages and events.
	ReceiveInboundConnectors []string `yaml:"receive_inbound_connectors"`
	// ReceiveOutboundConnectors receive outbound messages.
	ReceiveOutboundConnectors []string `yaml:"receive_outbound_connectors"`
	// RoutingTable maps a connector name to a mapping of endpoint name to
	// a [connector, endpoint] target. Required.
	RoutingTable map[string]map[string][]string `yaml:"routing_table"`
}

func (c *RoutingTableConfig) base() *dispatcher.Config { return &c.Config }

// Validate implements topology.WorkerConfig.
func (c *RoutingTableConfig) Validate() error {
	switch {
	case len(c.ReceiveInboundConnectors) > 0 && len(c.TransportNames) > 0:
		return errors.New("key receive_inbound_connectors: give it or transport_names, not both")
	case len(c.ReceiveOutboundConnectors) > 0 && len(c.ExposedNames) > 0:
		return errors.New("key receive_outbound_connectors: give it or exposed_names, not both")
	}
	if len(c.ReceiveInboundConnectors) > 0 {
		c.TransportNames = c.ReceiveInboundConnectors
	}
	if len(c.ReceiveOutboundConnectors) > 0 {
		c.ExposedNames = c.ReceiveOutboundConnectors
	}
	if len(c.TransportNames) == 0 {
		return errors.New("key receive_inbound_connectors: at least one connector is required")
	}
	if len(c.ExposedNames) == 0 {
		return errors.New("key receive_outbound_connectors: at least one connector is required")
	}
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if len(c.RoutingTable) == 0 {
		return errors.New("key routing_table: is required (connector -> endpoint -> [connector, endpoint])")
	}
	for _, from := range sortedKeys(c.RoutingTable) {
		fromInbound := c.HasTransport(from)
		if !fromInbound && !c.HasExposed(from) {
			return fmt.Errorf("key routing_table.%s: not one of the connectors %v", from, append(append([]string(nil), c.TransportNames...), c.ExposedNames...))
		}
		for _, ep := range sortedKeys(c.RoutingTable[from]) {
			target := c.RoutingTable[from][ep]
			key := "routing_table." + from + "." + ep
			if len(target) != 2 || target[0] == "" || target[1] == "" {
				return fmt.Errorf("key %s: must be a [connector, endpoint] pair, got %v", key, target)
			}
			if fromInbound && !c.HasExposed(target[0]) {
				return fmt.Errorf("key %s: %q must be a receive_outbound connector %v (messages from a receive_inbound connector go towards applications)", key, target[0], c.ExposedNames)
			}
			if !fromInbound && !c.HasTransport(target[0]) {
				return fmt.Errorf("key %s: %q must be a receive_inbound connector %v (messages from a receive_outbound connector go towards transports)", key, target[0], c.TransportNames)
			}
		}
	}
	return nil
}

// RoutingTableKind is Vumi's endpoint RoutingTableDispatcher: each
// message goes to the [connector, endpoint] that routing_table gives for
// the connector it arrived on and its routing endpoint
// (routing_metadata.endpoint_name).
func RoutingTableKind() *topology.Kind {
	return routerKind("routing_table_dispatcher",
		[]string{"vumi.dispatchers.endpoint_dispatchers.RoutingTableDispatcher", "vumi.dispatchers.RoutingTableDispatcher"},
		"routing_table: connector -> endpoint -> [connector, endpoint]",
		func() *RoutingTableConfig { return &RoutingTableConfig{} },
		newRoutingTable)
}

func newRoutingTable(c *RoutingTableConfig) (dispatcher.Router, error) {
	return &routingTable{cfg: c}, nil
}

type routingTable struct{ cfg *RoutingTableConfig }

func (r *routingTable) target(connector, endpoint string) ([]string, error) {
	routes, ok := r.cfg.RoutingTable[connector]
	if !ok {
		return nil, noRoute("no routing information for connector %q", connector)
	}
	t, ok := routes[endpoint]
	if !ok {
		return nil, noRoute("no routing information for endpoint %q on %q", endpoint, connector)
	}
	return t, nil
}

func (r *routingTable) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, connector string) error {
	t, err := r.target(connector, m.Endpoint())
	if err != nil {
		return err
	}
	m.SetEndpoint(t[1])
	return c.PublishInbound(t[0], m)
}

func (r *routingTable) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, connector string) error {
	t, err := r.target(connector, e.Endpoint())
	if err != nil {
		return err
	}
	e.SetEndpoint(t[1])
	return c.PublishEvent(t[0], e)
}

func (r *routingTable) DispatchOutboundMessage(c *dispatcher.Context, m *schemas.UserMessage, connector string) error {
	t, err := r.target(connector, m.Endpoint())
	if err != nil {
		return err
	}
	m.SetEndpoint(t[1])
	return c.PublishOutbound(t[0], m)
}
