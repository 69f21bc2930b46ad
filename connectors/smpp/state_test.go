package smpp

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTableThroughKafkaOutage: the broker goes away while the transport's
// handlers look ids up. The table's view must keep answering from its
// local copy (it reconnects instead of stopping and closing the copy under
// the lookups, which raced and then failed every lookup until a rebuild),
// and its run must not end.
func TestTableThroughKafkaOutage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deps, cl, br := tableEnv(t, ctx)
	tb, err := newTable(deps, cl, "w", "sms"+tableMessageIDs, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- tb.run(ctx, time.Hour) }()
	if err := tb.wait(ctx); err != nil {
		t.Fatal(err)
	}
	const keys = 50
	for i := range keys {
		if err := tb.Put(ctx, fmt.Sprintf("smsc-%d", i), []byte(fmt.Sprint("vumi-", i)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Lookups read the view once it has consumed this instance's writes.
	deadline := time.Now().Add(60 * time.Second)
	for {
		tb.mu.RLock()
		n := len(tb.recent)
		tb.mu.RUnlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes not seen by the view in 60s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}

	var lookups, failures atomic.Int64
	var firstErr atomic.Value
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; lctx.Err() == nil; i++ {
				k := i % keys
				v, ok, err := tb.Get(fmt.Sprintf("smsc-%d", k))
				lookups.Add(1)
				if err != nil || !ok || string(v) != fmt.Sprint("vumi-", k) {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("smsc-%d: %q %v %v", k, v, ok, err))
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	br.Cluster().Close() // Kafka is gone
	select {
	case err := <-runErr:
		t.Fatalf("the table stopped when Kafka went away: %v", err)
	case <-time.After(5 * time.Second):
	}
	stop()
	wg.Wait()
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d of %d lookups failed while Kafka was away, first: %v", f, lookups.Load(), firstErr.Load())
	}
	if lookups.Load() == 0 {
		t.Fatal("no lookups made")
	}
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("run after stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the table did not stop within 30s of its context")
	}
	if _, _, err := tb.Get("smsc-1"); err == nil {
		t.Fatal("lookup after the table stopped: no error")
	}
}
