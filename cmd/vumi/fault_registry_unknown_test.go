package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/schemas/schematest"
)

// evolvedUserMessage is the user message schema as a newer release of
// another process might write it: extra optional fields at the end.
func evolvedUserMessage(t *testing.T, extra int) string {
	t.Helper()
	text, err := schematest.Evolved(schemas.UserMessageKind.Text, extra)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// TestUnknownSchemaIDWhileRegistryDown: records written by another
// process with a schema id the workers have never seen (a newer schema
// version) wait on their topics while the registry is down. The
// application (a goka processor) and the transport (the franz-go outbound
// consumer) hold those partitions, say so (log, degraded status), send
// nothing to failures and skip nothing. Stopped while they wait, they exit
// cleanly and leave the records uncommitted; started again (waiting for
// the registry at start-up) and once the registry is back, every record is
// handled exactly once. A second outage with a second new version shows
// the recovery without a restart (log, ok status).
func TestUnknownSchemaIDWhileRegistryDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildBinary(t)
	kafkaPort, regPort := freePort(t), freePort(t)
	kafka := fmt.Sprintf("127.0.0.1:%d", kafkaPort)
	dir := t.TempDir()
	cfgFile := writeRegistryFaultConfig(t, dir, kafka, regPort, `  - name: echo
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
`)
	broker := start(t, bin, nil, "broker", "-no-registry", "-data-dir", filepath.Join(dir, "data"), "-kafka-port", fmt.Sprint(kafkaPort))
	app := start(t, bin, workerEnv, "worker", "-c", cfgFile, "echo")
	transport := start(t, bin, workerEnv, "worker", "-c", cfgFile, "devnull")
	// The workers have created their topics (the broker is up) and wait
	// for the registry.
	waitLog(t, app, "schema registry unreachable; waiting", 60*time.Second)
	reg := startRegistry(t, kafka, regPort)
	waitLog(t, app, "deployment running", 60*time.Second)
	waitLog(t, transport, "deployment running", 60*time.Second)

	// Another process registers newer versions of the schema, and writes
	// with them while the registry is down.
	regClient := schemas.NewRegistryClient(fmt.Sprintf("http://127.0.0.1:%d", regPort), schemas.RegistryClientOptions{})
	codecs := schemas.NewCodecs(regClient)
	if err := codecs.UserMessage.Register(ctx, "sms.inbound", "sms.outbound"); err != nil {
		t.Fatal(err)
	}
	newIDs := map[int]int{} // extra fields -> schema id
	for _, extra := range []int{1, 2} {
		for _, subject := range []string{"sms.inbound-value", "sms.outbound-value"} {
			id, err := regClient.Register(ctx, subject, evolvedUserMessage(t, extra))
			if err != nil {
				t.Fatalf("register an evolved schema: %v", err)
			}
			if uint32(id) == codecs.UserMessage.ID() {
				t.Fatal("an evolved schema got the current schema's id")
			}
			newIDs[extra] = id
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitTopics(t, ctx, cl, "sms.inbound", "sms.outbound", "sms.event", "sms.failures")
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

	// produce writes inbound and outbound records with the version that
	// has extra fields (all null).
	var inIDs, outIDs []string
	produce := func(extra, inbound, outbound int) {
		t.Helper()
		for i := range inbound + outbound {
			m := schemas.NewUserMessage()
			m.TransportName = schemas.String("sms")
			user := fmt.Sprintf("+2783%07d", i%20)
			m.Content = schemas.String(fmt.Sprintf("message %d", i))
			topic, key := "sms.inbound", []byte(user)
			m.FromAddr, m.ToAddr = schemas.String(user), schemas.String("1234")
			if i >= inbound {
				topic = "sms.outbound"
				m.FromAddr, m.ToAddr = schemas.String("1234"), schemas.String(user)
				outIDs = append(outIDs, m.MessageID)
			} else {
				inIDs = append(inIDs, m.MessageID)
			}
			v, err := codecs.UserMessage.Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			v = schematest.AsEvolved(v, newIDs[extra], extra)
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: key, Value: v}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// held checks, for a few seconds, that the workers hold what they
	// cannot decode: nothing in failures, no event, no reply, no exit.
	held := func(events, outbound int64) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			if f, e, o := count("sms.failures"), count("sms.event"), count("sms.outbound"); f != 0 || e != events || o != outbound {
				t.Fatalf("while the registry was down: %d failures, %d events, %d outbound records (want 0, %d, %d)", f, e, o, events, outbound)
			}
			for _, p := range []*process{app, transport} {
				select {
				case err := <-p.exited:
					t.Fatalf("%v exited while waiting for the registry: %v\n%s", p.cmd.Args, err, p.stderr.String())
				default:
				}
			}
		}
	}
	const stalled = "waiting to decode a record with an unknown schema id"

	// First outage: the workers wait, then are stopped and started again
	// while the registry is still down.
	reg.stop()
	produce(1, 100, 40)
	waitLog(t, app, stalled, 60*time.Second)
	waitLog(t, transport, stalled, 60*time.Second)
	held(0, 40)
	app.stop(t)
	transport.stop(t)
	if f, e := count("sms.failures"), count("sms.event"); f != 0 || e != 0 {
		t.Fatalf("stopping while waiting: %d failures, %d events", f, e)
	}
	app = start(t, bin, workerEnv, "worker", "-c", cfgFile, "echo")
	transport = start(t, bin, workerEnv, "worker", "-c", cfgFile, "devnull")
	waitLog(t, app, "schema registry unreachable; waiting", 60*time.Second)
	waitLog(t, transport, "schema registry unreachable; waiting", 60*time.Second)
	reg = startRegistry(t, kafka, regPort)
	waitLog(t, app, "deployment running", 60*time.Second)
	waitLog(t, transport, "deployment running", 60*time.Second)
	// devnull publishes an ack and a delivery report per message: for the
	// 100 replies and our 40 outbound.
	const firstEvents = 2 * (100 + 40)
	for count("sms.event") < firstEvents {
		if ctx.Err() != nil {
			t.Fatalf("after the first outage only %d events", count("sms.event"))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Second outage, another new version: the running workers wait and
	// go on by themselves when the registry is back.
	reg.stop()
	produce(2, 60, 20)
	waitLog(t, app, stalled, 60*time.Second)
	waitLog(t, transport, stalled, 60*time.Second)
	held(firstEvents, 40+100+20)
	startRegistry(t, kafka, regPort)
	waitLog(t, app, "schema registry reachable again", 60*time.Second)
	waitLog(t, transport, "schema registry reachable again", 60*time.Second)
	const inbound, outbound = 100 + 60, 40 + 20
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
