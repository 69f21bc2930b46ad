package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lovoo/goka"

	"github.com/vumi-kafka/vumi/schemas"
)

// registryWaiter follows a worker's decodes that wait for the schema
// registry: it logs, keeps the registry_stalled figure (decodes waiting
// now, in heartbeats), and publishes a degraded status event when the
// first starts waiting and an ok one when the last is done.
type registryWaiter struct {
	b *Base

	mu       sync.Mutex
	stalled  map[uint32]int       // schema id -> decodes waiting for it
	lastLog  map[uint32]time.Time // schema id -> last warning
	degraded bool
}

// RegistryWait returns ctx for decoding records: a record whose schema id
// the process has not seen, met while the schema registry is unavailable,
// makes the decode wait for the registry (see schemas.WaitForRegistry)
// instead of failing, so the partition is held until the registry is back.
// The wait is logged, counted in the worker's registry_stalled figure, and
// reported as a degraded status (component schema_registry).
func (b *Base) RegistryWait(ctx context.Context) context.Context {
	return schemas.WaitForRegistry(ctx, b.registryWaiter())
}

func (b *Base) registryWaiter() *registryWaiter {
	b.waiterOnce.Do(func() {
		b.waiter = &registryWaiter{b: b, stalled: map[uint32]int{}, lastLog: map[uint32]time.Time{}}
	})
	return b.waiter
}

// RegistryWaitInProcessor is RegistryWait for a goka callback (its
// context is the callback's). Once the processor has held a record of this
// partition (HoldInProcessor: it stopped while waiting), every later decode
// of the partition fails as if the registry were unavailable (see
// schemas.WaitForRegistryUntilStopped), so DecodeFailedInProcessor holds
// those records too: goka commits by position, and a record handled after
// a held one would commit the partition past it.
func (b *Base) RegistryWaitInProcessor(g goka.Context) context.Context {
	ctx := g.Context()
	if _, held := b.heldRuns.Load(ctx); held {
		return schemas.WaitForRegistryUntilStopped(ctx, b.registryWaiter())
	}
	return schemas.WaitForRegistry(ctx, b.registryWaiter())
}

// How often a decode still waiting for the registry says so again.
const registryLogEvery = 30 * time.Second

func (w *registryWaiter) RegistryStalled(id uint32, err error, waited time.Duration) {
	w.mu.Lock()
	first := waited == 0
	if first {
		w.stalled[id]++
		w.b.Gauge("registry_stalled", 1)
	}
	log := first && w.stalled[id] == 1 || time.Since(w.lastLog[id]) >= registryLogEvery
	if log {
		w.lastLog[id] = time.Now()
	}
	degrade := !w.degraded
	w.degraded = true
	w.mu.Unlock()
	if log {
		w.b.Log.Warn("schema registry unreachable; waiting to decode a record with an unknown schema id (its partition waits, nothing is skipped)",
			"schema_id", id, "waited", waited.Round(time.Second), "error", err)
	}
	if degrade {
		w.b.Count("registry_stalls", 1)
		w.status(schemas.StatusDegraded, "registry_unreachable",
			fmt.Sprintf("waiting for the schema registry to decode schema id %d: %v", id, err), schemas.Metadata{"schema_id": int64(id)})
	}
}

func (w *registryWaiter) RegistryRecovered(id uint32, waited time.Duration, err error) {
	w.mu.Lock()
	w.stalled[id]--
	if w.stalled[id] <= 0 {
		delete(w.stalled, id)
		delete(w.lastLog, id)
	}
	w.b.Gauge("registry_stalled", -1)
	recovered := w.degraded && len(w.stalled) == 0
	if recovered {
		w.degraded = false
	}
	w.mu.Unlock()
	if err != nil {
		w.b.Log.Info("stopped waiting for the schema registry; the record stays unconsumed", "schema_id", id, "waited", waited.Round(time.Millisecond))
	} else {
		w.b.Log.Info("schema registry reachable again; decoding goes on", "schema_id", id, "waited", waited.Round(time.Millisecond))
	}
	if recovered && err == nil {
		w.status(schemas.StatusOK, "registry_recovered", "the schema registry answers again", nil)
	}
}

// status publishes a status event in the background: the decode that
// waits must not also wait on Kafka for it.
func (w *registryWaiter) status(level schemas.StatusLevel, typ, msg string, details schemas.Metadata) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.b.PublishStatus(ctx, "", &schemas.Status{Component: "schema_registry", Status: level, Type: typ, Message: msg, Details: details}); err != nil {
			w.b.Log.Warn("status not published", "type", typ, "error", err)
		}
	}()
}

// HoldInProcessor leaves the record being processed by a goka callback
// uncommitted because it could not be decoded for a reason that is not
// the record's (the schema registry was unavailable until the processor
// stopped): the processor stops with err and the record is processed
// again when it runs next. Nothing goes to failures.
func (b *Base) HoldInProcessor(g goka.Context, err error) {
	// The callbacks of one partition processor run share its context:
	// remember that this run has held a record.
	b.heldRuns.Store(g.Context(), struct{}{})
	b.Log.Warn("record left unconsumed for the next run", "topic", string(g.Topic()), "partition", g.Partition(), "offset", g.Offset(), "error", err)
	g.DeferCommit()(fmt.Errorf("record left unconsumed: %w", err))
}

// DecodeFailedInProcessor handles, in a goka callback, a record that did
// not decode: held (HoldInProcessor) when the schema registry was
// unavailable, otherwise published to <connector>.failures with its raw
// bytes as a permanent failure.
func (b *Base) DecodeFailedInProcessor(g goka.Context, connector, msgType string, raw []byte, err error) {
	if schemas.IsRegistryUnavailable(err) {
		b.HoldInProcessor(g, err)
		return
	}
	b.FailInProcessor(g, connector, nil, msgType, raw, Permanent(err))
}

// DecodeInProcessor decodes raw, the value of the record a goka callback
// handles, into out, waiting for the schema registry as
// RegistryWaitInProcessor says. It reports false when raw did not decode;
// the record has then been dealt with (DecodeFailedInProcessor: held, or
// sent to <connector>.failures as msgType).
func DecodeInProcessor[T any](b *Base, g goka.Context, c *schemas.Codec[T], raw []byte, out *T, connector, msgType string) bool {
	if err := c.DecodeContext(b.RegistryWaitInProcessor(g), raw, out); err != nil {
		b.DecodeFailedInProcessor(g, connector, msgType, raw, err)
		return false
	}
	return true
}
