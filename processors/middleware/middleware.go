// Package middleware is Vumi's middleware stack: small interfaces a
// middleware implements for the message kinds it cares about, and a Stack
// that applies them with Vumi's ordering — consume handlers in config order,
// publish handlers in reverse order, each list stably sorted by priority.
package middleware

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

// Phase says whether a message is being consumed by the worker (arriving
// from a topic) or published by it (leaving towards a topic).
type Phase int

// Phases.
const (
	Consume Phase = iota
	Publish
)

func (p Phase) String() string {
	if p == Publish {
		return "publish"
	}
	return "consume"
}

// Context tells a middleware where a message is in the worker.
type Context struct {
	Phase Phase
	// Connector is the transport or exposed name the message travels on
	// (Vumi's connector_name).
	Connector string
	// Worker is the worker's name.
	Worker string
}

// Middleware is anything in a stack; it implements one or more of Inbound,
// Outbound, Event, Failure and Status. Returning a nil message drops it:
// the worker stops handling it and commits it as handled.
type Middleware interface {
	// Name is the middleware's name in the worker config.
	Name() string
}

// Inbound handles user messages from end users.
type Inbound interface {
	HandleInbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error)
}

// Outbound handles user messages towards end users.
type Outbound interface {
	HandleOutbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error)
}

// Event handles acks, nacks and delivery reports.
type Event interface {
	HandleEvent(ctx context.Context, e *schemas.Event, c Context) (*schemas.Event, error)
}

// Failure handles failure messages.
type Failure interface {
	HandleFailure(ctx context.Context, f *schemas.Failure, c Context) (*schemas.Failure, error)
}

// Status handles status events a worker publishes.
type Status interface {
	HandleStatus(ctx context.Context, s *schemas.Status, c Context) (*schemas.Status, error)
}

// Closer is implemented by middleware with resources to release.
type Closer interface{ Close() error }

// Priorities orders a middleware within a stack (Vumi's consume_priority
// and publish_priority): lower runs first; equal priorities keep config
// order (reversed for publishing).
type Priorities struct {
	Consume, Publish int
}

// Entry is a middleware with its priorities.
type Entry struct {
	Middleware
	Priorities
}

// Error wraps an error a middleware returned.
type Error struct {
	Middleware string
	Handler    string
	Err        error
}

func (e *Error) Error() string {
	return fmt.Sprintf("middleware %s %s: %v", e.Middleware, e.Handler, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Stack is an ordered set of middleware. The zero value and nil are empty
// stacks that pass everything through.
type Stack struct {
	consume []Middleware
	publish []Middleware
	observe Observer
}

// Observer is told how long each middleware handler took, e.g. to report
// it as a metric; handler is "<phase>_<kind>", such as "consume_inbound".
type Observer func(middleware, handler string, took time.Duration)

// Observe sets the stack's observer (nil: none).
func (s *Stack) Observe(o Observer) {
	if s != nil {
		s.observe = o
	}
}

// NewStack builds a stack from entries in config order.
func NewStack(entries ...Entry) *Stack {
	consume := append([]Entry(nil), entries...)
	sort.SliceStable(consume, func(i, j int) bool { return consume[i].Consume < consume[j].Consume })
	publish := make([]Entry, len(entries))
	for i, e := range entries {
		publish[len(entries)-1-i] = e
	}
	sort.SliceStable(publish, func(i, j int) bool { return publish[i].Publish < publish[j].Publish })
	s := &Stack{}
	for _, e := range consume {
		s.consume = append(s.consume, e.Middleware)
	}
	for _, e := range publish {
		s.publish = append(s.publish, e.Middleware)
	}
	return s
}

// Len is the number of middleware in the stack.
func (s *Stack) Len() int {
	if s == nil {
		return 0
	}
	return len(s.consume)
}

func (s *Stack) order(p Phase) []Middleware {
	if s == nil {
		return nil
	}
	if p == Publish {
		return s.publish
	}
	return s.consume
}

// apply runs handler over every middleware implementing I, in phase order.
func apply[I any, M any](ctx context.Context, s *Stack, c Context, name string, msg *M,
	handle func(I, context.Context, *M, Context) (*M, error)) (*M, error) {
	for _, mw := range s.order(c.Phase) {
		h, ok := mw.(I)
		if !ok {
			continue
		}
		var start time.Time
		if s.observe != nil {
			start = time.Now()
		}
		out, err := handle(h, ctx, msg, c)
		if s.observe != nil {
			s.observe(mw.Name(), c.Phase.String()+"_"+name, time.Since(start))
		}
		if err != nil {
			return nil, &Error{Middleware: mw.Name(), Handler: c.Phase.String() + "_" + name, Err: err}
		}
		if out == nil {
			return nil, nil
		}
		msg = out
	}
	return msg, nil
}

// Inbound runs the stack's inbound handlers; nil means dropped.
func (s *Stack) Inbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	return apply(ctx, s, c, "inbound", m, Inbound.HandleInbound)
}

// Outbound runs the stack's outbound handlers; nil means dropped.
func (s *Stack) Outbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	return apply(ctx, s, c, "outbound", m, Outbound.HandleOutbound)
}

// Event runs the stack's event handlers; nil means dropped.
func (s *Stack) Event(ctx context.Context, e *schemas.Event, c Context) (*schemas.Event, error) {
	return apply(ctx, s, c, "event", e, Event.HandleEvent)
}

// Failure runs the stack's failure handlers; nil means dropped.
func (s *Stack) Failure(ctx context.Context, f *schemas.Failure, c Context) (*schemas.Failure, error) {
	return apply(ctx, s, c, "failure", f, Failure.HandleFailure)
}

// Status runs the stack's status handlers (publish only, as in Vumi).
func (s *Stack) Status(ctx context.Context, st *schemas.Status, c Context) (*schemas.Status, error) {
	return apply(ctx, s, c, "status", st, Status.HandleStatus)
}

// Close closes every middleware that has resources, in publish order
// (Vumi's teardown order).
func (s *Stack) Close() error {
	var errs []error
	for _, mw := range s.order(Publish) {
		if c, ok := mw.(Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("middleware %s: %w", mw.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}
