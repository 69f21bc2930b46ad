package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// produceOutbound publishes outbound messages as an application would.
func (c *cluster) produceOutbound(t *testing.T, topic string, msgs ...*schemas.UserMessage) {
	t.Helper()
	ctx := context.Background()
	if err := c.Codecs.UserMessage.Register(ctx, topic); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, topic); err != nil && !isExists(err) {
		t.Fatal(err)
	}
	for _, m := range msgs {
		v, err := c.Codecs.UserMessage.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: topology.OutboundKey(m), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func isExists(err error) bool { return errors.Is(err, kerr.TopicAlreadyExists) }

// TestDevNull: with every rate at 1, each outbound message is acked,
// reported delivered and answered with reply_copy.
func TestDevNull(t *testing.T) {
	c := startCluster(t)
	run(t, c, `
  - name: devnull
    kind: vumi.transports.devnull.DevNullTransport
    transport_name: dn
    ack_rate: 1.0
    failure_rate: 0.0
    reply_rate: 1.0
    reply_copy: pong
`)
	var sent []*schemas.UserMessage
	for i := range 5 {
		m := schemas.NewUserMessage()
		m.ToAddr, m.FromAddr = schemas.String(fmt.Sprintf("+2782%07d", i)), schemas.String("1234")
		m.Content = schemas.String("ping")
		sent = append(sent, m)
	}
	c.produceOutbound(t, "dn.outbound", sent...)
	ev := c.Collect(t, c.Consumer(t, "dn.event"), 60*time.Second, func(got []any) bool { return len(got) >= 10 })
	acks, drs := map[string]bool{}, map[string]bool{}
	for _, v := range ev {
		e := v.(*schemas.Event)
		switch {
		case e.EventType == schemas.EventAck && e.SentMessageID != nil:
			acks[e.UserMessageID] = true
		case e.EventType == schemas.EventDeliveryReport && *e.DeliveryStatus == schemas.DeliveryDelivered:
			drs[e.UserMessageID] = true
		default:
			t.Errorf("unexpected event %s", mustJSON(t, e))
		}
	}
	in := c.Collect(t, c.Consumer(t, "dn.inbound"), 60*time.Second, func(got []any) bool { return len(got) >= 5 })
	replies := map[string]bool{}
	for _, v := range in {
		m := v.(*schemas.UserMessage)
		if m.Text() != "pong" || m.Provider == nil || *m.Provider != "devnull" || m.Transport() != "dn" {
			t.Errorf("reply %s", mustJSON(t, m))
		}
		replies[m.From()] = true
	}
	for _, m := range sent {
		if !acks[m.MessageID] || !drs[m.MessageID] || !replies[m.To()] {
			t.Errorf("message %s: ack %v, delivery report %v, reply %v", m.MessageID, acks[m.MessageID], drs[m.MessageID], replies[m.To()])
		}
	}
}

// TestDevNullNacks: with ack_rate 0 every message is nacked.
func TestDevNullNacks(t *testing.T) {
	c := startCluster(t)
	run(t, c, `
  - name: devnull
    kind: devnull
    transport_name: dn
    ack_rate: 0
    failure_rate: 0
    reply_rate: 0
`)
	m := schemas.NewUserMessage()
	m.ToAddr, m.Content = schemas.String("+27820000000"), schemas.String("x")
	c.produceOutbound(t, "dn.outbound", m)
	ev := c.Collect(t, c.Consumer(t, "dn.event"), 60*time.Second, func(got []any) bool { return len(got) >= 1 })
	if e := ev[0].(*schemas.Event); e.EventType != schemas.EventNack || *e.NackReason != "Not accepted by network" || e.UserMessageID != m.MessageID {
		t.Errorf("event %s", mustJSON(t, e))
	}
}

// TestAddressedTelnet: the addressed variant asks for to_addr and
// from_addr, and uses them on every message.
func TestAddressedTelnet(t *testing.T) {
	c := startCluster(t)
	port := freePort(t)
	run(t, c, fmt.Sprintf(`
  - name: telnet_transport
    kind: telnet_addressed
    transport_name: telnet
    telnet_host: 127.0.0.1
    telnet_port: %d
  - name: wc
    kind: word_count
    transport_name: telnet
`, port))
	conn := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := newLineReader(conn)
	steps := []struct{ expect, send string }{
		{`Please provide "to_addr":`, "*120*1#"},
		{`Please provide "from_addr":`, "+27831112222"},
		{"[Sending all messages to: *120*1# and from: +27831112222]", ""},
		{"Enter text to return word and character counts for:", "two words"},
		{"2 words, 9 chars", "/quit"},
	}
	for _, s := range steps {
		if got := readLine(t, r); got != s.expect {
			t.Fatalf("got %q, want %q", got, s.expect)
		}
		if s.send != "" {
			if _, err := conn.Write([]byte(s.send + "\r\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	in := c.Collect(t, c.Consumer(t, "telnet.inbound"), 30*time.Second, func(got []any) bool { return len(got) >= 3 })
	for _, v := range in {
		m := v.(*schemas.UserMessage)
		if m.From() != "+27831112222" || m.To() != "*120*1#" {
			t.Errorf("addresses %q -> %q", m.From(), m.To())
		}
	}
}
