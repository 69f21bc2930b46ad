package schemas

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrRegistryUnavailable is wrapped in the error of a schema lookup that
// failed because the registry could not answer: it was unreachable, timed
// out, answered 5xx (or refused our credentials, or asked us to slow down).
// It is a temporary condition: the record is fine and decodes once the
// registry is back. A definitive answer (schema id not found, a schema
// that is not Avro) and a malformed record never wrap it.
var ErrRegistryUnavailable = errors.New("schema registry unavailable")

// IsRegistryUnavailable reports whether err (from DecodeContext or a
// Registry) is a registry outage rather than a problem of the record.
func IsRegistryUnavailable(err error) bool { return errors.Is(err, ErrRegistryUnavailable) }

// RegistryWaiter is told about a decode waiting for the registry (see
// WaitForRegistry).
type RegistryWaiter interface {
	// RegistryStalled is called when a lookup of schema id first fails
	// because the registry is unavailable, and again before each retry,
	// with the time waited so far.
	RegistryStalled(id uint32, err error, waited time.Duration)
	// RegistryRecovered is called when a stalled lookup succeeded, or gave
	// up because its context ended (err is then the lookup's last error).
	RegistryRecovered(id uint32, waited time.Duration, err error)
}

type waitKey struct{}

// waitSpec is what WaitForRegistry puts in a context.
type waitSpec struct {
	w      RegistryWaiter
	strict bool
}

// WaitForRegistry returns a context under which DecodeContext, meeting a
// schema id it has not seen while the registry is unavailable, waits and
// retries the lookup (with backoff from 250 ms to 5 s, each attempt bounded
// by the registry client's timeout) until it succeeds or ctx ends, telling
// w. Consumers use it so that a registry outage holds their partition
// instead of sending its records to failures. Without it DecodeContext
// fails at once with an error wrapping ErrRegistryUnavailable.
func WaitForRegistry(ctx context.Context, w RegistryWaiter) context.Context {
	return context.WithValue(ctx, waitKey{}, waitSpec{w: w})
}

// WaitForRegistryUntilStopped is WaitForRegistry for consumers that commit
// a partition by position (goka marks each record's offset, and a later
// mark moves the partition past an earlier record left unmarked): once ctx
// has ended, every decode under it fails with an error wrapping
// ErrRegistryUnavailable and ctx's error, whatever the schema id, so that
// no record after one left waiting is handled (and committed) while the
// consumer stops.
func WaitForRegistryUntilStopped(ctx context.Context, w RegistryWaiter) context.Context {
	return context.WithValue(ctx, waitKey{}, waitSpec{w: w, strict: true})
}

// stopped returns the error of a decode under a WaitForRegistryUntilStopped
// context that has ended, nil otherwise.
func stopped(ctx context.Context) error {
	if spec, ok := ctx.Value(waitKey{}).(waitSpec); ok && spec.strict && ctx.Err() != nil {
		return fmt.Errorf("%w: not decoded, the consumer is stopping (%w)", ErrRegistryUnavailable, ctx.Err())
	}
	return nil
}

// registryBackoff is the first and the longest wait between lookups.
var registryBackoff = [2]time.Duration{250 * time.Millisecond, 5 * time.Second}

// lookupWaiting is lookup, retried while the registry is unavailable and
// ctx carries a RegistryWaiter.
func lookupWaiting[S any](ctx context.Context, id uint32, lookup func() (S, error)) (S, error) {
	s, err := lookup()
	if err != nil && ctx.Err() != nil && !IsRegistryUnavailable(err) &&
		(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// The registry was not asked: not the record's fault either.
		err = fmt.Errorf("%w: %w", ErrRegistryUnavailable, err)
	}
	if err == nil || !IsRegistryUnavailable(err) {
		return s, err
	}
	spec, _ := ctx.Value(waitKey{}).(waitSpec)
	w := spec.w
	if w == nil {
		return s, err
	}
	start := time.Now()
	delay := registryBackoff[0]
	for first := true; ; first = false {
		waited := time.Since(start)
		if first {
			waited = 0
		}
		w.RegistryStalled(id, err, waited)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			w.RegistryRecovered(id, time.Since(start), err)
			return s, fmt.Errorf("%w (stopped waiting: %w)", err, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, registryBackoff[1])
		s, err = lookup()
		if err == nil || !IsRegistryUnavailable(err) {
			w.RegistryRecovered(id, time.Since(start), nil)
			return s, err
		}
	}
}
