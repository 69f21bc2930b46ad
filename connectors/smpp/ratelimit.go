package smpp

import (
	"context"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transport"
)

// rateLimiter allows at most n messages in any one-second span (Vumi's
// mt_tps): it remembers when the last n messages went, and a message waits
// until the oldest of them is a second old. Saturated, it sends exactly n
// a second. It reports when limiting starts and when a whole second passed
// in which nobody had to wait.
type rateLimiter struct {
	n        int
	mu       sync.Mutex
	sent     []time.Time // ring of the last n send times
	head     int
	waited   bool // someone waited since the last check
	limiting bool
}

func newRateLimiter(n int) *rateLimiter { return &rateLimiter{n: n} }

func (r *rateLimiter) limited() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limiting
}

// wait blocks until a message may go. notify(true) is called when
// limiting starts and notify(false) when it ends.
func (r *rateLimiter) wait(ctx context.Context, stopping <-chan struct{}, notify func(bool)) error {
	if r.n <= 0 {
		return nil
	}
	for {
		r.mu.Lock()
		now := time.Now()
		if len(r.sent) < r.n {
			r.sent = append(r.sent, now)
			r.mu.Unlock()
			return nil
		}
		next := r.sent[r.head].Add(time.Second)
		if !now.Before(next) {
			r.sent[r.head] = now
			r.head = (r.head + 1) % r.n
			r.mu.Unlock()
			return nil
		}
		r.waited = true
		start := !r.limiting
		r.limiting = true
		r.mu.Unlock()
		if start {
			notify(true)
			go r.watch(notify)
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-t.C:
		case <-stopping:
			t.Stop()
			return transport.ErrRedeliver
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// watch ends limiting after a second in which nobody waited.
func (r *rateLimiter) watch(notify func(bool)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for range t.C {
		r.mu.Lock()
		if !r.waited {
			r.limiting = false
			r.mu.Unlock()
			notify(false)
			return
		}
		r.waited = false
		r.mu.Unlock()
	}
}
