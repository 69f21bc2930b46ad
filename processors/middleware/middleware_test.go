package middleware_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

// recorder appends its name to the message content for every message it
// sees, so the content shows the order middleware ran in.
type recorder struct {
	name string
	drop bool
	fail bool
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) HandleInbound(_ context.Context, m *schemas.UserMessage, c middleware.Context) (*schemas.UserMessage, error) {
	if r.fail {
		return nil, errors.New("boom")
	}
	if r.drop {
		return nil, nil
	}
	m.Content = schemas.String(m.Text() + r.name + "(" + c.Phase.String() + ")")
	return m, nil
}

func (r *recorder) HandleEvent(_ context.Context, e *schemas.Event, _ middleware.Context) (*schemas.Event, error) {
	e.NackReason = schemas.String(deref(e.NackReason) + r.name)
	return e, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// outboundOnly implements only Outbound: the stack must skip it for others.
type outboundOnly struct{}

func (outboundOnly) Name() string { return "out" }
func (outboundOnly) HandleOutbound(_ context.Context, m *schemas.UserMessage, _ middleware.Context) (*schemas.UserMessage, error) {
	m.Content = schemas.String("rewritten")
	return m, nil
}

func TestOrder(t *testing.T) {
	ctx := context.Background()
	s := middleware.NewStack(
		middleware.Entry{Middleware: &recorder{name: "a"}},
		middleware.Entry{Middleware: &recorder{name: "b"}},
		middleware.Entry{Middleware: outboundOnly{}},
		middleware.Entry{Middleware: &recorder{name: "c"}},
	)
	m, err := s.Inbound(ctx, &schemas.UserMessage{}, middleware.Context{Phase: middleware.Consume})
	if err != nil || m.Text() != "a(consume)b(consume)c(consume)" {
		t.Errorf("consume order: %q, %v", m.Text(), err)
	}
	m, err = s.Inbound(ctx, &schemas.UserMessage{}, middleware.Context{Phase: middleware.Publish})
	if err != nil || m.Text() != "c(publish)b(publish)a(publish)" {
		t.Errorf("publish order: %q, %v", m.Text(), err)
	}
	e, err := s.Event(ctx, &schemas.Event{}, middleware.Context{Phase: middleware.Consume})
	if err != nil || deref(e.NackReason) != "abc" {
		t.Errorf("event order: %q, %v", deref(e.NackReason), err)
	}
	m, err = s.Outbound(ctx, &schemas.UserMessage{Content: schemas.String("x")}, middleware.Context{Phase: middleware.Publish})
	if err != nil || m.Text() != "rewritten" {
		t.Errorf("outbound: %q, %v", m.Text(), err)
	}
}

func TestPriorities(t *testing.T) {
	s := middleware.NewStack(
		middleware.Entry{Middleware: &recorder{name: "a"}, Priorities: middleware.Priorities{Consume: 2, Publish: 0}},
		middleware.Entry{Middleware: &recorder{name: "b"}, Priorities: middleware.Priorities{Consume: 1, Publish: 1}},
		middleware.Entry{Middleware: &recorder{name: "c"}, Priorities: middleware.Priorities{Consume: 1, Publish: 0}},
	)
	m, _ := s.Inbound(context.Background(), &schemas.UserMessage{}, middleware.Context{Phase: middleware.Consume})
	if m.Text() != "b(consume)c(consume)a(consume)" {
		t.Errorf("consume with priorities: %q", m.Text())
	}
	m, _ = s.Inbound(context.Background(), &schemas.UserMessage{}, middleware.Context{Phase: middleware.Publish})
	if m.Text() != "c(publish)a(publish)b(publish)" {
		t.Errorf("publish with priorities: %q", m.Text())
	}
}

func TestDropAndError(t *testing.T) {
	ctx := context.Background()
	s := middleware.NewStack(middleware.Entry{Middleware: &recorder{name: "a"}}, middleware.Entry{Middleware: &recorder{name: "d", drop: true}}, middleware.Entry{Middleware: &recorder{name: "never"}})
	m, err := s.Inbound(ctx, &schemas.UserMessage{}, middleware.Context{})
	if m != nil || err != nil {
		t.Errorf("dropped message came back: %v, %v", m, err)
	}
	s = middleware.NewStack(middleware.Entry{Middleware: &recorder{name: "f", fail: true}})
	_, err = s.Inbound(ctx, &schemas.UserMessage{}, middleware.Context{Phase: middleware.Publish})
	var me *middleware.Error
	if !errors.As(err, &me) || me.Middleware != "f" || !strings.Contains(err.Error(), "middleware f publish_inbound: boom") {
		t.Errorf("error = %v", err)
	}
	var nilStack *middleware.Stack
	m, err = nilStack.Inbound(ctx, &schemas.UserMessage{MessageID: "x"}, middleware.Context{})
	if err != nil || m.MessageID != "x" {
		t.Errorf("nil stack: %v %v", m, err)
	}
}

func TestObserver(t *testing.T) {
	s := middleware.NewStack(middleware.Entry{Middleware: &recorder{name: "a"}}, middleware.Entry{Middleware: outboundOnly{}})
	var seen []string
	s.Observe(func(mw, handler string, took time.Duration) {
		if took < 0 {
			t.Errorf("negative duration")
		}
		seen = append(seen, mw+"/"+handler)
	})
	if _, err := s.Inbound(context.Background(), &schemas.UserMessage{}, middleware.Context{Phase: middleware.Publish}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != "a/publish_inbound" {
		t.Errorf("observed %v", seen)
	}
}
