package smpp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/smpp/smsc"
	"github.com/vumi-kafka/vumi/schemas"
)

// countAcks counts records on sms.event until n arrived.
func countAcks(b *testing.B, c *cluster, n int, within time.Duration) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ConsumeTopics("sms.event"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(20*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("%d of %d events after %v", got, n, within)
		}
		got += fs.NumRecords()
	}
}

// BenchmarkSubmitThroughput: outbound topic → submit_sm through one bind
// (window 64) to the simulator → acks on the event topic. One op is one
// message; submit_sm/s is the end-to-end rate.
func BenchmarkSubmitThroughput(b *testing.B) {
	c := startCluster(b)
	sim := startSMSC(b, smsc.Options{})
	run(b, c, transportYAML("smpp_tx", sim, "window_size: 64\namqp_prefetch_count: 256\n"))
	s := c.sender(b)
	msgs := make([]*schemas.UserMessage, b.N)
	for i := range msgs {
		msgs[i] = outbound(fmt.Sprintf("2776%07d", i%10000), "benchmark message")
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < len(msgs); i += 1000 {
		s.send(b, msgs[i:min(i+1000, len(msgs))]...)
	}
	countAcks(b, c, b.N, 10*time.Minute)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "submit_sm/s")
}

// BenchmarkMtTps measures the rate the simulator observes with mt_tps 100
// over at least 1,000 messages (10 s; -benchtime 6000x for 60 s), and the
// error against 100/s.
func BenchmarkMtTps(b *testing.B) {
	c := startCluster(b)
	sim := startSMSC(b, smsc.Options{})
	run(b, c, transportYAML("smpp_tx", sim, "mt_tps: 100\n"))
	n := max(b.N, 1000)
	msgs := make([]*schemas.UserMessage, n)
	for i := range msgs {
		msgs[i] = outbound(fmt.Sprintf("2776%07d", i), "tps")
	}
	b.ResetTimer()
	c.sender(b).send(b, msgs...)
	subs := waitSubmitted(b, sim, n, time.Duration(n/50+60)*time.Second)
	// Messages the SMSC received in the whole seconds from the first one.
	secs := int(subs[n-1].Received.Sub(subs[0].Received) / time.Second)
	if secs < 1 {
		b.Fatal("less than a second of traffic")
	}
	end := subs[0].Received.Add(time.Duration(secs) * time.Second)
	count := 0
	for _, s := range subs {
		if s.Received.Before(end) {
			count++
		}
	}
	rate := float64(count) / float64(secs)
	b.ReportMetric(rate, "observed_tps")
	b.ReportMetric((rate-100)/100*100, "error_%")
}
