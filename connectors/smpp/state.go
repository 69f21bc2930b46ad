package smpp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/topology"
)

// store is a key-value table with expiring entries, shared by every
// instance and bind of a transport.
type store interface {
	// Put writes key and waits until Kafka has it.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// PutAsync writes key; the function returned waits until Kafka has it.
	PutAsync(key string, value []byte, ttl time.Duration) func(context.Context) error
	// Get returns the live value of key.
	Get(key string) ([]byte, bool, error)
	// Delete removes key (asynchronously).
	Delete(key string)
	// Changed returns a channel closed at the next write of any key, by
	// this instance or (through the view) another one: a reader waiting
	// for a key looks again then instead of polling.
	Changed() <-chan struct{}
}

// table is a store on a compacted topic: a goka Emitter writes it, a goka
// View keeps a local LevelDB copy of every partition (under the worker's
// state directory) for lookups, so any instance finds any key. Values
// carry their expiry time; expired keys are deleted (tombstoned) by a
// periodic sweep. Writes are visible to this instance at once (before
// the view has consumed them) through a short-lived overlay.
type table struct {
	topic string
	dir   string
	deps  *topology.Deps
	cl    *kgo.Client // looks the topic's end offsets up when the local copy opens
	log   *slog.Logger
	em    *goka.Emitter

	mu     sync.RWMutex
	view   *goka.View
	recent map[string]recentEntry
	ready  chan struct{}

	changedMu sync.Mutex
	changed   chan struct{}
	watched   bool // changed was handed out by Changed
}

type recentEntry struct {
	value   []byte // nil: deleted
	raw     []byte // the record written (nil for a tombstone)
	expires time.Time
	written time.Time
}

// overlayTTL bounds how long a local write shadows the view if the view
// never sees it come back (it normally does within milliseconds, and the
// entry is dropped then, so that later writes by other instances show).
const overlayTTL = 30 * time.Second

func newTable(deps *topology.Deps, cl *kgo.Client, worker, topic string, log *slog.Logger) (*table, error) {
	full := deps.Names.Prefix + topic
	em, err := goka.NewEmitter(deps.Brokers, goka.Stream(full), new(gokacodec.Bytes),
		goka.WithEmitterProducerBuilder(deps.GokaProducerBuilder(worker+".table")),
		goka.WithEmitterHasher(kafka.KafkaHasher()),
		goka.WithEmitterClientID(deps.Cluster.Kafka.ClientID+"."+worker+".emitter"),
	)
	if err != nil {
		return nil, fmt.Errorf("table %s: emitter: %w", full, err)
	}
	return &table{
		topic: full, deps: deps, cl: cl, log: log.With("table", full), em: em,
		dir:     filepath.Join(deps.StateDir(worker), "smpp"),
		recent:  map[string]recentEntry{},
		ready:   make(chan struct{}),
		changed: make(chan struct{}),
	}, nil
}

func (t *table) newView() (*goka.View, error) {
	cfg := t.deps.SaramaConfig(t.topic + ".view")
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = max(t.deps.Cluster.ReplicationFactor, 1)
	tm.MismatchBehavior = goka.TMConfigMismatchBehaviorWarn
	return goka.NewView(t.deps.Brokers, goka.Table(t.topic), new(gokacodec.Bytes),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cfg)),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg, tm)),
		goka.WithViewStorageBuilder(worker.CheckedTableStorage(t.dir, t.cl, t.log)),
		goka.WithViewHasher(kafka.KafkaHasher()),
		goka.WithViewClientID(t.deps.Cluster.Kafka.ClientID+"."+t.topic+".view"),
		goka.WithViewCallback(t.update),
		// Kafka going away must not stop the view: goka would close its
		// partitions under the lookups of the transport's handlers.
		goka.WithViewAutoReconnect(),
	)
}

// update applies a record to the local copy and retires the overlay entry
// of this instance's write once the view has it.
func (t *table) update(ctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
	err := goka.DefaultUpdate(ctx, s, key, value)
	t.mu.Lock()
	if r, ok := t.recent[key]; ok && bytes.Equal(r.raw, value) {
		delete(t.recent, key)
	}
	t.mu.Unlock()
	t.signal()
	return err
}

// Changed implements store.
func (t *table) Changed() <-chan struct{} {
	t.changedMu.Lock()
	defer t.changedMu.Unlock()
	t.watched = true
	return t.changed
}

// signal wakes the readers waiting in Changed. A channel nobody has
// taken since the last signal is left as it is (most writes have no
// reader waiting).
func (t *table) signal() {
	t.changedMu.Lock()
	if t.watched {
		close(t.changed)
		t.changed, t.watched = make(chan struct{}), false
	}
	t.changedMu.Unlock()
}

