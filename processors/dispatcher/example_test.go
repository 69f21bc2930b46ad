package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/dispatcher"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// PrefixConfig configures the example router: the base keys inline, and
// its own.
type PrefixConfig struct {
	dispatcher.Config `yaml:",inline"`
	// Prefixes maps a from_addr prefix to an exposed name. Required.
	Prefixes map[string]string `yaml:"prefixes"`
}

// Validate checks the config when it is loaded; errors name the key.
func (c *PrefixConfig) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if len(c.Prefixes) == 0 {
		return errors.New("key prefixes: is required (from_addr prefix -> exposed name)")
	}
	for p, name := range c.Prefixes {
		if !c.HasExposed(name) {
			return fmt.Errorf("key prefixes.%s: %q is not one of exposed_names %v", p, name, c.ExposedNames)
		}
	}
	return nil
}

// PrefixRouter sends inbound messages to the exposed name of the longest
// matching from_addr prefix, events to the first exposed name, and
// outbound messages to the transport named by their transport_name.
type PrefixRouter struct{ cfg *PrefixConfig }

// DispatchInboundMessage is Vumi's dispatch_inbound_message.
func (r *PrefixRouter) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, _ string) error {
	best := ""
	for p := range r.cfg.Prefixes {
		if strings.HasPrefix(m.From(), p) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		// Permanent: the base publishes a failure record and moves on.
		return worker.Permanent(fmt.Errorf("no prefix matches from_addr %q", m.From()))
	}
	return c.PublishInbound(r.cfg.Prefixes[best], m)
}

// DispatchInboundEvent is Vumi's dispatch_inbound_event.
func (r *PrefixRouter) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, _ string) error {
	return c.PublishEvent(r.cfg.ExposedNames[0], e)
}

// DispatchOutboundMessage is Vumi's dispatch_outbound_message.
func (r *PrefixRouter) DispatchOutboundMessage(c *dispatcher.Context, m *schemas.UserMessage, _ string) error {
	return c.PublishOutbound(m.Transport(), m)
}

// Setup is Vumi's setup_routing (optional: dispatcher.Setupper).
func (r *PrefixRouter) Setup(_ context.Context, d *dispatcher.Dispatcher) error {
	d.Log.Info("prefix router ready", "prefixes", len(r.cfg.Prefixes))
	return nil
}

// Teardown is Vumi's teardown_routing (optional: dispatcher.Teardowner).
func (r *PrefixRouter) Teardown() error { return nil }

// PrefixKind is the router's worker kind, for the binary's registry
// (cmd/vumi/registry.go: r.Add(PrefixKind())).
func PrefixKind() *topology.Kind {
	return &topology.Kind{
		Name:      "prefix_router",
		Aliases:   []string{"mycompany.routers.PrefixRouter"},
		Role:      topology.RoleDispatcher,
		Summary:   "routes inbound messages by from_addr prefix",
		NewConfig: func() topology.WorkerConfig { return &PrefixConfig{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg, ok := spec.Config.(*PrefixConfig)
			if !ok {
				return nil, fmt.Errorf("worker %s: unexpected config %T", spec.Name, spec.Config)
			}
			return dispatcher.Worker(deps, spec, &cfg.Config, func() (dispatcher.Router, error) {
				return &PrefixRouter{cfg: cfg}, nil
			}), nil
		},
	}
}

// Example_router loads a deployment that uses a router of your own,
// selected by router_class as in Vumi.
func Example_router() {
	reg := topology.NewRegistry().Add(PrefixKind())
	cfg, err := topology.Load("example.yaml", []byte(`
cluster:
  kafka: {brokers: [127.0.0.1:9092]}
  schema_registry: {url: http://127.0.0.1:8081}
workers:
  - name: by_country
    kind: mycompany.routers.PrefixRouter
    transport_names: [sms]
    exposed_names: [za_app, ke_app]
    prefixes: {"+27": za_app, "+254": ke_app}
`), reg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	w := cfg.Workers[0]
	fmt.Println(w.Name, w.Kind.Name, w.Config.(*PrefixConfig).Prefixes["+27"])
	// Output: by_country prefix_router za_app
}
