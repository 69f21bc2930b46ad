package tcpclient

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestBackoffGrowsByEAndResets(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 10 * time.Second}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	// 1, e, e², then capped; jitter is about 12% (a normal deviate).
	want := []float64{1, 2.718, 7.389, 10, 10}
	for i, w := range want {
		if g := got[i].Seconds(); g < w*0.4 || g > w*1.6 || g > 10 {
			t.Errorf("delay %d = %v, want about %vs", i, got[i], w)
		}
	}
	b.Reset()
	if d := b.Next(); d > 1600*time.Millisecond {
		t.Errorf("after Reset: %v", d)
	}
}

func TestLanesBlockWhenFullAndKeepOrder(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []int
	l := NewLanes(1, 2, func(i int) {
		<-release
		mu.Lock()
		seen = append(seen, i)
		mu.Unlock()
	})
	ctx := context.Background()
	// One item in the handler, two queued: the fourth blocks.
	for i := range 3 {
		if !l.Dispatch(ctx, "k", i) {
			t.Fatal("dispatch refused")
		}
	}
	blocked, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if l.Dispatch(blocked, "k", 3) {
		// The handler may not have taken item 0 yet; then the lane held
		// 0,1 and 2 went in; try once more, which must block.
		if l.Dispatch(blocked, "k", 4) {
			t.Fatal("dispatch to a full lane did not block")
		}
	}
	close(release)
	l.Close()
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Fatalf("order lost: %v", seen)
		}
	}
	if len(seen) < 3 {
		t.Fatalf("handled %v", seen)
	}
}

func TestRetry(t *testing.T) {
	temp := errors.New("temporary")
	perm := errors.New("permanent")
	n := 0
	err := Retry(context.Background(), func(err error) bool { return err == temp }, nil, func() error {
		n++
		if n < 2 {
			return temp
		}
		return perm
	})
	if err != perm || n != 2 {
		t.Errorf("Retry = %v after %d calls", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Retry(ctx, func(error) bool { return true }, nil, func() error { return temp }); err != temp {
		t.Errorf("Retry after cancel = %v", err)
	}
}
