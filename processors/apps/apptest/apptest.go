// Package apptest is the shared test harness of the application packages:
// an embedded broker and registry, a deployment of application workers on
// it, inbound messages and events produced as a transport would, and the
// outbound and failures topics read back. It is imported by tests only.
package apptest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/testcluster"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Cluster is an embedded broker and registry for one test (its consumers
// and Collect are testcluster's).
type Cluster struct {
	*testcluster.Cluster
	// Log, when set, receives the deployments' logs.
	Log *slog.Logger
}

// Partitions of every topic of a test deployment.
const Partitions = 2

// Start starts an embedded broker that lives as long as the test.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return &Cluster{Cluster: testcluster.Start(t)}
}

// Config is a deployment of workers (YAML under "workers:") on the cluster;
// the sms and other transports' topics are external.
func (c *Cluster) Config(workers string) string {
	return c.ClusterYAML(Partitions, c.State, "sms.inbound", "sms.event", "sms.outbound", "other.inbound", "other.event", "other.outbound") + "workers:\n" + workers
}

// Deployment is a running config.
type Deployment = testcluster.Deployment

// Run runs the workers with the kinds until the test ends or Stop.
func (c *Cluster) Run(t testing.TB, kinds func() *topology.Registry, workers string) *Deployment {
	t.Helper()
	return testcluster.RunText(t, c.Config(workers), kinds, topology.RunOptions{Logger: c.Log}, testcluster.RunOptions{})
}

// Recorder is a slog handler that keeps every record, for tests that
// check what was logged.
type Recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

// Enabled implements slog.Handler.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.records = append(r.records, rec.Clone())
	r.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler (attributes are dropped).
func (r *Recorder) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup implements slog.Handler.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Lines returns "LEVEL message" of every record so far.
func (r *Recorder) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.records))
	for i, rec := range r.records {
		out[i] = rec.Level.String() + " " + rec.Message
	}
	return out
}

// Messages returns the user messages among got.
func Messages(got []any) []*schemas.UserMessage {
	var out []*schemas.UserMessage
	for _, v := range got {
		if m, ok := v.(*schemas.UserMessage); ok {
			out = append(out, m)
		}
	}
	return out
}

// Failures returns the failures among got.
func Failures(got []any) []*schemas.Failure {
	var out []*schemas.Failure
	for _, v := range got {
		if f, ok := v.(*schemas.Failure); ok {
			out = append(out, f)
		}
	}
	return out
}

// Producer publishes to the cluster as the sms transport would.
type Producer struct {
	c  *Cluster
	cl *kgo.Client
}

// Producer returns a producer that lives as long as the test.
func (c *Cluster) Producer(t testing.TB) *Producer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx := context.Background()
	for _, topic := range []string{"sms.inbound", "sms.event", "other.inbound", "other.event"} {
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, Partitions, 1, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			t.Fatal(err)
		}
	}
	if err := c.Codecs.UserMessage.Register(ctx, "sms.inbound", "other.inbound"); err != nil {
		t.Fatal(err)
	}
	if err := c.Codecs.Event.Register(ctx, "sms.event"); err != nil {
		t.Fatal(err)
	}
	return &Producer{c: c, cl: cl}
}

// Inbound publishes user messages on sms.inbound.
func (p *Producer) Inbound(t testing.TB, msgs ...*schemas.UserMessage) {
	t.Helper()
	p.InboundTo(t, "sms.inbound", msgs...)
}

// InboundTo publishes user messages on an inbound topic.
func (p *Producer) InboundTo(t testing.TB, topic string, msgs ...*schemas.UserMessage) {
	t.Helper()
	for _, m := range msgs {
		v, err := p.c.Codecs.UserMessage.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := kafka.ProduceSync(context.Background(), p.cl, &kgo.Record{Topic: topic, Key: topology.InboundKey(m), Value: v}); err != nil {
			t.Fatal(err)
		}
	}
}

// Events publishes events on sms.event.
func (p *Producer) Events(t testing.TB, evs ...*schemas.Event) {
	t.Helper()
	for _, e := range evs {
		v, err := p.c.Codecs.Event.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := kafka.ProduceSync(context.Background(), p.cl, &kgo.Record{Topic: "sms.event", Key: topology.EventKey(e), Value: v}); err != nil {
			t.Fatal(err)
		}
	}
}

// Inbound is a user message from an end user to 1234 on the sms transport.
func Inbound(from, content string) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr = schemas.String(from), schemas.String("1234")
	m.Content = schemas.String(content)
	m.TransportName, m.TransportType = schemas.String("sms"), schemas.String("sms")
	return m
}

// Ack is an ack of a message on the sms transport.
func Ack(userMessageID string) *schemas.Event {
	return &schemas.Event{
		EventID: schemas.GenerateID(), EventType: schemas.EventAck,
		UserMessageID: userMessageID, SentMessageID: schemas.String("sent-" + userMessageID),
		TransportName: schemas.String("sms"), Timestamp: schemas.Now(),
	}
}
