// Package e2e holds end-to-end tests: real deployments on the embedded
// broker and registry, driven from outside as a user would.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vumi-kafka/vumi/connectors/archive"
	"github.com/vumi-kafka/vumi/connectors/devnull"
	"github.com/vumi-kafka/vumi/connectors/httpapi"
	"github.com/vumi-kafka/vumi/connectors/smpp"
	"github.com/vumi-kafka/vumi/connectors/telnet"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/internal/testcluster"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/processors/apps/apptest"
	"github.com/vumi-kafka/vumi/processors/apps/sendapi"
	"github.com/vumi-kafka/vumi/processors/apps/words"
	"github.com/vumi-kafka/vumi/processors/failures"
	"github.com/vumi-kafka/vumi/processors/messagestore"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/processors/middleware/builtin"
	"github.com/vumi-kafka/vumi/processors/routers"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// cluster is an embedded broker + registry for one test.
type cluster struct {
	*testcluster.Cluster
	// external lists more topics written from outside the deployment.
	external []string
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	return &cluster{Cluster: testcluster.Start(t)}
}

// config is a deployment on the test's cluster.
func (c *cluster) config(workers string) string {
	external := append([]string{"sms.inbound", "sms.event", "sms.outbound", "dn.outbound", "api.outbound"}, c.external...)
	return c.ClusterYAML(2, c.State, external...) + "workers:\n" + workers
}

// kinds is the registry of the tests: the shipped kinds plus test ones.
func kinds() *topology.Registry {
	r := topology.NewRegistry()
	r.Add(telnet.Kinds()...)
	r.Add(devnull.Kind())
	r.Add(httpapi.Kind())
	r.Add(sendapi.Kind())
	r.Add(failures.Kind(), flakyKind())
	r.Add(words.Kinds()...)
	r.Add(failingKind(), benchTransportKind(), counterKind())
	r.Add(routers.Kinds()...)
	r.Add(phoneKind())
	r.Add(messagestore.Kind())
	r.Add(archive.Kind())
	r.Add(smpp.Kinds()...)
	r.AddMiddleware(builtin.Kinds()...)
	r.AddMiddleware(stampKind(), brokenKind())
	return r
}

// deployment runs a config until the test ends or stop is called.
type deployment struct {
	stop func()
}

func run(t testing.TB, c *cluster, workers string, only ...string) *deployment {
	t.Helper()
	return runConfig(t, c.config(workers), only...)
}

// runConfig runs a whole config text until the test ends or stop is called.
func runConfig(t testing.TB, text string, only ...string) *deployment {
	t.Helper()
	d := testcluster.RunText(t, text, kinds, topology.RunOptions{Workers: only}, testcluster.RunOptions{})
	return &deployment{stop: d.Stop}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	return transporttest.FreePort(t)
}

// produceInbound publishes inbound user messages as a transport would. It
// may run on another goroutine: failures are reported with t.Error.
func (c *cluster) produceInbound(t *testing.T, msgs ...*schemas.UserMessage) {
	if err := c.produceInboundErr(msgs...); err != nil {
		t.Error(err)
	}
}

// produceInboundErr publishes on sms.inbound; a test producing before the
// deployment made its topics creates the topic with the deployment's
// partition count.
func (c *cluster) produceInboundErr(msgs ...*schemas.UserMessage) error {
	return c.ProduceInbound("sms.inbound", 2, msgs...)
}

// inbound is a user message from an end user to 1234 on sms.
func inbound(from, content string) *schemas.UserMessage {
	return apptest.Inbound(from, content)
}

// failingKind is an application that fails on purpose: "fail" is a
// permanent failure, "panic" panics, anything else is echoed.
func failingKind() *topology.Kind {
	return &topology.Kind{
		Name: "failing", Role: topology.RoleApplication,
		NewConfig: func() topology.WorkerConfig { return &words.Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return app.Worker(deps, spec, &spec.Config.(*words.Config).Config, failingApp{}, app.Options{}), nil
		},
	}
}

type failingApp struct{}

func (failingApp) ConsumeUserMessage(c *app.Context, m *schemas.UserMessage) error {
	switch m.Text() {
	case "fail":
		return worker.Permanent(errors.New("cannot handle fail"))
	case "panic":
		panic("application bug")
	}
	return c.ReplyTo(m, m.Text(), true)
}

// stamp is a test middleware that records, in helper_metadata.trail, every
// place a user message passed it: "<name>:<phase>".
type stamp struct{ name string }

type stampConfig struct{}

func (stampConfig) Validate() error { return nil }

func stampKind() *topology.MiddlewareKind {
	return &topology.MiddlewareKind{
		Name:      "stamp",
		NewConfig: func() topology.MiddlewareConfig { return stampConfig{} },
		Build: func(_ *topology.Deps, _ string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
			return &stamp{name: spec.Name}, nil
		},
	}
}

func (s *stamp) Name() string { return s.name }

func (s *stamp) add(m *schemas.UserMessage, c middleware.Context) *schemas.UserMessage {
	if m.HelperMetadata == nil {
		m.HelperMetadata = schemas.Metadata{}
	}
	trail, _ := m.HelperMetadata["trail"].([]any)
	m.HelperMetadata["trail"] = append(trail, s.name+":"+c.Phase.String())
	return m
}

func (s *stamp) HandleInbound(_ context.Context, m *schemas.UserMessage, c middleware.Context) (*schemas.UserMessage, error) {
	return s.add(m, c), nil
}

func (s *stamp) HandleOutbound(_ context.Context, m *schemas.UserMessage, c middleware.Context) (*schemas.UserMessage, error) {
	return s.add(m, c), nil
}

// counterKind is an application that counts each user's messages in the
// group table and replies with the count.
func counterKind() *topology.Kind {
	return &topology.Kind{
		Name: "counter", Role: topology.RoleApplication, Summary: "counts messages per user",
		NewConfig: func() topology.WorkerConfig { return &words.Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return app.Worker(deps, spec, &spec.Config.(*words.Config).Config, counterApp{}, app.Options{}), nil
		},
	}
}

type counterApp struct{}

func (counterApp) ConsumeUserMessage(c *app.Context, m *schemas.UserMessage) error {
	var n int
	if _, err := c.LoadState(&n); err != nil {
		return err
	}
	n++
	if err := c.SaveState(n); err != nil {
		return err
	}
	return c.ReplyTo(m, fmt.Sprint(n), true)
}
