// Package testcluster is the embedded cluster shared by the tests that run
// real deployments: an embedded broker and schema registry that live as
// long as a test, its codecs, consumers that read topics back from the
// start and decode them, a producer of inbound user messages as a
// transport would publish them, and a deployment runner. It is imported
// by tests only.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Cluster is an embedded broker and registry for one test.
type Cluster struct {
	B *broker.Broker
	// State is a state directory for the test's deployments.
	State  string
	Codecs *schemas.Codecs
	Any    *schemas.AnyDecoder
}

// Start starts an embedded broker and registry that live as long as the
// test.
func Start(t testing.TB) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir(), KafkaPort: -1, RegistryPort: -1, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	reg := schemas.NewRegistryClient(b.RegistryURL(), schemas.RegistryClientOptions{})
	return &Cluster{B: b, State: t.TempDir(), Codecs: schemas.NewCodecs(reg), Any: schemas.NewAnyDecoder(reg)}
}

// Consumer reads topics from the start.
func (c *Cluster) Consumer(t testing.TB, topics ...string) *kgo.Client {
	t.Helper()
	return c.ConsumerWith(t, nil, topics...)
}

// ConsumerWith is Consumer with more client options.
func (c *Cluster) ConsumerWith(t testing.TB, opts []kgo.Opt, topics ...string) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond)}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Collect decodes records from cl until done says stop or the time is up
// (a failure of the test). Fetch errors are logged.
func (c *Cluster) Collect(t testing.TB, cl *kgo.Client, within time.Duration, done func([]any) bool) []any {
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
			v, err := c.Any.Decode(ctx, r.Value)
			if err != nil {
				t.Fatalf("decode %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			got = append(got, v)
		})
	}
	return got
}

// ProduceInbound publishes user messages on an inbound topic as a
// transport would, creating the topic with partitions partitions when
// the test produces before the deployment made it. It may run on another
// goroutine (it reports rather than fails).
func (c *Cluster) ProduceInbound(topic string, partitions int32, msgs ...*schemas.UserMessage) error {
	ctx := context.Background()
	if err := c.Codecs.UserMessage.Register(ctx, topic); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()))
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return err
	}
	for _, m := range msgs {
		v, err := c.Codecs.UserMessage.Encode(m)
		if err != nil {
			return err
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: topology.InboundKey(m), Value: v}).FirstErr(); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}
	return nil
}

// Deployment is a running config.
type Deployment struct {
	// Stop stops the deployment (once; later calls do nothing) and fails
	// the test if it ended with an error or did not stop within the
	// deployment's stop timeout.
	Stop func()
	done chan error
}

// RunOptions are the test-side options of Run.
type RunOptions struct {
	// StopWithin is how long Stop waits for the deployment (30s if zero).
	StopWithin time.Duration
	// ReadyWithin is how long Run waits for it to be ready (60s if zero).
	ReadyWithin time.Duration
	// IgnoreStopError has Stop not report the error the deployment
	// ended with.
	IgnoreStopError bool
}

// Run runs cfg with the kinds until the test ends or Stop is called. The
// options' Ready is set here; a nil Logger logs to the test.
func Run(t testing.TB, cfg *topology.Config, kinds func() *topology.Registry, opts topology.RunOptions, ro RunOptions) *Deployment {
	t.Helper()
	if ro.StopWithin == 0 {
		ro.StopWithin = 30 * time.Second
	}
	if ro.ReadyWithin == 0 {
		ro.ReadyWithin = 60 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = testlog.New(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	opts.Ready = func([]string, string) { close(ready) }
	d := &Deployment{done: make(chan error, 1)}
	var once sync.Once
	d.Stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-d.done:
				if err != nil && !ro.IgnoreStopError {
					t.Errorf("deployment: %v", err)
				}
			case <-time.After(ro.StopWithin):
				t.Errorf("deployment did not stop within %v", ro.StopWithin)
			}
		})
	}
	go func() {
		d.done <- topology.Run(ctx, cfg, kinds(), opts)
	}()
	select {
	case <-ready:
	case err := <-d.done:
		cancel()
		t.Fatalf("deployment failed to start: %v", err)
	case <-time.After(ro.ReadyWithin):
		cancel()
		t.Fatalf("deployment not ready within %v", ro.ReadyWithin)
	}
	t.Cleanup(d.Stop)
	return d
}

// RunText loads a config text (as test.yaml) and runs it as Run does.
func RunText(t testing.TB, text string, kinds func() *topology.Registry, opts topology.RunOptions, ro RunOptions) *Deployment {
	t.Helper()
	cfg, err := topology.Load("test.yaml", []byte(text), kinds(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return Run(t, cfg, kinds, opts, ro)
}

// WaitFor polls cond every 100ms until it holds, failing the test after
// within.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ClusterYAML is the cluster section of a deployment config on c: its
// broker and registry, the partitions of every topic, a state dir and the
// topics written from outside the deployment. Batches are not compressed,
// as with `vumi run`'s embedded broker (loopback).
func (c *Cluster) ClusterYAML(partitions int, stateDir string, external ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `cluster:
  kafka:
    brokers: [%s]
    compression: none
  schema_registry:
    url: %s
  partitions: %d
  state_dir: %s
`, c.B.KafkaAddr(), c.B.RegistryURL(), partitions, stateDir)
	if len(external) > 0 {
		b.WriteString("  topics:\n")
	}
	for _, t := range external {
		fmt.Fprintf(&b, "    %s: {external: true}\n", t)
	}
	return b.String()
}
