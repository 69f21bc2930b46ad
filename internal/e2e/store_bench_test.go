package e2e

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// BenchmarkStoreMixedTraffic: the message_store worker on the embedded
// broker indexing mixed traffic — per user an inbound message, an
// outbound reply, its ack and its delivery report, all in one batch —
// produced as fast as a client can; timed until the batch's counts show
// every record indexed. Reports msgs/s (target 10,000).
func BenchmarkStoreMixedTraffic(b *testing.B) {
	c := startCluster(b)
	port := loopbackPort(b)
	run(b, c, fmt.Sprintf(`
  - name: store
    kind: message_store
    connectors: [sms]
    twisted_endpoint: tcp:port=%d:interface=127.0.0.1
`, port))
	api := storeAPI{b, fmt.Sprintf("http://127.0.0.1:%d", port)}.waitReady()
	batch := api.createBatch([2]string{"bench", "1234"})
	ctx := context.Background()
	for _, topic := range []string{"sms.inbound", "sms.outbound"} {
		if err := c.Codecs.UserMessage.Register(ctx, topic); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Codecs.Event.Register(ctx, "sms.event"); err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	users := b.N/4 + 1
	b.ResetTimer()
	start := time.Now()
	produce := func(topic string, key []byte, v []byte) {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	for i := range users {
		in := inbound(fmt.Sprintf("+2776%07d", i), "hi")
		middleware.SetTag(in, middleware.Tag{Pool: "bench", Name: "1234"})
		out := in.Reply("hello", false)
		ack := &schemas.Event{EventID: schemas.GenerateID(), EventType: schemas.EventAck, UserMessageID: out.MessageID, SentMessageID: schemas.String("x"), Timestamp: schemas.Now()}
		dr := schemas.DeliveryDelivered
		rep := &schemas.Event{EventID: schemas.GenerateID(), EventType: schemas.EventDeliveryReport, UserMessageID: out.MessageID, DeliveryStatus: &dr, Timestamp: schemas.Now()}
		vi, _ := c.Codecs.UserMessage.Encode(in)
		vo, _ := c.Codecs.UserMessage.Encode(out)
		va, _ := c.Codecs.Event.Encode(ack)
		vd, _ := c.Codecs.Event.Encode(rep)
		produce("sms.inbound", topology.InboundKey(in), vi)
		produce("sms.outbound", topology.OutboundKey(out), vo)
		produce("sms.event", topology.EventKey(ack), va)
		produce("sms.event", topology.EventKey(rep), vd)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	n := int64(users)
	api.waitStatus(batch, map[string]int64{"inbound": n, "sent": n, "acked": n, "delivered": n})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(users*4)/elapsed.Seconds(), "msgs/s")
}

// loopbackPort returns a loopback port that was free a moment ago.
func loopbackPort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
