package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestProduceSyncBounded: with a produce request on the wire that the
// broker never answers, franz-go's ProduceSync outlives its deadline (an
// idempotent record in flight cannot be failed); ProduceSync here returns
// when the deadline passes. A broker that answers is waited for.
func TestProduceSyncBounded(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := ProduceSync(ctx, cl, &kgo.Record{Topic: "t", Value: []byte("first")}); err != nil {
		t.Fatalf("produce to a live broker: %v", err)
	}

	// From now on the broker takes produce requests and never answers.
	release := make(chan struct{})
	defer close(release)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		<-release
		return nil, errors.New("released"), true
	})
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = ProduceSync(dctx, cl, &kgo.Record{Topic: "t", Value: []byte("second")})
	if !errors.Is(err, ErrProduceTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrProduceTimeout wrapping the deadline", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("returned after %v, long past its 300ms deadline", took)
	}

	// franz-go's own ProduceSync with the same deadline is still waiting
	// when ours has long returned (the hang this helper exists for).
	done := make(chan struct{})
	go func() {
		d2, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		cl.ProduceSync(d2, &kgo.Record{Topic: "t", Value: []byte("third")})
		close(done)
	}()
	select {
	case <-done:
		t.Log("franz-go's ProduceSync returned at its deadline here too")
	case <-time.After(3 * time.Second):
		t.Log("franz-go's ProduceSync was still blocked 3s after its 300ms deadline")
	}
}
