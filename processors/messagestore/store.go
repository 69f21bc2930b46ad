package messagestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/endpoint"
	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/tagpool"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Store is a running message_store worker: a replica of the store. Each
// instance reads every partition of its topics (no consumer group), so
// instances scale reads; writes (batches, tag-pool commands) go through
// Kafka and are applied by every instance in partition order.
type Store struct {
	*worker.Base
	cfg     *Config
	ix      *Index
	sources map[string]Source // full topic name -> what it holds
	batches string            // full name of the batches topic
	pools   string            // full name of the tag-pool topic

	mu      sync.Mutex
	waiters map[string]chan tagpool.Result
	applied chan struct{} // closed and replaced after every applied poll

	listener net.Listener
}

// New builds the worker.
func New(deps *topology.Deps, spec *topology.WorkerSpec, cfg *Config) (*Store, error) {
	b, err := worker.NewBase(deps, spec, cfg.Common)
	if err != nil {
		return nil, err
	}
	n := deps.Names
	s := &Store{Base: b, cfg: cfg, sources: map[string]Source{}, waiters: map[string]chan tagpool.Result{}, applied: make(chan struct{}),
		batches: n.Prefix + cfg.BatchesTopic(), pools: n.Prefix + cfg.TagpoolTopic()}
	for _, c := range cfg.Connectors {
		s.sources[n.Inbound(c)] = SourceInbound
		s.sources[n.Outbound(c)] = SourceOutbound
		s.sources[n.Event(c)] = SourceEvent
	}
	s.sources[s.batches] = SourceBatches
	s.sources[s.pools] = SourceTagpool
	return s, nil
}

func (s *Store) topics() []string {
	out := make([]string, 0, len(s.sources))
	for t := range s.sources {
		out = append(out, t)
	}
	return out
}

// Run opens the index, catches up with the batches topic, serves the API
// and indexes the topics until ctx is cancelled.
func (s *Store) Run(ctx context.Context) error {
	defer s.Close()
	dir := filepath.Join(s.Deps.StateDir(s.Name), "message_store")
	ends, err := s.endOffsets(ctx)
	if err != nil {
		return err
	}
	if err := s.openIndex(dir, ends); err != nil {
		return err
	}
	defer s.ix.Close()
	// Batch definitions first, so that messages are linked to batches the
	// same way on a rebuild as they were live.
	if err := s.consume(ctx, map[string]bool{s.batches: true}, ends); err != nil {
		return err
	}
	addr, err := endpoint.Server(s.cfg.TwistedEndpoint)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("message store %s: listen on %s: %w", s.Name, addr, err)
	}
	s.listener = ln
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Error("message store API stopped", "error", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	s.Log.Info("message store API listening", "addr", ln.Addr().String(), "connectors", s.cfg.Connectors)
	hbCtx, stop := context.WithCancel(ctx)
	defer stop()
	go s.RunHeartbeat(hbCtx)
	err = s.consume(ctx, nil, nil)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Store) endOffsets(ctx context.Context) (kadm.ListedOffsets, error) {
	ends, err := kadm.NewClient(s.Client).ListEndOffsets(ctx, s.topics()...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("message store %s: end offsets: %w", s.Name, err)
	}
	return ends, nil
}

// openIndex opens the local index; when it is ahead of the topics (the
// broker's data was wiped or restored from an older backup) it is deleted
// and rebuilt from the topics, with a log line.
func (s *Store) openIndex(dir string, ends kadm.ListedOffsets) error {
	ix, err := OpenIndex(dir, s.Deps.Codecs)
	if err != nil {
		return err
	}
	offs, err := ix.Offsets()
	if err != nil {
		_ = ix.Close()
		return err
	}
	for topic, parts := range offs {
		for p, off := range parts {
			end, ok := ends.Lookup(topic, p)
			if ok && off <= end.Offset {
				continue
			}
			s.Log.Warn("message store index is ahead of its topics; deleting it and rebuilding from the topics",
				"topic", topic, "partition", p, "index_offset", off, "topic_end", end.Offset, "path", dir)
			_ = ix.Close()
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("remove stale index: %w", err)
			}
			ix, err = OpenIndex(dir, s.Deps.Codecs)
			if err != nil {
				return err
			}
			s.ix = ix
			return nil
		}
	}
	s.ix = ix
	return nil
}