// run keeps the view up to date until ctx ends, through Kafka outages
// (the view reconnects). A local copy ahead of its topic (the broker's
// data was wiped) is deleted and rebuilt from the topic when it opens
// (worker.CheckedTableStorage); if the view fails anyway, its local copy
// is deleted and rebuilt, three times at most.
func (t *table) run(ctx context.Context, sweepEvery time.Duration) error {
	go t.sweep(ctx, sweepEvery)
	var once sync.Once
	for attempt := 0; ; attempt++ {
		v, err := t.newView()
		if err != nil {
			return err
		}
		t.mu.Lock()
		t.view = v
		t.mu.Unlock()
		go func() {
			select {
			case <-v.WaitRunning():
				once.Do(func() { close(t.ready) })
			case <-ctx.Done():
			}
		}()
		// At the end, lookups stop using the view (and the ones under way
		// finish) before goka closes its partitions.
		vctx, vcancel := context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(ctx, func() { t.retire(v); vcancel() })
		err = v.Run(vctx)
		stop()
		vcancel()
		t.retire(v)
		if ctx.Err() != nil {
			return nil
		}
		if attempt >= 3 {
			return fmt.Errorf("table %s: %w", t.topic, err)
		}
		t.log.Warn("table's view failed; rebuilding its local copy from the topic", "error", err, "dir", t.dir)
		if err := t.wipe(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// retire stops lookups from using v, once those under way are done.
func (t *table) retire(v *goka.View) {
	t.mu.Lock()
	if t.view == v {
		t.view = nil
	}
	t.mu.Unlock()
}

func (t *table) wipe() error {
	matches, _ := filepath.Glob(filepath.Join(t.dir, t.topic+".*"))
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			return fmt.Errorf("table %s: remove local copy: %w", t.topic, err)
		}
	}
	return nil
}

// wait blocks until the view has caught up with the topic once.
func (t *table) wait(ctx context.Context) error {
	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *table) close() error { return t.em.Finish() }

func encodeEntry(value []byte, expires time.Time) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(expires.UnixMilli()))
	return append(b, value...)
}

func decodeEntry(b []byte) ([]byte, time.Time, error) {
	if len(b) < 8 {
		return nil, time.Time{}, errors.New("table entry shorter than its expiry time")
	}
	return b[8:], time.UnixMilli(int64(binary.BigEndian.Uint64(b))), nil
}

// Put implements store.
func (t *table) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return t.PutAsync(key, value, ttl)(ctx)
}

// PutAsync implements store.
func (t *table) PutAsync(key string, value []byte, ttl time.Duration) func(context.Context) error {
	now := time.Now()
	exp := now.Add(ttl)
	if value == nil {
		value = []byte{}
	}
	raw := encodeEntry(value, exp)
	t.mu.Lock()
	t.recent[key] = recentEntry{value: value, raw: raw, expires: exp, written: now}
	t.mu.Unlock()
	t.signal()
	return t.emit(key, raw)
}

func (t *table) emit(key string, raw []byte) func(context.Context) error {
	done := make(chan error, 1)
	p, err := t.em.Emit(key, raw)
	if err != nil {
		done <- err
	} else {
		p.Then(func(err error) { done <- err })
	}
	return func(ctx context.Context) error {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("table %s: write %s: %w", t.topic, key, err)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Delete implements store.
func (t *table) Delete(key string) {
	t.mu.Lock()
	t.recent[key] = recentEntry{written: time.Now()}
	t.mu.Unlock()
	_ = t.emit(key, nil)
}

// Get implements store.
func (t *table) Get(key string) ([]byte, bool, error) {
	now := time.Now()
	t.mu.RLock()
	r, ok := t.recent[key]
	if ok && now.Sub(r.written) < overlayTTL {
		t.mu.RUnlock()
		if r.value == nil || now.After(r.expires) {
			return nil, false, nil
		}
		return r.value, true, nil
	}
	v := t.view
	if v == nil {
		t.mu.RUnlock()
		return nil, false, errors.New("table not running")
	}
	raw, err := v.Get(key) // under the lock: run retires the view before it closes
	t.mu.RUnlock()
	if err != nil {
		return nil, false, fmt.Errorf("table %s: get %s: %w", t.topic, key, err)
	}
	b, _ := raw.([]byte)
	if b == nil {
		return nil, false, nil
	}
	val, exp, err := decodeEntry(b)
	if err != nil || now.After(exp) {
		return nil, false, err
	}
	return val, true, nil
}

// sweep drops old overlay entries and tombstones expired keys.
func (t *table) sweep(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		t.mu.Lock()
		for k, r := range t.recent {
			if now.Sub(r.written) >= overlayTTL {
				delete(t.recent, k)
			}
		}
		v := t.view
		t.mu.Unlock()
		if v == nil || !v.Recovered() {
			continue
		}
		it, err := v.Iterator()
		if err != nil {
			continue
		}
		n := 0
		for it.Next() && ctx.Err() == nil {
			raw, err := it.Value()
			b, _ := raw.([]byte)
			if err != nil || b == nil {
				continue
			}
			if _, exp, err := decodeEntry(b); err == nil && now.After(exp) {
				_ = t.emit(it.Key(), nil)
				n++
			}
		}
		it.Release()
		if n > 0 {
			t.log.Debug("expired table entries deleted", "count", n)
		}
	}
}
