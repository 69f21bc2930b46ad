package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
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

// evolvedUserMessage is the user message schema as a newer release of
// another process might write it: one more optional field, at the end.
func evolvedUserMessage(t *testing.T) string {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal([]byte(schemas.UserMessageKind.Text), &s); err != nil {
		t.Fatal(err)
	}
	fields, _ := s["fields"].([]any)
	s["fields"] = append(fields, map[string]any{"name": "x_test_note", "type": []any{"null", "string"}, "default": nil})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUnknownSchemaIDWhileRegistryDown: records written by another
// process with a schema id the workers have never seen (a newer schema
// version) wait on their topics while the registry is down. The
// application (a goka processor) and the transport (the franz-go outbound
// consumer) hold those partitions, say so (log, degraded status), send
// nothing to failures and skip nothing; once the registry is back every
// record is handled exactly once.
func TestUnknownSchemaIDWhileRegistryDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildBinary(t)
	kafkaPort, regPort := freePort(t), freePort(t)
	kafka := fmt.Sprintf("127.0.0.1:%d", kafkaPort)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "vumi.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`cluster:
  kafka: {brokers: [%s]}
  schema_registry: {url: "http://127.0.0.1:%d"}
  state_dir: %s
  partitions: 2
  topics:
    sms.inbound: {external: true}
workers:
  - name: echo
    kind: echo
    transport_name: sms
    publish_status: true
  - name: devnull
    kind: devnull
    transport_name: sms
    ack_rate: 1
    failure_rate: 0
    reply_rate: 0
    publish_status: true
`, kafka, regPort, filepath.Join(dir, "state"))), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := start(t, bin, nil, "broker", "-no-registry", "-data-dir", filepath.Join(dir, "data"), "-kafka-port", fmt.Sprint(kafkaPort))
	app := start(t, bin, workerEnv, "worker", "-c", cfgFile, "echo")
	transport := start(t, bin, workerEnv, "worker", "-c", cfgFile, "devnull")
	// The workers have created their topics (the broker is up) and wait
	// for the registry.
	waitLog(t, app, "schema registry unreachable; waiting", 60*time.Second)
	reg := startRegistry(t, kafka, regPort)
	waitLog(t, app, "deployment running", 60*time.Second)
	waitLog(t, transport, "deployment running", 60*time.Second)

	// Another process registers a newer version of the schema, and
	// writes with it while the registry is down.
	regClient := schemas.NewRegistryClient(fmt.Sprintf("http://127.0.0.1:%d", regPort), schemas.RegistryClientOptions{})
	codecs := schemas.NewCodecs(regClient)
	if err := codecs.UserMessage.Register(ctx, "sms.inbound", "sms.outbound"); err != nil {
		t.Fatal(err)
	}
	evolved := evolvedUserMessage(t)
	var newID int
	for _, subject := range []string{"sms.inbound-value", "sms.outbound-value"} {
		id, err := regClient.Register(ctx, subject, evolved)
		if err != nil {
			t.Fatalf("register the evolved schema: %v", err)
		}
		newID = id
	}
	if uint32(newID) == codecs.UserMessage.ID() {
		t.Fatal("the evolved schema got the current schema's id")
	}
	encode := func(m *schemas.UserMessage) []byte {
		v, err := codecs.UserMessage.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		binary.BigEndian.PutUint32(v[1:5], uint32(newID))
		return append(v, 0) // x_test_note: null (union branch 0)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitTopics(t, ctx, cl, "sms.inbound", "sms.outbound", "sms.event", "sms.failures")
	reg.stop()

	const inbound, outbound = 100, 40
	var inIDs, outIDs []string
	for i := range inbound + outbound {
		m := schemas.NewUserMessage()
		m.TransportName = schemas.String("sms")
		topic := "sms.inbound"
		m.FromAddr, m.ToAddr = schemas.String(fmt.Sprintf("+2783%07d", i%20)), schemas.String("1234")
		m.Content = schemas.String(fmt.Sprintf("message %d", i))
		if i >= inbound {
			topic = "sms.outbound"
			m.FromAddr, m.ToAddr = schemas.String("1234"), schemas.String(fmt.Sprintf("+2783%07d", i%20))
			outIDs = append(outIDs, m.MessageID)
		} else {
			inIDs = append(inIDs, m.MessageID)
		}
		key := topology.InboundKey(m)
		if topic == "sms.outbound" {
			key = []byte(m.To())
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: key, Value: encode(m)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// Both workers meet the unknown id, wait for the registry and say so;
	// meanwhile nothing is handled, nothing goes to failures, and neither
	// exits.
	const stalled = "waiting to decode a record with an unknown schema id"
	waitLog(t, app, stalled, 60*time.Second)
	waitLog(t, transport, stalled, 60*time.Second)
	adm := kadm.NewClient(cl)
	count := func(topic string) int64 {
		t.Helper()
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if f, e, o := count("sms.failures"), count("sms.event"), count("sms.outbound"); f != 0 || e != 0 || o != outbound {
			t.Fatalf("while the registry was down: %d failures, %d events, %d outbound records (want 0, 0, %d)", f, e, o, outbound)
		}
		for _, p := range []*process{app, transport} {
			select {
			case err := <-p.exited:
				t.Fatalf("%v exited while waiting for the registry: %v\n%s", p.cmd.Args, err, p.stderr.String())
			default:
			}
		}
	}

	// The registry comes back: every record is handled, once.
	startRegistry(t, kafka, regPort)
	waitLog(t, app, "schema registry reachable again", 60*time.Second)
	waitLog(t, transport, "schema registry reachable again", 60*time.Second)
	reader, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.ConsumeTopics("sms.outbound", "sms.event", "sms.failures", "vumi.status"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	replies, acks := map[string]int{}, map[string]int{}
	var replyIDs []string
	failures := 0
	statuses := map[string]bool{}
	done := func() bool {
		for _, id := range inIDs {
			if replies[id] == 0 {
				return false
			}
		}
		for _, id := range append(append([]string(nil), outIDs...), replyIDs...) {
			if acks[id] == 0 {
				return false
			}
		}
		return statuses["echo/degraded/registry_unreachable"] && statuses["devnull/degraded/registry_unreachable"] &&
			statuses["echo/ok/registry_recovered"] && statuses["devnull/ok/registry_recovered"]
	}
	for !done() {
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out: replies %d of %d, acks %d of %d, statuses %v", len(replies), inbound, len(acks), outbound+len(replyIDs), statuses)
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case "sms.failures":
				failures++
			case "sms.outbound":
				var m schemas.UserMessage
				if err := codecs.UserMessage.Decode(r.Value, &m); err != nil {
					t.Fatal(err)
				}
				if m.InReplyTo != nil {
					replies[*m.InReplyTo]++
					replyIDs = append(replyIDs, m.MessageID)
				}
			case "sms.event":
				var e schemas.Event
				if err := codecs.Event.Decode(r.Value, &e); err != nil {
					t.Fatal(err)
				}
				if e.EventType == schemas.EventAck {
					acks[e.UserMessageID]++
				}
			case "vumi.status":
				var s schemas.Status
				if err := codecs.Status.Decode(r.Value, &s); err == nil && s.Component == "schema_registry" && s.Worker != nil {
					statuses[*s.Worker+"/"+string(s.Status)+"/"+s.Type] = true
				}
			}
		})
	}
	if failures != 0 {
		t.Errorf("%d records went to sms.failures", failures)
	}
	for id, n := range replies {
		if n != 1 {
			t.Errorf("inbound %s replied to %d times", id, n)
		}
	}
	for id, n := range acks {
		if n != 1 {
			t.Errorf("outbound %s acked %d times", id, n)
		}
	}
	if n := count("sms.outbound"); n != int64(outbound+inbound) {
		t.Errorf("%d records on sms.outbound, want %d (ours and one reply each)", n, outbound+inbound)
	}
	t.Logf("%d inbound and %d outbound records with an unseen schema id waited for the registry; all handled once after it came back", inbound, outbound)
	app.stop(t)
	transport.stop(t)
	broker.stop(t)
}