// consume indexes topics (nil: all) from the index's offsets; with until
// set it returns once every partition has reached those end offsets.
func (s *Store) consume(ctx context.Context, only map[string]bool, until kadm.ListedOffsets) error {
	offs, err := s.ix.Offsets()
	if err != nil {
		return err
	}
	parts, err := kadm.NewClient(s.Client).ListEndOffsets(ctx, s.topics()...)
	if err != nil {
		return fmt.Errorf("message store %s: partitions: %w", s.Name, err)
	}
	assign := map[string]map[int32]kgo.Offset{}
	remaining := map[string]map[int32]int64{}
	parts.Each(func(o kadm.ListedOffset) {
		if only != nil && !only[o.Topic] {
			return
		}
		if assign[o.Topic] == nil {
			assign[o.Topic] = map[int32]kgo.Offset{}
		}
		start := kgo.NewOffset().AtStart()
		from := int64(0)
		if off, ok := offs[o.Topic][o.Partition]; ok {
			start, from = kgo.NewOffset().At(off), off
		}
		assign[o.Topic][o.Partition] = start
		if until != nil {
			if end, ok := until.Lookup(o.Topic, o.Partition); ok && end.Offset > from {
				if remaining[o.Topic] == nil {
					remaining[o.Topic] = map[int32]int64{}
				}
				remaining[o.Topic][o.Partition] = end.Offset
			}
		}
	})
	if until != nil && len(remaining) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(s.Deps.KafkaOpts(s.Name+".store"),
		kgo.ConsumePartitions(assign), kgo.FetchMaxWait(100*time.Millisecond), kgo.FetchMaxBytes(16<<20))...)
	if err != nil {
		return fmt.Errorf("message store %s: consumer: %w", s.Name, err)
	}
	defer cl.Close()
	for {
		fs := cl.PollRecords(ctx, 5000)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fs.EachError(func(t string, p int32, err error) {
			s.Log.Warn("fetch error", "topic", t, "partition", p, "error", err)
		})
		recs := make([]Record, 0, fs.NumRecords())
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, Record{Source: s.sources[r.Topic], Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
			if m := remaining[r.Topic]; m != nil {
				if end, ok := m[r.Partition]; ok && r.Offset+1 >= end {
					delete(m, r.Partition)
					if len(m) == 0 {
						delete(remaining, r.Topic)
					}
				}
			}
		})
		if len(recs) > 0 {
			// An unknown schema id met while the registry is down waits
			// for it (nothing is skipped from the index meanwhile).
			results, skipped, err := s.ix.Apply(s.RegistryWait(ctx), recs)
			if err != nil {
				return err
			}
			s.Count("indexed", int64(len(recs)))
			if skipped > 0 {
				s.Count("skipped", int64(skipped))
				s.Log.Warn("records the store could not decode were skipped", "count", skipped)
			}
			s.notify(results)
		}
		if until != nil && len(remaining) == 0 {
			return nil
		}
	}
}

// notify wakes requests waiting for tag-pool results and for the index
// to move on.
func (s *Store) notify(results map[string]tagpool.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range results {
		if ch, ok := s.waiters[id]; ok {
			ch <- r
			delete(s.waiters, id)
		}
	}
	close(s.applied)
	s.applied = make(chan struct{})
}

// waitUntil waits until cond holds after an applied poll, or ctx ends.
func (s *Store) waitUntil(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.applied
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// command publishes a tag-pool command and waits for its result.
func (s *Store) command(ctx context.Context, c *tagpool.Command) (tagpool.Result, error) {
	c.ID = schemas.GenerateID()
	c.Time = time.Now().UTC().Truncate(time.Microsecond)
	if err := c.Validate(); err != nil {
		return tagpool.Result{}, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return tagpool.Result{}, err
	}
	ch := make(chan tagpool.Result, 1)
	s.mu.Lock()
	s.waiters[c.ID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, c.ID)
		s.mu.Unlock()
	}()
	if err := kafka.ProduceSync(ctx, s.Client, &kgo.Record{Topic: s.pools, Key: []byte(c.Pool), Value: b}); err != nil {
		return tagpool.Result{}, fmt.Errorf("publish tag-pool command: %w", err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return tagpool.Result{}, fmt.Errorf("waiting for the tag-pool command to be applied: %w", ctx.Err())
	}
}

// putBatch publishes a batch definition and waits until it is indexed.
func (s *Store) putBatch(ctx context.Context, b *Batch) error {
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := kafka.ProduceSync(ctx, s.Client, &kgo.Record{Topic: s.batches, Key: []byte(b.ID), Value: v}); err != nil {
		return fmt.Errorf("publish batch: %w", err)
	}
	return s.waitUntil(ctx, func() bool {
		got, ok := s.ix.Batch(b.ID)
		return ok && (b.DoneAt == nil) == (got.DoneAt == nil)
	})
}
