// Package tcpclient holds what the TCP client transports (TruTeq SSMI,
// MTN Nigeria USSD) share, some of it also used by the Vumi Bridge: config
// checks, the reconnect loop, connections, login and send waits,
// publishing with retries, Vumi's reconnect back-off and a keyed, bounded
// dispatcher that lets a connection's reader hand frames to workers without
// buffering without limit — when every slot of a frame's lane is taken
// (Kafka is slow or unreachable), the reader blocks, and so stops reading
// from the socket.
package tcpclient

import (
	"context"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff is Vumi's ReconnectingClientService delay: it starts at Initial
// and grows by a factor of e (with about 12% jitter) up to Max.
type Backoff struct {
	Initial, Max time.Duration
	cur          time.Duration
}

// Vumi's ReconnectingClientService constants.
const (
	factor = math.E
	jitter = 0.11962656472
)

// Next returns the delay before the next attempt and grows the delay.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Initial
	}
	d := b.cur
	b.cur = min(time.Duration(float64(b.cur)*factor), b.Max)
	// Normal jitter as Twisted's ReconnectingClientFactory applies it.
	d = time.Duration(float64(d) * (1 + rand.NormFloat64()*jitter))
	if d < 0 {
		d = 0
	}
	return min(d, b.Max)
}

// Reset starts the delays again from Initial (after a good connection).
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d or until ctx ends; it reports whether ctx is still alive.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Lanes runs handlers for items in order per key, concurrently across
// keys, with at most Depth items waiting per lane: Dispatch blocks while
// the item's lane is full.
type Lanes[T any] struct {
	seed  maphash.Seed
	lanes []chan T
	wg    sync.WaitGroup
}

// NewLanes starts n lanes of depth queued items each, handled by h.
func NewLanes[T any](n, depth int, h func(T)) *Lanes[T] {
	l := &Lanes[T]{seed: maphash.MakeSeed(), lanes: make([]chan T, n)}
	for i := range l.lanes {
		ch := make(chan T, depth)
		l.lanes[i] = ch
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for it := range ch {
				h(it)
			}
		}()
	}
	return l
}

// Dispatch queues it on key's lane, blocking while the lane is full or
// until ctx ends (then it reports false and it is not queued).
func (l *Lanes[T]) Dispatch(ctx context.Context, key string, it T) bool {
	ch := l.lanes[maphash.String(l.seed, key)%uint64(len(l.lanes))]
	select {
	case ch <- it:
		return true
	default:
	}
	select {
	case ch <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// Close stops taking items and waits until the queued ones are handled.
func (l *Lanes[T]) Close() {
	for _, ch := range l.lanes {
		close(ch)
	}
	l.wg.Wait()
}

// Retry calls fn until it succeeds, returns an error that is not
// temporary (see isTemporary), or ctx ends, waiting between attempts with a
// back-off from one second up to thirty. A transport's reader uses it to
// publish what the peer sent: while Kafka is unreachable the reader waits
// here (and stops reading) instead of dropping the message.
func Retry(ctx context.Context, isTemporary func(error) bool, onRetry func(err error, wait time.Duration), fn func() error) error {
	b := Backoff{Initial: time.Second, Max: 30 * time.Second}
	for {
		err := fn()
		if err == nil || !isTemporary(err) {
			return err
		}
		d := b.Next()
		if onRetry != nil {
			onRetry(err, d)
		}
		if !Sleep(ctx, d) {
			return err
		}
	}
}

// Current holds a transport's usable connection (or nil) and lets senders
// wait for it to change.
type Current[T any] struct {
	mu      sync.Mutex
	cur     *T
	changed chan struct{}
}

// Set replaces the connection (nil when there is none) and wakes waiters.
func (c *Current[T]) Set(v *T) {
	c.mu.Lock()
	c.cur = v
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Get returns the connection and a channel closed at its next change.
func (c *Current[T]) Get() (*T, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.cur, c.changed
}

// PublishContext bounds one attempt to publish what a peer sent: 30 s
// while running, but only 5 s once ctx has ended, so that a worker
// stopping while Kafka is unreachable drains its queued items quickly
// (each one that cannot be published is logged by its caller).
func PublishContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := 30 * time.Second
	if ctx.Err() != nil {
		d = 5 * time.Second
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
