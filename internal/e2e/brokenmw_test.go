package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// broken is a middleware whose outbound and failure handlers always fail.
type broken struct{ name string }

func (b broken) Name() string { return b.name }
func (broken) HandleOutbound(context.Context, *schemas.UserMessage, middleware.Context) (*schemas.UserMessage, error) {
	return nil, errors.New("outbound handler broken")
}
func (broken) HandleFailure(context.Context, *schemas.Failure, middleware.Context) (*schemas.Failure, error) {
	return nil, errors.New("failure handler broken")
}

func brokenKind() *topology.MiddlewareKind {
	return &topology.MiddlewareKind{
		Name:      "broken",
		NewConfig: func() topology.MiddlewareConfig { return stampConfig{} },
		Build: func(_ *topology.Deps, _ string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
			return broken{name: spec.Name}, nil
		},
	}
}

// TestBrokenFailureMiddleware: a middleware whose failure handler fails
// must not wedge a transport: the failure is published as it was.
func TestBrokenFailureMiddleware(t *testing.T) {
	c := startCluster(t)
	run(t, c, `
  - name: devnull
    kind: devnull
    transport_name: dn
    ack_rate: 1
    failure_rate: 0
    reply_rate: 0
    middleware:
      - b: broken
`)
	m := schemas.NewUserMessage()
	m.ToAddr, m.Content = schemas.String("+27820000001"), schemas.String("x")
	c.produceOutbound(t, "dn.outbound", m)
	got := c.Collect(t, c.Consumer(t, "dn.failures"), 30*time.Second, func(got []any) bool { return len(got) >= 1 })
	f := got[0].(*schemas.Failure)
	if !strings.Contains(f.Reason, "middleware b consume_outbound: outbound handler broken") || f.Message == nil || !strings.Contains(*f.Message, m.MessageID) {
		t.Errorf("failure %s", mustJSON(t, f))
	}
}
