package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// BenchmarkArchiverThroughput: b.N typical SMS messages (half inbound,
// half outbound, 10,000 users, two partitions per topic) are produced as
// fast as a producer can onto the embedded broker while the archiver
// (zstd, default row groups, files rolled by 8 MiB or 1 s) runs; the time
// is from the first message produced until the archiver has committed the
// last one (its files written, synced and renamed). Target >= 50,000
// msgs/s.
func BenchmarkArchiverThroughput(b *testing.B) {
	c := startCluster(b)
	dir := filepath.Join(b.TempDir(), "archive")
	run(b, c, fmt.Sprintf(`
  - name: archive
    kind: archiver
    directory: %s
    transports: [sms]
    roll_bytes: 8388608
    roll_interval: 1s
`, dir))
	ctx := context.Background()
	for _, topic := range []string{"sms.inbound", "sms.outbound"} {
		if err := c.Codecs.UserMessage.Register(ctx, topic); err != nil {
			b.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	group := "archive.archive"
	// The archiver has joined its group and holds the partitions.
	deadline := time.Now().Add(60 * time.Second)
	for {
		g, err := adm.DescribeGroups(ctx, group)
		if err == nil && g[group].State == "Stable" && len(g[group].Members) == 1 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("archiver group not stable: %v %v", g, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Encode before timing: the producer side is not what is measured.
	recs := make([]*kgo.Record, b.N)
	content := "Your balance is R12.34. Reply 1 for a bundle, 2 for airtime, 3 to speak to an agent. Thank you!"
	for i := range recs {
		m := schemas.NewUserMessage()
		user := fmt.Sprintf("+2782%07d", i%10_000)
		m.Content, m.TransportName, m.TransportType = schemas.String(content), schemas.String("sms"), schemas.String("sms")
		topic := "sms.inbound"
		if i%2 == 0 {
			m.FromAddr, m.ToAddr = schemas.String(user), schemas.String("1234")
		} else {
			topic = "sms.outbound"
			m.FromAddr, m.ToAddr = schemas.String("1234"), schemas.String(user)
		}
		v, err := c.Codecs.UserMessage.Encode(m)
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: topic, Key: topology.UserMessageKey(topic, m), Value: v}
	}
	b.ResetTimer()
	for _, r := range recs {
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				b.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, "sms.inbound", "sms.outbound")
	if err != nil {
		b.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Minute)
	for {
		committed, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			done := true
			ends.Each(func(o kadm.ListedOffset) {
				if o.Offset == 0 {
					return // nothing was produced to this partition
				}
				if c, ok := committed.Lookup(o.Topic, o.Partition); !ok || c.At < o.Offset {
					done = false
				}
			})
			if done {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("archiver did not commit every record within 10 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
