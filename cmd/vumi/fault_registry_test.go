package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/schemas/registry"
	"github.com/vumi-kafka/vumi/topology"
)

// registryServer is a schema registry run by the test on a fixed loopback
// port over the broker's _schemas topic, so that it can be stopped and
// started again while the workers run (its state is the topic's).
type registryServer struct {
	reg *registry.Registry
	srv *http.Server
	ln  net.Listener
}

func startRegistry(t *testing.T, kafka string, port int) *registryServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg, err := registry.New(ctx, registry.Config{Brokers: []string{kafka}, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for {
		// The port was ours a moment ago; a restart may find it in
		// TIME_WAIT for an instant.
		if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := &registryServer{reg: reg, ln: ln, srv: &http.Server{Handler: reg.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(r.stop)
	return r
}

func (r *registryServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
	_ = r.reg.Close()
}

// writeRegistryFaultConfig writes the deployment of the registry fault
// tests into dir: the broker at kafka, a registry on 127.0.0.1:regPort
// (started by the test when it wants it up), sms.inbound external, and
// workers (YAML list items). It returns the file's path.
func writeRegistryFaultConfig(t *testing.T, dir, kafka string, regPort int, workers string) string {
	t.Helper()
	cfgFile := filepath.Join(dir, "vumi.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`cluster:
  kafka: {brokers: [%s]}
  schema_registry: {url: "http://127.0.0.1:%d"}
  state_dir: %s
  partitions: 2
  topics:
    sms.inbound: {external: true}
workers:
%s`, kafka, regPort, filepath.Join(dir, "state"), workers)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgFile
}

// TestSchemaRegistryDown: the workers start while the schema registry is
// down and wait for it (they neither exit nor run without schemas); once
// it is up, messages flow. Then the registry goes down mid-run: the
// schemas the workers cached keep every message flowing, and a worker
// started while it is down waits and starts once it is back. Nothing is
// lost at any point.
func TestSchemaRegistryDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildBinary(t)
	kafkaPort, regPort := freePort(t), freePort(t)
	kafka := fmt.Sprintf("127.0.0.1:%d", kafkaPort)
	dir := t.TempDir()
	cfgFile := writeRegistryFaultConfig(t, dir, kafka, regPort, echoDevnullWorkers)
	broker := start(t, bin, nil, "broker", "-no-registry", "-data-dir", filepath.Join(dir, "data"), "-kafka-port", fmt.Sprint(kafkaPort))
	app := start(t, bin, workerEnv, "worker", "-c", cfgFile, "echo")

	// The worker waits for the registry, says so, and does not exit.
	waitLog(t, app, "schema registry unreachable; waiting", 60*time.Second)
	select {
	case err := <-app.exited:
		t.Fatalf("the worker exited while the registry was down: %v\n%s", err, app.stderr.String())
	case <-time.After(3 * time.Second):
	}
	reg := startRegistry(t, kafka, regPort)
	waitLog(t, app, "deployment running", 60*time.Second)
	transport := start(t, bin, workerEnv, "worker", "-c", cfgFile, "devnull")
	waitLog(t, transport, "deployment running", 60*time.Second)

	p := &pipeline{kafkaPort: kafkaPort, regPort: regPort}
	p.codecs = schemas.NewCodecs(schemas.NewRegistryClient(fmt.Sprintf("http://127.0.0.1:%d", regPort), schemas.RegistryClientOptions{}))
	var err error
	if p.cl, err = kgo.NewClient(kgo.SeedBrokers(kafka)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.cl.Close)
	if err := p.codecs.UserMessage.Register(ctx, "sms.inbound"); err != nil {
		t.Fatal(err)
	}
	waitTopics(t, ctx, p.cl, "sms.inbound", "sms.event")
	sent := produceInbound(t, ctx, p, 0, 200)
	p.verify(t, ctx, sent)

	// Mid-run: the registry goes away. Cached schemas keep messages
	// flowing (the test's producer uses its cached id too).
	reg.stop()
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/subjects", regPort)); err == nil {
		t.Fatal("the registry still answers after stop")
	}
	more := produceInbound(t, ctx, p, 200, 200)
	p.verify(t, ctx, append(sent, more...))

	// A worker restarted while the registry is down waits for it, and
	// registers its schemas once it is back; meanwhile its messages wait
	// in Kafka.
	transport.stop(t)
	transport = start(t, bin, workerEnv, "worker", "-c", cfgFile, "devnull")
	waitLog(t, transport, "schema registry unreachable; waiting", 60*time.Second)
	last := produceInbound(t, ctx, p, 400, 200)
	startRegistry(t, kafka, regPort)
	waitLog(t, transport, "deployment running", 60*time.Second)
	p.verify(t, ctx, append(append(sent, more...), last...))

	app.stop(t)
	transport.stop(t)
	broker.stop(t)
}

// produceInbound produces n inbound messages numbered from first.
func produceInbound(t *testing.T, ctx context.Context, p *pipeline, first, n int) []string {
	t.Helper()
	var ids []string
	for i := first; i < first+n; i++ {
		m := schemas.NewUserMessage()
		m.FromAddr, m.ToAddr = schemas.String(fmt.Sprintf("+2783%07d", i%50)), schemas.String("1234")
		m.Content = schemas.String(fmt.Sprintf("message %d", i))
		v, err := p.codecs.UserMessage.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.cl.ProduceSync(ctx, &kgo.Record{Topic: "sms.inbound", Key: topology.InboundKey(m), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.MessageID)
	}
	return ids
}

func waitTopics(t *testing.T, ctx context.Context, cl *kgo.Client, topics ...string) {
	t.Helper()
	for {
		tds, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
		ok := err == nil && len(tds) == len(topics)
		for _, td := range tds {
			ok = ok && td.Err == nil
		}
		if ok {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("topics %v never created", topics)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLog waits until the process has logged text.
func waitLog(t *testing.T, p *process, text string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.stderr.String(), text) {
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("%v exited (%v) before logging %q:\n%s", p.cmd.Args, err, text, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not log %q within %v:\n%s", p.cmd.Args, text, within, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
