// Package routers holds the dispatcher routers: each is a worker kind of
// role dispatcher, selectable by name or by Vumi's router_class.
package routers

import (
	"errors"
	"fmt"

	"github.com/vumi-kafka/vumi/processors/dispatcher"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// DispatcherKind is the generic "dispatcher" kind (Vumi's
// BaseDispatchWorker): its router_class key picks the router kind.
func DispatcherKind() *topology.Kind {
	return &topology.Kind{
		Name:     "dispatcher",
		Aliases:  []string{"vumi.dispatchers.BaseDispatchWorker", "vumi.dispatchers.base.BaseDispatchWorker"},
		Role:     topology.RoleDispatcher,
		Summary:  "a dispatcher whose router is chosen by router_class",
		SelectBy: "router_class",
		NewConfig: func() topology.WorkerConfig {
			return &PassThroughConfig{}
		},
	}
}

// PassThroughConfig configures the pass-through router.
type PassThroughConfig struct {
	dispatcher.Config `yaml:",inline"`
}

// Validate implements topology.WorkerConfig: transport_names[i] pairs with
// exposed_names[i].
func (c *PassThroughConfig) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if len(c.TransportNames) != len(c.ExposedNames) {
		return errors.New("key exposed_names: the pass-through router pairs transport_names[i] with exposed_names[i], so both need the same length")
	}
	return nil
}

// PassThroughKind is the pass-through router: transport_names[i] and
// exposed_names[i] are joined one to one, in both directions.
func PassThroughKind() *topology.Kind {
	return &topology.Kind{
		Name:    "passthrough_router",
		Aliases: []string{"passthrough"},
		Role:    topology.RoleDispatcher,
		Summary: "joins transport_names[i] to exposed_names[i] in both directions",
		NewConfig: func() topology.WorkerConfig {
			return &PassThroughConfig{}
		},
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*PassThroughConfig)
			return dispatcher.Worker(deps, spec, &cfg.Config, func() (dispatcher.Router, error) {
				return newPassThrough(&cfg.Config), nil
			}), nil
		},
	}
}

type passThrough struct {
	toExposed, toTransport map[string]string
}

func newPassThrough(c *dispatcher.Config) *passThrough {
	p := &passThrough{toExposed: map[string]string{}, toTransport: map[string]string{}}
	for i, t := range c.TransportNames {
		p.toExposed[t] = c.ExposedNames[i]
		p.toTransport[c.ExposedNames[i]] = t
	}
	return p
}

func (p *passThrough) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, transport string) error {
	return c.PublishInbound(p.toExposed[transport], m)
}

func (p *passThrough) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, transport string) error {
	return c.PublishEvent(p.toExposed[transport], e)
}

func (p *passThrough) DispatchOutboundMessage(c *dispatcher.Context, m *schemas.UserMessage, exposed string) error {
	t, ok := p.toTransport[exposed]
	if !ok {
		return fmt.Errorf("no transport for exposed name %q", exposed)
	}
	return c.PublishOutbound(t, m)
}
