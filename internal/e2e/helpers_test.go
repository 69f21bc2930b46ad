// Package e2e holds end-to-end tests: real deployments on the embedded
// broker and registry, driven from outside as a user would.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/archive"
	"github.com/vumi-kafka/vumi/connectors/devnull"
	"github.com/vumi-kafka/vumi/connectors/httpapi"
	"github.com/vumi-kafka/vumi/connectors/smpp"
	"github.com/vumi-kafka/vumi/connectors/telnet"
	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/app"
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
	b     *broker.Broker
	state string
	// external lists more topics written from outside the deployment.
	external []string
	codecs   *schemas.Codecs
	any      *schemas.AnyDecoder
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir(), KafkaPort: -1, RegistryPort: -1, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	reg := schemas.NewRegistryClient(b.RegistryURL(), schemas.RegistryClientOptions{})
	return &cluster{b: b, state: t.TempDir(), codecs: schemas.NewCodecs(reg), any: schemas.NewAnyDecoder(reg)}
}

// config is a deployment on the test's cluster.
func (c *cluster) config(workers string) string {
	return fmt.Sprintf(`cluster:
  kafka:
    brokers: [%s]
  schema_registry:
    url: %s
  partitions: 2
  state_dir: %s
  topics:
    sms.inbound: {external: true}
    sms.event: {external: true}
    sms.outbound: {external: true}
    dn.outbound: {external: true}
    api.outbound: {external: true}
%sworkers:
%s`, c.b.KafkaAddr(), c.b.RegistryURL(), c.state, c.externalTopics(), workers)
}

func (c *cluster) externalTopics() string {
	var b strings.Builder
	for _, t := range c.external {
		fmt.Fprintf(&b, "    %s: {external: true}\n", t)
	}
	return b.String()
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
	done chan error
}

func run(t testing.TB, c *cluster, workers string, only ...string) *deployment {
	t.Helper()
	return runConfig(t, c.config(workers), only...)
}

// runConfig runs a whole config text until the test ends or stop is called.
func runConfig(t testing.TB, text string, only ...string) *deployment {
	t.Helper()
	cfg, err := topology.Load("test.yaml", []byte(text), kinds(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	d := &deployment{done: make(chan error, 1)}
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-d.done:
				if err != nil {
					t.Errorf("deployment: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("deployment did not stop within 30s")
			}
		})
	}
	go func() {
		d.done <- topology.Run(ctx, cfg, kinds(), topology.RunOptions{Workers: only, Logger: testlog.New(t), Ready: func([]string, string) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-d.done:
		cancel()
		t.Fatalf("deployment failed to start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("deployment not ready within 60s")
	}
	t.Cleanup(d.stop)
	return d
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// consumer reads topics from the start.
func (c *cluster) consumer(t *testing.T, topics ...string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.b.KafkaAddr()), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// collect decodes records from cl until done says stop or the time is up.
func (c *cluster) collect(t *testing.T, cl *kgo.Client, within time.Duration, done func([]any) bool) []any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var got []any
	for !done(got) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out after %v with %d records", within, len(got))
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			v, err := c.any.Decode(ctx, r.Value)
			if err != nil {
				t.Fatalf("decode %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			got = append(got, v)
		})
	}
	return got
}

// produceInbound publishes inbound user messages as a transport would. It
// may run on another goroutine: failures are reported with t.Error.
func (c *cluster) produceInbound(t *testing.T, msgs ...*schemas.UserMessage) {
	if err := c.produceInboundErr(msgs...); err != nil {
		t.Error(err)
	}
}

func (c *cluster) produceInboundErr(msgs ...*schemas.UserMessage) error {
	ctx := context.Background()
	if err := c.codecs.UserMessage.Register(ctx, "sms.inbound"); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.b.KafkaAddr()))
	if err != nil {
		return err
	}
	defer cl.Close()
	// The deployment creates its topics; a test producing first creates
	// the topic with the deployment's partition count.
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "sms.inbound"); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return err
	}
	for _, m := range msgs {
		v, err := c.codecs.UserMessage.Encode(m)
		if err != nil {
			return err
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sms.inbound", Key: topology.InboundKey(m), Value: v}).FirstErr(); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}
	return nil
}

func inbound(from, content string) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr = schemas.String(from), schemas.String("1234")
	m.Content = schemas.String(content)
	m.TransportName, m.TransportType = schemas.String("sms"), schemas.String("sms")
	return m
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
