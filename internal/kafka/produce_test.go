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
	defer neverAnswerProduce(c)()
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

// TestProduceSyncWithoutDeadline: a context without a deadline is bounded
// by the produce timeout, whether the client's own record delivery timeout
// bounds its records (a timer waits) or not (the records are produced with
// a context that ends then).
func TestProduceSyncWithoutDeadline(t *testing.T) {
	defer func(d time.Duration) { produceTimeout = d }(produceTimeout)
	produceTimeout = 1500 * time.Millisecond
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer neverAnswerProduce(c)()
	for _, tc := range []struct {
		name    string
		opts    []kgo.Opt
		bounded bool
	}{
		{"delivery timeout", []kgo.Opt{kgo.RecordDeliveryTimeout(time.Second)}, true},
		{"none", nil, false},
		{"longer", []kgo.Opt{kgo.RecordDeliveryTimeout(time.Minute)}, false},
	} {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(0)}, tc.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if got := boundedDelivery(cl); got != tc.bounded {
			t.Errorf("%s: boundedDelivery = %v, want %v", tc.name, got, tc.bounded)
		}
		start := time.Now()
		err = ProduceSync(context.Background(), cl, &kgo.Record{Topic: "t", Value: []byte("x")})
		if err == nil {
			t.Errorf("%s: a produce nobody answered succeeded", tc.name)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: returned after %v, long past the 1.5s bound", tc.name, took)
		}
		t.Logf("%s: %v after %v", tc.name, err, time.Since(start).Round(time.Millisecond))
		cl.Close()
	}
}

// neverAnswerProduce makes c take produce requests and never answer them,
// until the function returned is called.
func neverAnswerProduce(c *kfake.Cluster) (release func()) {
	ch := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		<-ch
		return nil, errors.New("released"), true
	})
	return func() { close(ch) }
}
