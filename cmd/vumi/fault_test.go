package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// TestKillWorkersUnderLoad: a pipeline of separate processes (vumi broker;
// the echo application; a devnull transport acking the replies) takes a
// steady stream of inbound messages while each worker in turn is killed
// with SIGKILL and started again. Every message still gets its reply and
// every reply its ack; duplicates are counted and reported.
func TestKillWorkersUnderLoad(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	kafkaPort, regPort := freePort(t), freePort(t)
	cfgFile := filepath.Join(dir, "pipeline.yaml")
	cfgText := fmt.Sprintf(`cluster:
  embedded: {data_dir: %s, kafka_port: %d, registry_port: %d}
  partitions: 4
  topics:
    sms.inbound: {external: true}
workers:
  - name: echo
    kind: echo
    transport_name: sms
  - name: devnull
    kind: devnull
    transport_name: sms
    ack_rate: 1
    failure_rate: 0
    reply_rate: 0
    amqp_prefetch_count: 50
`, filepath.Join(dir, "data"), kafkaPort, regPort)
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := start(t, bin, nil, "broker", "-data-dir", filepath.Join(dir, "data"), "-kafka-port", fmt.Sprint(kafkaPort), "-registry-port", fmt.Sprint(regPort))
	defer broker.stop(t)
	workerEnv := []string{"VUMI_METRICS_ADDR="}
	app := start(t, bin, workerEnv, "worker", "-c", cfgFile, "echo")
	transport := start(t, bin, workerEnv, "worker", "-c", cfgFile, "devnull")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	brokerAddr := fmt.Sprintf("127.0.0.1:%d", kafkaPort)
	codecs := schemas.NewCodecs(schemas.NewRegistryClient(fmt.Sprintf("http://127.0.0.1:%d", regPort), schemas.RegistryClientOptions{}))
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Wait until the workers have created the topics.
	for {
		tds, err := kadm.NewClient(cl).ListTopics(ctx, "sms.inbound", "sms.event")
		if err == nil && len(tds) == 2 && tds["sms.inbound"].Err == nil && tds["sms.event"].Err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("topics never created")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := codecs.UserMessage.Register(ctx, "sms.inbound"); err != nil {
		t.Fatal(err)
	}

	// A steady stream of 1,500 messages at about 500/s.
	const n = 1500
	sent := make([]string, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := range n {
			<-tick.C
			m := schemas.NewUserMessage()
			m.FromAddr, m.ToAddr = schemas.String(fmt.Sprintf("+2783%07d", i%200)), schemas.String("1234")
			m.Content = schemas.String(fmt.Sprintf("message %d", i))
			sent[i] = m.MessageID
			v, err := codecs.UserMessage.Encode(m)
			if err != nil {
				t.Error(err)
				return
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sms.inbound", Key: topology.InboundKey(m), Value: v}).FirstErr(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// Kill each worker once, mid-stream, and bring it back.
	time.Sleep(800 * time.Millisecond)
	kill(t, app)
	app = start(t, bin, workerEnv, "worker", "-c", cfgFile, "echo")
	time.Sleep(800 * time.Millisecond)
	kill(t, transport)
	transport = start(t, bin, workerEnv, "worker", "-c", cfgFile, "devnull")
	wg.Wait()

	// Every inbound message gets a reply, and every reply an ack.
	reader, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr), kgo.ConsumeTopics("sms.outbound", "sms.event"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	replyTo := map[string]string{} // reply id -> inbound id
	replies := map[string]int{}    // inbound id -> replies
	acks := map[string]int{}       // reply id -> acks
	complete := func() bool {
		for _, id := range sent {
			if replies[id] == 0 {
				return false
			}
		}
		for r := range replyTo {
			if acks[r] == 0 {
				return false
			}
		}
		return true
	}
	for !complete() {
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			missingReplies, missingAcks := 0, 0
			for _, id := range sent {
				if replies[id] == 0 {
					missingReplies++
				}
			}
			for r := range replyTo {
				if acks[r] == 0 {
					missingAcks++
				}
			}
			t.Fatalf("timed out: %d messages without a reply, %d replies without an ack", missingReplies, missingAcks)
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case "sms.outbound":
				var m schemas.UserMessage
				if err := codecs.UserMessage.Decode(r.Value, &m); err != nil {
					t.Fatal(err)
				}
				replyTo[m.MessageID] = *m.InReplyTo
				replies[*m.InReplyTo]++
			case "sms.event":
				var e schemas.Event
				if err := codecs.Event.Decode(r.Value, &e); err != nil {
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
	t.Logf("%d messages: all replied and acked; %d duplicate replies, %d duplicate acks (at-least-once after SIGKILL)", n, dupReplies, dupAcks)
	app.stop(t)
	transport.stop(t)
}

func kill(t *testing.T, p *process) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}
