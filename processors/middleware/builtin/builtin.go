// Package builtin registers the middleware kinds that ship with the
// project, for the binary's explicit registry.
package builtin

import (
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/topology"
)

// Kinds returns every built-in middleware kind.
func Kinds() []*topology.MiddlewareKind {
	return []*topology.MiddlewareKind{
		{
			Name:      "logging",
			Aliases:   []string{"vumi.middleware.logging.LoggingMiddleware", "vumi.middleware.LoggingMiddleware"},
			Summary:   "logs every message, event and failure passing through",
			NewConfig: func() topology.MiddlewareConfig { return middleware.NewLoggingConfig() },
			Build: func(deps *topology.Deps, worker string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
				return middleware.NewLogging(spec.Name, spec.Config.(*middleware.LoggingConfig), deps.WorkerLogger(worker))
			},
		},
	}
}
