package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/smpp/smsc"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// TestSMSCDropsConnectionMidWindow: the SMPP transport runs in its own
// process against the SMSC simulator (in this one), which answers every
// submit_sm after 100 ms, so that a window of submits is always in
// flight. Twice the simulator drops the TCP connection with unanswered
// submits outstanding. After each reconnect the transport submits what was
// not answered again: every message is delivered once (the simulator
// forgets the submits it never answered, as an SMSC that loses the
// connection before answering does), acknowledged and reported delivered.
func TestSMSCDropsConnectionMidWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sim, err := smsc.Listen("127.0.0.1:0", smsc.Options{Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	sim.Delay(100 * time.Millisecond)
	host, port, _ := strings.Cut(sim.Addr(), ":")

	p := &pipeline{bin: buildBinary(t), kafkaPort: freePort(t), regPort: freePort(t)}
	dir := t.TempDir()
	p.dataDir = filepath.Join(dir, "data")
	p.cfgFile = filepath.Join(dir, "smpp.yaml")
	if err := os.WriteFile(p.cfgFile, []byte(fmt.Sprintf(`cluster:
  embedded: {data_dir: %s, kafka_port: %d, registry_port: %d}
  partitions: 4
  topics:
    sms.outbound: {external: true}
workers:
  - name: smpp
    kind: smpp
    transport_name: sms
    host: %s
    port: %s
    system_id: esme
    password: secret
    window_size: 32
    amqp_prefetch_count: 64
    initial_reconnect_delay: 1
    max_reconnect_delay: 1
    smpp_response_timeout: 10
    submit_sm_processor_config:
      registered_delivery: {delivery_receipt: 1}
`, p.dataDir, p.kafkaPort, p.regPort, host, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	p.startBroker(t)
	transport := start(t, p.bin, workerEnv, "worker", "-c", p.cfgFile, "smpp")
	p.codecs = schemas.NewCodecs(schemas.NewRegistryClient(fmt.Sprintf("http://127.0.0.1:%d", p.regPort), schemas.RegistryClientOptions{}))
	if p.cl, err = kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", p.kafkaPort))); err != nil {
		t.Fatal(err)
	}
	defer p.cl.Close()
	waitTopics(t, ctx, p.cl, "sms.outbound", "sms.event")
	for {
		if err = p.codecs.UserMessage.Register(ctx, "sms.outbound"); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}

	const n = 600
	ids := make([]string, n)
	recs := make([]*kgo.Record, n)
	for i := range n {
		m := schemas.NewUserMessage()
		m.ToAddr, m.FromAddr = schemas.String(fmt.Sprintf("2783%07d", i%40)), schemas.String("1234")
		m.Content = schemas.String(fmt.Sprintf("drop test %d", i))
		m.TransportName = schemas.String("sms")
		v, err := p.codecs.UserMessage.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = m.MessageID
		recs[i] = &kgo.Record{Topic: "sms.outbound", Key: topology.OutboundKey(m), Value: v}
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Drop the connection twice, each time with submits in flight.
	drops := 0
	for _, at := range []int{150, 400} {
		// Past the mark, with answers outstanding.
		for st := sim.Stats(); st.Submitted < at || st.InFlight == 0; st = sim.Stats() {
			if ctx.Err() != nil {
				t.Fatalf("only %d submits reached the SMSC", st.Submitted)
			}
			time.Sleep(5 * time.Millisecond)
		}
		sim.Drop()
		drops++
	}

	// Every message: an ack and a delivered delivery report.
	reader, err := kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", p.kafkaPort)), kgo.ConsumeTopics("sms.event"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	acks, drs := map[string]int{}, map[string]int{}
	done := func() bool {
		for _, id := range ids {
			if acks[id] == 0 || drs[id] == 0 {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			missing := 0
			for _, id := range ids {
				if acks[id] == 0 || drs[id] == 0 {
					missing++
				}
			}
			t.Fatalf("%d of %d messages without an ack and a delivery report; SMSC: %+v", missing, n, sim.Stats())
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e schemas.Event
			if err := p.codecs.Event.Decode(r.Value, &e); err != nil {
				t.Fatal(err)
			}
			switch e.EventType {
			case schemas.EventAck:
				acks[e.UserMessageID]++
			case schemas.EventDeliveryReport:
				if e.DeliveryStatus == nil || *e.DeliveryStatus != schemas.DeliveryDelivered {
					t.Errorf("delivery report %s for %s", e.Status(), e.UserMessageID)
				}
				drs[e.UserMessageID]++
			default:
				t.Errorf("unexpected %s for %s", e.EventType, e.UserMessageID)
			}
		})
	}
	// Duplicates: submit_sm the SMSC accepted twice for one message, and
	// repeated events.
	byText := map[string]int{}
	for _, s := range sim.Submitted() {
		byText[s.Text]++
	}
	dupSubmits, dupAcks, dupDRs := 0, 0, 0
	for i := range n {
		c := byText[fmt.Sprintf("drop test %d", i)]
		if c == 0 {
			t.Errorf("message %d acknowledged but the SMSC has no submit_sm for it", i)
		}
		dupSubmits += max(c-1, 0)
		dupAcks += acks[ids[i]] - 1
		dupDRs += drs[ids[i]] - 1
	}
	st := sim.Stats()
	t.Logf("%d messages, %d connection drops (%d binds): %d submits answered by the SMSC, %d withdrawn unanswered and submitted again; duplicates: %d submit_sm, %d acks, %d delivery reports",
		n, drops, st.Binds, st.Submitted, st.Withdrawn, dupSubmits, dupAcks, dupDRs)
	if st.Binds < 3 {
		t.Errorf("%d binds: the transport did not reconnect after each drop", st.Binds)
	}
	if st.Withdrawn == 0 {
		t.Error("no submit was in flight at a drop: the test did not test a drop mid-window")
	}
	if dupSubmits != 0 {
		t.Errorf("%d messages submitted twice to the SMSC", dupSubmits)
	}
	transport.stop(t)
	p.broker.stop(t)
}
