// Package kvtopic is a small replicated key-value map kept in a compacted
// Kafka topic: every instance loads the whole topic at start, keeps
// following it (so writes of other instances show up), and writes through
// to it. Middleware uses it for the little state Vumi kept in Redis
// outside a goka processor (where a group table is not reachable).
package kvtopic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
)

type entry struct {
	val       []byte
	partition int32
	offset    int64
}

// Store is the map. Reads are local; writes wait for the broker's ack.
type Store struct {
	topic string
	prod  *kgo.Client
	cons  *kgo.Client
	log   *slog.Logger

	mu sync.RWMutex
	m  map[string]entry

	cancel  context.CancelFunc
	done    chan struct{}
	changed chan struct{}
}

// Open loads topic (which must exist) to its end and starts following it.
// opts are the cluster's client options (seeds, TLS, SASL).
func Open(ctx context.Context, topic string, opts []kgo.Opt, log *slog.Logger) (*Store, error) {
	prod, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...), kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(kafka.DefaultProduceTimeout))...)
	if err != nil {
		return nil, fmt.Errorf("kvtopic %s: producer: %w", topic, err)
	}
	ends, err := kadm.NewClient(prod).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		prod.Close()
		return nil, fmt.Errorf("kvtopic %s: end offsets: %w", topic, err)
	}
	cons, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		prod.Close()
		return nil, fmt.Errorf("kvtopic %s: consumer: %w", topic, err)
	}
	s := &Store{topic: topic, prod: prod, cons: cons, log: log, m: map[string]entry{}, done: make(chan struct{}), changed: make(chan struct{}, 1)}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	for len(want) > 0 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			s.closeClients()
			return nil, fmt.Errorf("kvtopic %s: loading: %w", topic, ctx.Err())
		}
		if err := fetchErr(fs); err != nil {
			s.closeClients()
			return nil, fmt.Errorf("kvtopic %s: loading: %w", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			s.apply(r)
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	fctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.follow(fctx)
	return s, nil
}

func fetchErr(fs kgo.Fetches) error {
	var errs []error
	fs.EachError(func(t string, p int32, err error) {
		errs = append(errs, fmt.Errorf("%s/%d: %w", t, p, err))
	})
	return errors.Join(errs...)
}

func (s *Store) follow(ctx context.Context) {
	defer close(s.done)
	for {
		fs := s.cons.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		if err := fetchErr(fs); err != nil {
			s.log.Warn("kvtopic: fetch error", "topic", s.topic, "error", err)
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) { s.apply(r); n++ })
		if n > 0 {
			s.notify()
		}
	}
}

// notify signals Changed without blocking.
func (s *Store) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Changed is signalled (at most one signal pending) after records of this
// or another instance have been applied, or a local write: a watcher reads
// Snapshot when it fires.
func (s *Store) Changed() <-chan struct{} { return s.changed }

// Snapshot returns a copy of the live keys and values.
func (s *Store) Snapshot() map[string][]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string][]byte, len(s.m))
	for k, e := range s.m {
		if e.val != nil {
			out[k] = e.val
		}
	}
	return out
}

// apply sets a record unless a newer local write of the key is known.
func (s *Store) apply(r *kgo.Record) {
	k := string(r.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[k]; ok && e.partition == r.Partition && e.offset > r.Offset {
		return
	}
	if r.Value == nil {
		delete(s.m, k)
		return
	}
	s.m[k] = entry{val: r.Value, partition: r.Partition, offset: r.Offset}
}

// Get returns the value of key.
func (s *Store) Get(key string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.m[key]
	if !ok || e.val == nil {
		return nil, false
	}
	return e.val, true
}

// Put writes key to the topic and the local map.
func (s *Store) Put(ctx context.Context, key string, val []byte) error {
	if val == nil {
		val = []byte{}
	}
	return s.write(ctx, key, val)
}

// Delete writes a tombstone for key.
func (s *Store) Delete(ctx context.Context, key string) error { return s.write(ctx, key, nil) }

func (s *Store) write(ctx context.Context, key string, val []byte) error {
	r := &kgo.Record{Topic: s.topic, Key: []byte(key), Value: val}
	if err := kafka.ProduceSync(ctx, s.prod, r); err != nil {
		return fmt.Errorf("kvtopic %s: write %q: %w", s.topic, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.partition == r.Partition && e.offset > r.Offset {
		return nil
	}
	// A tombstone is kept as an entry with a nil value until compaction,
	// so that an older record replayed by follow cannot resurrect the key.
	s.m[key] = entry{val: val, partition: r.Partition, offset: r.Offset}
	s.notify()
	return nil
}

// Len is the number of live keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, e := range s.m {
		if e.val != nil {
			n++
		}
	}
	return n
}

func (s *Store) closeClients() {
	s.cons.Close()
	s.prod.Close()
}

// Close stops following and releases the clients.
func (s *Store) Close() error {
	s.cancel()
	<-s.done
	s.closeClients()
	return nil
}

// Each calls fn with every live key and its value, in no order.
func (s *Store) Each(fn func(key string, val []byte)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, e := range s.m {
		if e.val != nil {
			fn(k, e.val)
		}
	}
}
