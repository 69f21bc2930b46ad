package topology

import (
	"context"
	"fmt"
	"sort"

	"github.com/vumi-kafka/vumi/processors/middleware"
)

// Role is what a worker kind is.
type Role string

// Roles.
const (
	RoleTransport   Role = "transport"
	RoleApplication Role = "application"
	RoleDispatcher  Role = "dispatcher"
	RoleSink        Role = "sink"
)

// Worker is a running worker: Run blocks until ctx is cancelled, then
// drains in-flight work and returns.
type Worker interface {
	Run(ctx context.Context) error
}

// WorkerConfig is a worker kind's typed config: decoded strictly from the
// worker's section of the config file.
type WorkerConfig interface {
	// Validate checks the config; errors name the key at fault.
	Validate() error
	// IO returns the streams the worker called name consumes and produces.
	IO(name string) IO
}

// IO is what a worker reads and writes.
type IO struct {
	Consumes []Stream
	Produces []Stream
	// CoPartitioned lists groups of topics that must have equal partition
	// counts (a goka processor's inputs and its table).
	CoPartitioned [][]string
}

// Stream is one topic a worker reads or writes (name without the prefix).
type Stream struct {
	Topic string
	// Kind is the schemas kind name of its values, e.g. user_message.
	Kind string
	// Compacted topics hold state (tables, control topics).
	Compacted bool
}

// Kind is a worker kind: a short name (and Vumi's class paths as aliases),
// its config and how to build it.
type Kind struct {
	Name    string
	Aliases []string
	Role    Role
	Summary string
	// NewConfig returns a config with the kind's defaults.
	NewConfig func() WorkerConfig
	// Build makes the worker.
	Build func(deps *Deps, spec *WorkerSpec) (Worker, error)
	// SelectBy, when set, makes this a generic kind whose actual kind is
	// named by the worker's value for this key (Vumi's dispatcher with
	// router_class): the named kind must have the same role.
	SelectBy string
}

// MiddlewareConfig is a middleware kind's typed config.
type MiddlewareConfig interface {
	Validate() error
}

// MiddlewareKind is a middleware kind.
type MiddlewareKind struct {
	Name    string
	Aliases []string
	Summary string
	// NewConfig returns a config with the defaults.
	NewConfig func() MiddlewareConfig
	// Build makes the middleware for one worker.
	Build func(deps *Deps, worker string, spec *MiddlewareSpec) (middleware.Middleware, error)
	// IO, when set, returns the topics a middleware of a worker reads or
	// writes itself (its state topic, a store's history topics); they
	// join the worker's IO in the graph, so they are created, have their
	// schemas registered and are checked like any other.
	IO func(worker string, spec *MiddlewareSpec) IO
}

// Registry holds the worker and middleware kinds a binary knows. It is
// built explicitly (in cmd/vumi), not by init-time side effects.
type Registry struct {
	kinds       map[string]*Kind
	middlewares map[string]*MiddlewareKind
	primary     []string
	mwPrimary   []string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{kinds: map[string]*Kind{}, middlewares: map[string]*MiddlewareKind{}}
}

// Add registers worker kinds; a name or alias used twice panics (a
// programming error in the binary's registry, caught by its tests).
func (r *Registry) Add(kinds ...*Kind) *Registry {
	for _, k := range kinds {
		for _, n := range append([]string{k.Name}, k.Aliases...) {
			if _, dup := r.kinds[n]; dup {
				panic(fmt.Sprintf("topology: worker kind %q registered twice", n))
			}
			r.kinds[n] = k
		}
		r.primary = append(r.primary, k.Name)
	}
	sort.Strings(r.primary)
	return r
}

// AddMiddleware registers middleware kinds.
func (r *Registry) AddMiddleware(kinds ...*MiddlewareKind) *Registry {
	for _, k := range kinds {
		for _, n := range append([]string{k.Name}, k.Aliases...) {
			if _, dup := r.middlewares[n]; dup {
				panic(fmt.Sprintf("topology: middleware kind %q registered twice", n))
			}
			r.middlewares[n] = k
		}
		r.mwPrimary = append(r.mwPrimary, k.Name)
	}
	sort.Strings(r.mwPrimary)
	return r
}

// Kind looks a worker kind up by name or alias.
func (r *Registry) Kind(name string) (*Kind, bool) { k, ok := r.kinds[name]; return k, ok }

// Middleware looks a middleware kind up by name or alias.
func (r *Registry) Middleware(name string) (*MiddlewareKind, bool) {
	k, ok := r.middlewares[name]
	return k, ok
}

// KindNames returns the primary worker kind names, sorted.
func (r *Registry) KindNames() []string { return append([]string(nil), r.primary...) }

// KindNamesOf returns the primary names of the kinds with a role, sorted,
// leaving out generic (SelectBy) kinds.
func (r *Registry) KindNamesOf(role Role) []string {
	var out []string
	for _, n := range r.primary {
		if k := r.kinds[n]; k.Role == role && k.SelectBy == "" {
			out = append(out, n)
		}
	}
	return out
}

// generic returns the kinds of a role that select another by a key.
func (r *Registry) generic(role Role) []*Kind {
	var out []*Kind
	for _, n := range r.primary {
		if k := r.kinds[n]; k.Role == role && k.SelectBy != "" {
			out = append(out, k)
		}
	}
	return out
}

// MiddlewareNames returns the primary middleware kind names, sorted.
func (r *Registry) MiddlewareNames() []string { return append([]string(nil), r.mwPrimary...) }

// Kinds returns every worker kind once, sorted by name.
func (r *Registry) Kinds() []*Kind {
	out := make([]*Kind, 0, len(r.primary))
	for _, n := range r.primary {
		out = append(out, r.kinds[n])
	}
	return out
}

// WorkerFunc adapts a function to Worker.
type WorkerFunc func(ctx context.Context) error

// Run implements Worker.
func (f WorkerFunc) Run(ctx context.Context) error { return f(ctx) }
