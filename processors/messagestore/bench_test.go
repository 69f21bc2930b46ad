package messagestore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/processors/messagestore"
	"github.com/vumi-kafka/vumi/processors/tagpool"
	"github.com/vumi-kafka/vumi/schemas"
)

// BenchmarkIndexMixed indexes mixed traffic (per user: an inbound
// message, an outbound reply, its ack and its delivery report), all in one
// batch, in polls of 500 records. Reports records/s.
func BenchmarkIndexMixed(b *testing.B) {
	f := newFeed(b)
	ix, err := messagestore.OpenIndex(b.TempDir(), f.codecs)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour)
	if _, _, err := ix.Apply(ctx, []messagestore.Record{f.batch(&messagestore.Batch{ID: "b", Tags: []tagpool.Tag{{Pool: "p", Name: "t"}}, CreatedAt: t0})}); err != nil {
		b.Fatal(err)
	}
	recs := make([]messagestore.Record, 0, 500)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts := t0.Add(time.Duration(i) * time.Millisecond)
		id := fmt.Sprintf("m%d", i/4)
		switch i % 4 {
		case 0:
			recs = append(recs, f.msg(messagestore.SourceInbound, tagged("i"+id, ts, "p", "t")))
		case 1:
			recs = append(recs, f.msg(messagestore.SourceOutbound, tagged(id, ts, "p", "t")))
		case 2:
			recs = append(recs, f.event(ev("a"+id, id, ts, schemas.EventAck, "")))
		case 3:
			recs = append(recs, f.event(ev("d"+id, id, ts, schemas.EventDeliveryReport, schemas.DeliveryDelivered)))
		}
		if len(recs) == cap(recs) || i == b.N-1 {
			if _, _, err := ix.Apply(ctx, recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
