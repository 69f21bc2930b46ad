package metrics

import (
	"testing"
	"time"
)

// perMessageCPU reports what an instrumentation call costs as a share of
// one core at 10,000 messages/s (target < 1 %).
func perMessageCPU(b *testing.B) {
	nsPerOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(nsPerOp*10_000/1e9*100, "%cpu@10k/s")
}

// BenchmarkCountHook is the standard-figure hook (Manager.Count), as a
// worker calls it per message.
func BenchmarkCountHook(b *testing.B) {
	m := NewManager("vumi.bench.", Options{})
	b.ReportAllocs()
	for b.Loop() {
		m.Count("inbound", 1)
	}
	perMessageCPU(b)
}

// BenchmarkCountHookParallel is the same hook from every core at once.
func BenchmarkCountHookParallel(b *testing.B) {
	m := NewManager("vumi.bench.", Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Count("inbound", 1)
		}
	})
}

// BenchmarkTimer times a handler (Start, Stop) per message; avg timers
// keep every value until the next publish.
func BenchmarkTimer(b *testing.B) {
	m := NewManager("vumi.bench.", Options{})
	tm := MustRegister(m, NewTimer("handle"))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		t := tm.Start()
		_ = t.Stop()
		if i%50_000 == 0 {
			m.Collect() // a publish every 5 s at 10,000 messages/s
		}
	}
	perMessageCPU(b)
}

// BenchmarkCollect is one publish's collection of 10 counters that were
// counted during one interval, plus 50,000 timer values (5 s at 10,000
// messages/s); the cost per message is reported.
func BenchmarkCollect(b *testing.B) {
	now := time.Unix(1_700_000_000, 0)
	m := NewManager("vumi.bench.", Options{Now: func() time.Time { return now }})
	tm := MustRegister(m, NewTimer("handle"))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for i := range 10 {
			m.Count(string(rune('a'+i)), 1)
		}
		for range 50_000 {
			tm.Set(0.001)
		}
		b.StartTimer()
		if n := len(m.Collect()); n != 50_010 {
			b.Fatalf("%d datapoints", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/50_000, "ns/message")
}
