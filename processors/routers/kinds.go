package routers

import (
	"errors"
	"fmt"

	"github.com/vumi-kafka/vumi/processors/dispatcher"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// ErrNoRoute is wrapped by the errors of messages a router has nowhere to
// send; the dispatcher base publishes them to <connector>.failures.
var ErrNoRoute = errors.New("no route")

// noRoute is a permanent failure wrapping ErrNoRoute.
func noRoute(format string, args ...any) error {
	return permanent(fmt.Errorf("%w: "+format, append([]any{ErrNoRoute}, args...)...))
}

// Kinds returns every dispatcher kind: the generic "dispatcher" (which
// picks one of the others by router_class) and each router.
func Kinds() []*topology.Kind {
	return []*topology.Kind{
		DispatcherKind(),
		PassThroughKind(),
		SimpleKind(),
		TransportToTransportKind(),
		ToAddrKind(),
		FromAddrMultiplexKind(),
		UserGroupingKind(),
		ContentKeywordKind(),
		RedirectKind(),
		LoadBalancingKind(),
		RoutingTableKind(),
	}
}

// routerConfig is a router kind's config.
type routerConfig interface {
	topology.WorkerConfig
	base() *dispatcher.Config
}

// routerKind makes the worker kind of a router: the router is built once
// at load time (so that its config errors stop the deployment before it
// runs) and afresh on every (re)start of the worker.
func routerKind[C routerConfig](name string, classes []string, summary string, newConfig func() C, newRouter func(C) (dispatcher.Router, error)) *topology.Kind {
	return &topology.Kind{
		Name:      name,
		Aliases:   classes,
		Role:      topology.RoleDispatcher,
		Summary:   summary,
		NewConfig: func() topology.WorkerConfig { return newConfig() },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg, ok := spec.Config.(C)
			if !ok {
				return nil, fmt.Errorf("worker %s: config is %T, not the config of %s", spec.Name, spec.Config, name)
			}
			if _, err := newRouter(cfg); err != nil {
				return nil, err
			}
			return dispatcher.Worker(deps, spec, cfg.base(), func() (dispatcher.Router, error) { return newRouter(cfg) }), nil
		},
	}
}

// vumiClasses returns Vumi's two class paths of a router in
// vumi.dispatchers: the package's export and the base module's.
func vumiClasses(class string) []string {
	return []string{"vumi.dispatchers." + class, "vumi.dispatchers.base." + class}
}

// cloneMessage copies m so that middleware never sees one message instance
// twice when a router fans out (Vumi's msg.copy()).
func cloneMessage(m *schemas.UserMessage) *schemas.UserMessage {
	out := *m
	out.RoutingMetadata = m.RoutingMetadata.Clone()
	out.HelperMetadata = m.HelperMetadata.Clone()
	out.TransportMetadata = m.TransportMetadata.Clone()
	out.Extra = m.Extra.Clone()
	return &out
}

func cloneEvent(e *schemas.Event) *schemas.Event {
	out := *e
	out.RoutingMetadata = e.RoutingMetadata.Clone()
	out.HelperMetadata = e.HelperMetadata.Clone()
	out.TransportMetadata = e.TransportMetadata.Clone()
	out.Extra = e.Extra.Clone()
	return &out
}

// transportNameOf is the message's transport_name, or the connector it
// arrived on when the message has none.
func transportNameOf(m *schemas.UserMessage, connector string) string {
	if m.TransportName != nil {
		return *m.TransportName
	}
	return connector
}
