package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// pipeline is a vumi broker process, the echo application and a devnull
// transport acking the replies, each its own process.
type pipeline struct {
	bin, cfgFile, dataDir  string
	kafkaPort, regPort     int
	broker, app, transport *process
	codecs                 *schemas.Codecs
	cl                     *kgo.Client
}

var workerEnv = []string{"VUMI_METRICS_ADDR="}

// echoDevnullWorkers is the deployment of the fault tests: the echo
// application and a devnull transport on sms that acks everything
// (worker options may follow, for devnull).
const echoDevnullWorkers = `  - name: echo
    kind: echo
    transport_name: sms
  - name: devnull
    kind: devnull
    transport_name: sms
    ack_rate: 1
    failure_rate: 0
    reply_rate: 0
`

func startPipeline(t *testing.T, ctx context.Context) *pipeline {
	p := &pipeline{bin: buildBinary(t), kafkaPort: freePort(t), regPort: freePort(t)}
	dir := t.TempDir()
	p.dataDir = filepath.Join(dir, "data")
	p.cfgFile = filepath.Join(dir, "pipeline.yaml")
	cfgText := fmt.Sprintf(`cluster:
  embedded: {data_dir: %s, kafka_port: %d, registry_port: %d}
  partitions: 4
  topics:
    sms.inbound: {external: true}
workers:
%s    amqp_prefetch_count: 50
`, p.dataDir, p.kafkaPort, p.regPort, echoDevnullWorkers)
	if err := os.WriteFile(p.cfgFile, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	p.startBroker(t)
	p.app = start(t, p.bin, workerEnv, "worker", "-c", p.cfgFile, "echo")
	p.transport = start(t, p.bin, workerEnv, "worker", "-c", p.cfgFile, "devnull")
	p.codecs = schemas.NewCodecs(schemas.NewRegistryClient(fmt.Sprintf("http://127.0.0.1:%d", p.regPort), schemas.RegistryClientOptions{}))
	var err error
	if p.cl, err = kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", p.kafkaPort))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.cl.Close)
	// Wait until the workers have created the topics.
	for {
		tds, err := kadm.NewClient(p.cl).ListTopics(ctx, "sms.inbound", "sms.event")
		if err == nil && len(tds) == 2 && tds["sms.inbound"].Err == nil && tds["sms.event"].Err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("topics never created")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The registry may still be loading its topic (the workers create
	// topics before they register schemas): retry until it answers.
	for {
		err := p.codecs.UserMessage.Register(ctx, "sms.inbound")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

func (p *pipeline) startBroker(t *testing.T) {
	p.broker = start(t, p.bin, nil, "broker", "-data-dir", p.dataDir, "-kafka-port", fmt.Sprint(p.kafkaPort), "-registry-port", fmt.Sprint(p.regPort))
}

// load produces n inbound messages at about 500/s, retrying each until the
// broker takes it (the broker may be restarting), and returns their ids.
func (p *pipeline) load(t *testing.T, ctx context.Context, n int, done chan<- []string) {
	sent := make([]string, n)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		<-tick.C
		m := schemas.NewUserMessage()
		m.FromAddr, m.ToAddr = schemas.String(fmt.Sprintf("+2783%07d", i%200)), schemas.String("1234")
		m.Content = schemas.String(fmt.Sprintf("message %d", i))
		sent[i] = m.MessageID
		v, err := p.codecs.UserMessage.Encode(m)
		if err != nil {
			t.Error(err)
			break
		}
		for ctx.Err() == nil {
			if err := p.cl.ProduceSync(ctx, &kgo.Record{Topic: "sms.inbound", Key: topology.InboundKey(m), Value: v}).FirstErr(); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	done <- sent
}

// verify checks every sent message got a reply and every reply an ack.
func (p *pipeline) verify(t *testing.T, ctx context.Context, sent []string) {
	reader, err := kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", p.kafkaPort)), kgo.ConsumeTopics("sms.outbound", "sms.event"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	replyTo := map[string]string{}
	replies := map[string]int{}
	acks := map[string]int{}
	missing := func() (int, int) {
		r, a := 0, 0
		for _, id := range sent {
			if replies[id] == 0 {
				r++
			}
		}
		for id := range replyTo {
			if acks[id] == 0 {
				a++
			}
		}
		return r, a
	}
	for {
		if r, a := missing(); r == 0 && a == 0 {
			break
		}
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			r, a := missing()
			t.Fatalf("timed out: %d messages without a reply, %d replies without an ack", r, a)
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case "sms.outbound":
				var m schemas.UserMessage
				if err := p.codecs.UserMessage.Decode(r.Value, &m); err != nil {
					t.Fatal(err)
				}
				replyTo[m.MessageID] = *m.InReplyTo
				replies[*m.InReplyTo]++
			case "sms.event":
				var e schemas.Event
				if err := p.codecs.Event.Decode(r.Value, &e); err != nil {
					t.Fatal(err)
				}
				if e.EventType == schemas.EventAck {
					acks[e.UserMessageID]++
				}
			}
		})
	}
	dupReplies, dupAcks := 0, 0
	for _, c := range replies {
		dupReplies += c - 1
	}
	for _, c := range acks {
		dupAcks += c - 1
	}
	t.Logf("%d messages: all replied and acked; %d duplicate replies, %d duplicate acks (at-least-once)", len(sent), dupReplies, dupAcks)
}

// TestKillWorkersUnderLoad: while the pipeline takes a steady stream of
// inbound messages, each worker in turn is killed with SIGKILL and started
// again. Every message still gets its reply and every reply its ack.
func TestKillWorkersUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p := startPipeline(t, ctx)
	done := make(chan []string, 1)
	go p.load(t, ctx, 1500, done)
	time.Sleep(800 * time.Millisecond)
	kill(t, p.app)
	p.app = start(t, p.bin, workerEnv, "worker", "-c", p.cfgFile, "echo")
	time.Sleep(800 * time.Millisecond)
	kill(t, p.transport)
	p.transport = start(t, p.bin, workerEnv, "worker", "-c", p.cfgFile, "devnull")
	p.verify(t, ctx, <-done)
	p.app.stop(t)
	p.transport.stop(t)
	p.broker.stop(t)
}

// TestBrokerRestartUnderLoad: the broker is killed with SIGKILL mid-stream
// and started again on its data directory; the workers recover by
// themselves and nothing is lost.
func TestBrokerRestartUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p := startPipeline(t, ctx)
	done := make(chan []string, 1)
	go p.load(t, ctx, 1500, done)
	time.Sleep(1200 * time.Millisecond)
	kill(t, p.broker)
	time.Sleep(500 * time.Millisecond)
	p.startBroker(t)
	p.verify(t, ctx, <-done)
	p.app.stop(t)
	p.transport.stop(t)
	p.broker.stop(t)
}

func kill(t *testing.T, p *process) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}
