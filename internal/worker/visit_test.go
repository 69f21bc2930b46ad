package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/testcluster"
	"github.com/vumi-kafka/vumi/internal/worker"
)

// TestVisitAllAcrossRebalanceAndStop visits a processor's table without
// pause while a second instance joins and leaves (two rebalances, twice)
// and while the processor stops. goka alone panics the process here
// ("send on closed channel": a visit starting on a partition its Cleanup
// is stopping, as the metric aggregator's window ticks did in CI);
// worker.VisitAll must only ever return complete visits or
// goka.ErrVisitAborted, and count every key once the processor owns every
// partition again.
func TestVisitAllAcrossRebalanceAndStop(t *testing.T) {
	const parts, keys = 4, 200
	c := testcluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	group := goka.Group("visited")
	admin := createTopics(t, ctx, c, parts, group, "vin")
	var touched atomic.Int64
	graph := goka.DefineGroup(group,
		goka.Input("vin", new(codec.String), func(g goka.Context, _ any) { g.SetValue(int64(1)) }),
		goka.Visitor("touch", func(g goka.Context, _ any) { touched.Add(1) }),
		goka.Persist(new(codec.Int64)),
	)

	run := func(name string) (*goka.Processor, func()) {
		t.Helper()
		p, stop := runProcessor(t, ctx, c, parts, name, graph)
		return p, func() {
			if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", name, err)
			}
		}
	}

	pa, stopA := run("visited-a")
	var recs []*kgo.Record
	for k := range keys {
		recs = append(recs, &kgo.Record{Topic: "vin", Key: []byte(fmt.Sprintf("k%03d", k)), Value: []byte("x")})
	}
	if err := admin.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// fullVisit waits until a visit of pa counts every key.
	fullVisit := func() {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			n, err := worker.VisitAll(ctx, pa, "touch", nil)
			if err == nil && n == keys {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no full visit: last visited %d of %d keys, %v", n, keys, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	fullVisit()

	// Visit without pause from here on.
	var (
		complete, aborted atomic.Int64
		visitErr          atomic.Value
	)
	vctx, vstop := context.WithCancel(ctx)
	var visiting sync.WaitGroup
	visiting.Go(func() {
		for vctx.Err() == nil {
			_, err := worker.VisitAll(vctx, pa, "touch", nil)
			switch {
			case err == nil:
				complete.Add(1)
			case errors.Is(err, goka.ErrVisitAborted):
				aborted.Add(1)
				time.Sleep(time.Millisecond)
			case vctx.Err() != nil:
			default:
				visitErr.Store(err)
			}
		}
	})

	for range 2 {
		_, stopB := run("visited-b")
		time.Sleep(500 * time.Millisecond)
		stopB()
		fullVisit()
	}
	stopA() // visits go on while pa stops
	time.Sleep(200 * time.Millisecond)
	vstop()
	visiting.Wait()

	if err := visitErr.Load(); err != nil {
		t.Fatalf("a visit failed with something other than an abort: %v", err)
	}
	if complete.Load() == 0 {
		t.Fatal("no visit completed while visiting in a loop")
	}
	if _, err := worker.VisitAll(ctx, pa, "touch", nil); !errors.Is(err, goka.ErrVisitAborted) {
		t.Fatalf("visit of a stopped processor: %v, want goka.ErrVisitAborted", err)
	}
	t.Logf("visits: %d complete, %d aborted, %d keys touched", complete.Load(), aborted.Load(), touched.Load())
}
