package aggregator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/schemas/schematest"
)

// BenchmarkAggregatorThroughput measures what the processor does per
// datapoint, on one goroutine: decode the Avro record, read the metric's
// state from the table (decode), fold the value in, write the state back
// (encode). The table is a map of encoded values, as goka's local storage
// holds them; the Kafka round trips goka adds (changelog writes, batched by
// the producer) are not included. Target: ≥ 200,000 datapoints/s.
func BenchmarkAggregatorThroughput(b *testing.B) {
	codecs := schemas.NewCodecs(schematest.New())
	if err := codecs.MetricDatapoint.Register(context.Background(), "vumi.metrics"); err != nil {
		b.Fatal(err)
	}
	const names = 1000
	now := time.Unix(1_700_000_000, 0)
	recs := make([][]byte, names)
	keys := make([]string, names)
	for i := range recs {
		keys[i] = fmt.Sprintf("vumi.worker%d.inbound", i%10) + fmt.Sprint(i)
		src := "w1"
		r, err := codecs.MetricDatapoint.Encode(&schemas.MetricDatapoint{Name: keys[i], Aggregators: []string{"avg", "max"}, Timestamp: now, Value: float64(i), Source: &src})
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = r
	}
	p := Params{Bucket: 5, Lateness: 5 * time.Second, ForgetAfter: 10 * time.Minute, EmitEmpty: true}
	table := map[string][]byte{}
	var codec StateCodec
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := i % names
		var dp schemas.MetricDatapoint
		if err := codecs.MetricDatapoint.Decode(recs[k], &dp); err != nil {
			b.Fatal(err)
		}
		var st *State
		if raw := table[keys[k]]; raw != nil {
			v, err := codec.Decode(raw)
			if err != nil {
				b.Fatal(err)
			}
			st = v.(*State)
		}
		st, out := p.Add(st, &dp, now)
		if out != Accepted {
			b.Fatalf("datapoint %v", out)
		}
		enc, _ := codec.Encode(st)
		table[keys[k]] = enc
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "datapoints/s")
}

// BenchmarkCloseWindow measures closing one metric's window with two
// aggregators (the visitor's work per key and window).
func BenchmarkCloseWindow(b *testing.B) {
	p := Params{Bucket: 5, Lateness: 5 * time.Second, ForgetAfter: 10 * time.Minute, EmitEmpty: true}
	start := int64(1_700_000_000)
	emitted := 0
	b.ReportAllocs()
	for b.Loop() {
		st := &State{Aggs: aggAvg | aggMax, LastData: start, Windows: []Window{{Start: start, Aggs: aggAvg | aggMax, Count: 10, Sum: 10, Min: 1, Max: 1, Last: 1}}}
		p.Close("vumi.w.metric", st, time.Unix(start+10, 0), func(*schemas.MetricAggregate) { emitted++ })
	}
	if emitted == 0 {
		b.Fatal("nothing emitted")
	}
}
