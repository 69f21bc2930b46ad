package kafka

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultProduceTimeout bounds ProduceSync when its context has no
// deadline: the producers' record delivery timeout.
const DefaultProduceTimeout = 30 * time.Second

// ErrProduceTimeout wraps the error of a ProduceSync whose context ended
// before the broker confirmed every record.
var ErrProduceTimeout = errors.New("produce not confirmed in time; the records may still be written")

// produceTimeout is DefaultProduceTimeout (shorter in tests).
var produceTimeout = DefaultProduceTimeout

// ProduceSync produces recs and waits until the broker has confirmed every
// one, the first failure, or the end of ctx, whichever comes first; a ctx
// without a deadline is given DefaultProduceTimeout.
//
// franz-go's own Client.ProduceSync can wait past its context's end: an
// idempotent producer cannot fail a record whose request is already on
// the wire, so with a broker that stopped answering it waits for the
// record delivery timeout, or for ever when none is set. This one returns
// when ctx ends (the records stay with the client, which still delivers or
// fails them), so that no caller, and no shutdown, hangs on Kafka. A record
// reported as not confirmed may therefore still be written: callers treat
// it as a failure and retry, which is at-least-once.
func ProduceSync(ctx context.Context, cl *kgo.Client, recs ...*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	// Without a deadline the wait is bounded by DefaultProduceTimeout. When
	// the client fails undelivered records by then anyway (its record
	// delivery timeout), a timer does (a derived context with a timeout
	// cost ~1 % of the end-to-end benchmark's CPU); otherwise the records
	// are produced with a context that ends then.
	var timeout <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		if boundedDelivery(cl) {
			t := time.NewTimer(produceTimeout)
			defer t.Stop()
			timeout = t.C
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, produceTimeout)
			defer cancel()
		}
	}
	results := make(chan error, len(recs))
	for _, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) { results <- err })
	}
	for range recs {
		select {
		case err := <-results:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrProduceTimeout, ctx.Err())
		case <-timeout:
			return fmt.Errorf("%w: %w", ErrProduceTimeout, context.DeadlineExceeded)
		}
	}
	return nil
}

// boundedClients caches boundedDelivery per client, without keeping a
// client alive: the entry goes when its client is collected.
var boundedClients sync.Map // weak.Pointer[kgo.Client] -> bool

// boundedDelivery reports whether cl fails a record it could not deliver
// within produceTimeout.
func boundedDelivery(cl *kgo.Client) bool {
	key := weak.Make(cl)
	if v, ok := boundedClients.Load(key); ok {
		return v.(bool)
	}
	d, _ := cl.OptValue(kgo.RecordDeliveryTimeout).(time.Duration)
	ok := d > 0 && d <= produceTimeout
	if _, loaded := boundedClients.LoadOrStore(key, ok); !loaded {
		runtime.AddCleanup(cl, func(k weak.Pointer[kgo.Client]) { boundedClients.Delete(k) }, key)
	}
	return ok
}
