// Package chattest is the shared harness of the chat transports' tests
// (IRC, XMPP, Twitter): a deployment runs for real on an embedded broker and
// registry, the test talks to a real chat server (or a fake API) from
// outside, and waits for what the transport put on its topics. It also
// starts the chat servers the tests use (prosody, ngircd) as child
// processes on loopback.
//
// It is imported only by tests.
package chattest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Env is a running deployment under test.
type Env struct {
	t             testing.TB
	Broker        *broker.Broker
	Codecs        *schemas.Codecs
	TransportName string

	producer *kgo.Client
	mu       sync.Mutex
	inbound  []*schemas.UserMessage
	outbound []*schemas.UserMessage
	events   []*schemas.Event
	failures []*schemas.Failure
	statuses []*schemas.Status
	notify   chan struct{}
}

// Start runs the workers (YAML list items under "workers:") with kinds on
// a fresh embedded broker, and returns once every worker runs. The
// transport's outbound topic is marked external, so a deployment without
// an application is valid.
func Start(t testing.TB, kinds *topology.Registry, transportName, workersYAML string) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir(), KafkaPort: -1, RegistryPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	cfgText := fmt.Sprintf("cluster:\n  kafka: {brokers: [%s]}\n  schema_registry: {url: %s}\n  partitions: 2\n  state_dir: %s\n  topics:\n    %s.outbound: {external: true}\nworkers:\n%s",
		b.KafkaAddr(), b.RegistryURL(), t.TempDir(), transportName, workersYAML)
	cfg, err := topology.Load("test.yaml", []byte(cfgText), kinds, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{t: t, Broker: b, TransportName: transportName, notify: make(chan struct{}, 1)}
	e.Codecs = schemas.NewCodecs(schemas.NewRegistryClient(b.RegistryURL(), schemas.RegistryClientOptions{}))
	runCtx, stop := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- topology.Run(runCtx, cfg, kinds, topology.RunOptions{Logger: testlog.Stderr(), Ready: func([]string, string) { close(ready) }})
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("deployment: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("deployment did not stop within 30s")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("deployment failed: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("deployment not ready within 60s")
	}
	if err := e.Codecs.UserMessage.Register(ctx, transportName+".outbound"); err != nil {
		t.Fatal(err)
	}
	e.producer, err = kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.producer.Close)
	consumer, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()),
		kgo.ConsumeTopics(transportName+".inbound", transportName+".outbound", transportName+".event", transportName+".failures", topology.TopicStatus),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(consumer.Close)
	go e.consume(runCtx, consumer)
	return e
}

func (e *Env) consume(ctx context.Context, cl *kgo.Client) {
	dec := schemas.NewAnyDecoder(schemas.NewRegistryClient(e.Broker.RegistryURL(), schemas.RegistryClientOptions{}))
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			v, err := dec.Decode(ctx, r.Value)
			if err != nil {
				return
			}
			e.mu.Lock()
			switch x := v.(type) {
			case *schemas.UserMessage:
				if strings.HasSuffix(r.Topic, ".outbound") {
					e.outbound = append(e.outbound, x)
				} else {
					e.inbound = append(e.inbound, x)
				}
			case *schemas.Event:
				e.events = append(e.events, x)
			case *schemas.Failure:
				e.failures = append(e.failures, x)
			case *schemas.Status:
				e.statuses = append(e.statuses, x)
			}
			e.mu.Unlock()
			select {
			case e.notify <- struct{}{}:
			default:
			}
		})
	}
}

// WaitInbound waits for an inbound message matching match.
func (e *Env) WaitInbound(match func(*schemas.UserMessage) bool, within time.Duration) *schemas.UserMessage {
	e.t.Helper()
	return waitFor(e, within, "inbound message", &e.inbound, match)
}

// WaitOutbound waits for an outbound message (an application's reply)
// matching match.
func (e *Env) WaitOutbound(match func(*schemas.UserMessage) bool, within time.Duration) *schemas.UserMessage {
	e.t.Helper()
	return waitFor(e, within, "outbound message", &e.outbound, match)
}

// WaitEvent waits for an event matching match.
func (e *Env) WaitEvent(match func(*schemas.Event) bool, within time.Duration) *schemas.Event {
	e.t.Helper()
	return waitFor(e, within, "event", &e.events, match)
}

// WaitFailure waits for a failure matching match.
func (e *Env) WaitFailure(match func(*schemas.Failure) bool, within time.Duration) *schemas.Failure {
	e.t.Helper()
	return waitFor(e, within, "failure", &e.failures, match)
}

// WaitStatus waits for a status event matching match.
func (e *Env) WaitStatus(match func(*schemas.Status) bool, within time.Duration) *schemas.Status {
	e.t.Helper()
	return waitFor(e, within, "status event", &e.statuses, match)
}

// Inbound returns the inbound messages seen so far.
func (e *Env) Inbound() []*schemas.UserMessage {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*schemas.UserMessage(nil), e.inbound...)
}

// Statuses returns the status events seen so far.
func (e *Env) Statuses() []*schemas.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*schemas.Status(nil), e.statuses...)
}

func waitFor[T any](e *Env, within time.Duration, what string, list *[]T, match func(T) bool) T {
	e.t.Helper()
	deadline := time.After(within)
	for {
		e.mu.Lock()
		for _, v := range *list {
			if match(v) {
				e.mu.Unlock()
				return v
			}
		}
		e.mu.Unlock()
		select {
		case <-e.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			e.t.Fatalf("no matching %s within %v", what, within)
			var zero T
			return zero
		}
	}
}

// SendOutbound produces an outbound message as an application would.
func (e *Env) SendOutbound(m *schemas.UserMessage) {
	e.t.Helper()
	v, err := e.Codecs.UserMessage.Encode(m)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := kafka.ProduceSync(context.Background(), e.producer, &kgo.Record{Topic: e.TransportName + ".outbound", Key: topology.OutboundKey(m), Value: v}); err != nil {
		e.t.Fatal(err)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// RequireBinary returns the path of a program, and fails the test (it
// never skips) when it is not installed.
func RequireBinary(t testing.TB, name string, hint string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin/", "/usr/bin/", "/sbin/"} {
		if p, err := exec.LookPath(dir + name); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed: %s (scripts/install-test-deps.sh installs it)", name, hint)
	return ""
}

// Process is a server started by a test.
type Process struct {
	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	out  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartProcess runs a server in the foreground, waits until it accepts TCP
// connections on 127.0.0.1:port, and stops it when the test ends.
func StartProcess(t testing.TB, port int, name string, args ...string) *Process {
	t.Helper()
	p := &Process{t: t, done: make(chan struct{}), out: &lockedBuffer{}}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on %d:\n%s", name, port, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened on %d: %v\n%s", name, port, err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Output is what the process wrote so far.
func (p *Process) Output() string { return p.out.String() }

// Stop terminates the process (and its process group) and waits for it.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}
