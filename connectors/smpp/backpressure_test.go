package smpp_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/vumi-kafka/vumi/connectors/smpp/smsc"
)

// TestInboundBackpressure: while Kafka does not answer, the SMSC sends
// 1,500 deliver_sm at once. The transport answers none of them (each is
// answered only once it is in Kafka) and does not take them all in: the
// goroutines handling deliver_sm stay capped (64 per session, fewer
// publishing at once with max_pending_publishes), the rest wait unread in
// the socket. When Kafka answers, every message is published once and
// every deliver_sm answered.
func TestInboundBackpressure(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_rx", sim, "max_pending_publishes: 8\n"))
	w.until(t, 30*time.Second, "bound", func(w *watcher) bool { return w.hasStatus("bound") })

	// Hold every produce request: to the transport, Kafka stops answering.
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	defer open()
	kc := c.B.Cluster()
	kc.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		<-release
		return nil, nil, false
	})

	runtime.GC()
	base := runtime.NumGoroutine()
	const n = 1500
	var answered, failed atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := sim.Inject(ctx, smsc.MO{SourceAddr: fmt.Sprintf("2782%07d", i), DestAddr: "1234", Short: []byte(fmt.Sprintf("held %d", i))})
			if err != nil {
				failed.Add(1)
				t.Errorf("deliver_sm %d: %v", i, err)
				return
			}
			answered.Add(1)
		}()
	}
	// Let the transport take in what it will.
	time.Sleep(2 * time.Second)
	extra := runtime.NumGoroutine() - base - n // beyond the test's own injectors
	if a := answered.Load(); a != 0 {
		t.Errorf("%d deliver_sm answered while Kafka held every produce", a)
	}
	t.Logf("while Kafka was held: %d deliver_sm outstanding, %d goroutines beyond the injectors", n, extra)
	if extra > 300 {
		t.Errorf("%d more goroutines while %d deliver_sm wait: the transport takes in what it cannot publish", extra, n)
	}

	open()
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d deliver_sm failed", failed.Load())
	}
	w.until(t, time.Minute, "every held message published", func(w *watcher) bool {
		seen := map[string]bool{}
		for _, m := range w.inbound {
			seen[m.Text()] = true
		}
		for i := range n {
			if !seen[fmt.Sprintf("held %d", i)] {
				return false
			}
		}
		return true
	})
	w.until(t, time.Second, "no duplicates", func(w *watcher) bool {
		count := map[string]int{}
		for _, m := range w.inbound {
			count[m.Text()]++
		}
		for text, k := range count {
			if k > 1 {
				t.Errorf("%q published %d times", text, k)
			}
		}
		return true
	})
}
