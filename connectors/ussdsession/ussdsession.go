// Package ussdsession is the USSD session table of the HTTP aggregator
// transports (Vumi's SessionManager, which kept sessions in Redis with a
// timeout): a compacted topic written by a goka Emitter and read through a
// goka View, so that any instance of a transport can continue a session
// that another one started, and a restart loses none.
//
// Entries carry their expiry time and the time they were written; expired
// entries read as absent and are tombstoned by a periodic sweep. An
// instance sees its own writes at once (before its view has consumed
// them) through a short-lived overlay; between an overlay entry and the
// view's entry, the more recently written wins.
package ussdsession

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Topic is the session table's topic of a transport.
func Topic(transportName string) string { return transportName + ".ussd_sessions" }

// Stream is the table's topic declaration, for a config's IO.
func Stream(transportName string) topology.Stream { return TableStream(Topic(transportName)) }

// AddIO declares the session table in io (read and written).
func AddIO(io topology.IO, transportName string) topology.IO {
	io.Consumes = append(io.Consumes, Stream(transportName))
	io.Produces = append(io.Produces, Stream(transportName))
	return io
}

// Session is one USSD session's stored fields (Vumi stored a flat dict of
// strings).
type Session map[string]string

type entry struct {
	Fields  Session `json:"f,omitempty"`
	Expires int64   `json:"exp"` // Unix ms
	Written int64   `json:"at"`  // Unix ms
	Deleted bool    `json:"del,omitempty"`
}

// overlayTTL bounds how long a local write shadows the view.
const overlayTTL = 30 * time.Second

// Store is a running session table.
type Store struct {
	topic string
	ttl   time.Duration
	base  *worker.Base
	log   *slog.Logger
	em    *goka.Emitter

	mu   sync.RWMutex
	view *goka.View
	// viewMu is held (read) across every use of the view: goka closes a
	// view's partitions when its Run ends without any locking of its own,
	// so Run detaches the view under the write lock before it stops.
	viewMu  sync.RWMutex
	overlay map[string]entry
	ready   chan struct{}
	now     func() time.Time
	// writeTimeout, when set, bounds every write.
	writeTimeout time.Duration
}

// Option configures a Store.
type Option func(*Store)

// WriteTimeout bounds every write (Put, Create, Save, Delete): with Kafka
// unreachable they fail this soon instead of waiting for the producer to
// give up. The producer gives the write's record up soon after too (its
// delivery timeout, at least a second), so that a write reported failed is
// not stored much later, and the table stops promptly instead of waiting
// for records still pending.
func WriteTimeout(d time.Duration) Option { return func(s *Store) { s.writeTimeout = d } }

// Open builds the session table of transportName with sessions living ttl
// after their last write. Run must be called for it to work.
func Open(b *worker.Base, transportName string, ttl time.Duration, opts ...Option) (*Store, error) {
	return OpenTable(b, Topic(transportName), ttl, opts...)
}

// TableStream declares a keyed table's compacted topic, for a config's IO.
func TableStream(topic string) topology.Stream {
	return topology.Stream{Topic: topic, Kind: "state", Compacted: true}
}

// OpenTable builds a keyed table with expiring entries on topic (without
// the cluster's prefix; declare it in the worker's IO with TableStream),
// for other state Vumi kept in Redis with a lifetime, e.g. a transport's
// map from a provider's message ids to Vumi's. Entries are flat string
// maps that live ttl after their last write. Run must be called for it to
// work.
func OpenTable(b *worker.Base, topic string, ttl time.Duration, opts ...Option) (*Store, error) {
	topic = b.Deps.Names.Prefix + topic
	s := &Store{topic: topic, ttl: ttl, base: b, log: b.Log.With("table", topic),
		overlay: map[string]entry{}, ready: make(chan struct{}), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	var kopts []kgo.Opt
	if s.writeTimeout > 0 {
		// franz-go's shortest delivery timeout is a second.
		kopts = append(kopts, kgo.RecordDeliveryTimeout(max(s.writeTimeout, time.Second)))
	}
	em, err := goka.NewEmitter(b.Deps.Brokers, goka.Stream(topic), new(gokacodec.Bytes),
		goka.WithEmitterProducerBuilder(b.Deps.GokaProducerBuilder(b.Name+".sessions", kopts...)),
		goka.WithEmitterHasher(kafka.KafkaHasher()),
		goka.WithEmitterClientID(b.Deps.Cluster.Kafka.ClientID+"."+b.Name+".sessions"),
	)
	if err != nil {
		return nil, fmt.Errorf("session table %s: emitter: %w", topic, err)
	}
	s.em = em
	return s, nil
}

// TTL is the sessions' lifetime.
func (s *Store) TTL() time.Duration { return s.ttl }

// Run keeps the local copy up to date and sweeps expired sessions until
// ctx ends.
func (s *Store) Run(ctx context.Context) error {
	defer func() { _ = s.em.Finish() }()
	// Auto-reconnect: a view that loses Kafka keeps its local copy and
	// reconnects, instead of stopping itself; goka closes a stopping
	// view's partitions without a lock, which raced with lookups here
	// (TestSafaricomKafkaDown under -race). It now stops only through
	// viewCtx, after detach.
	v, err := s.base.NewView(goka.Table(s.topic), new(gokacodec.Bytes), goka.WithViewAutoReconnect())
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.view = v
	s.mu.Unlock()
	go func() {
		select {
		case <-v.WaitRunning():
			close(s.ready)
		case <-ctx.Done():
		}
	}()
	go s.sweep(ctx, sweepEvery(s.ttl))
	// The view stops only once nothing uses it any more.
	viewCtx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	defer stopView()
	go func() {
		<-ctx.Done()
		s.detach()
		stopView()
	}()
	err = v.Run(viewCtx)
	s.detach()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("session table %s: %w", s.topic, err)
	}
	return nil
}

// detach makes the view unreachable, waiting for its current users.
func (s *Store) detach() {
	s.viewMu.Lock()
	s.mu.Lock()
	s.view = nil
	s.mu.Unlock()
	s.viewMu.Unlock()
}

func sweepEvery(ttl time.Duration) time.Duration {
	return min(max(ttl/4, time.Second), time.Minute)
}

// Wait blocks until the table has caught up with its topic once.
func (s *Store) Wait(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get returns the live session stored under key (nil when there is none or
// it expired).
func (s *Store) Get(key string) (Session, error) {
	now := s.now()
	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	s.mu.RLock()
	local, haveLocal := s.overlay[key]
	v := s.view
	s.mu.RUnlock()
	if haveLocal && now.Sub(time.UnixMilli(local.Written)) >= overlayTTL {
		haveLocal = false
	}
	var remote entry
	haveRemote := false
	if v != nil {
		raw, err := v.Get(key)
		if err != nil {
			return nil, fmt.Errorf("session table %s: get: %w", s.topic, err)
		}
		if b, _ := raw.([]byte); b != nil {
			if err := json.Unmarshal(b, &remote); err != nil {
				s.log.Warn("undecodable session entry ignored", "error", err)
			} else {
				haveRemote = true
			}
		}
	}
	e := remote
	if haveLocal && (!haveRemote || local.Written >= remote.Written) {
		e = local
	} else if !haveRemote {
		return nil, nil
	}
	if e.Deleted || now.UnixMilli() >= e.Expires {
		return nil, nil
	}
	return e.Fields, nil
}

// Put stores a session under key for the table's lifetime, and returns
// once Kafka has it.
func (s *Store) Put(ctx context.Context, key string, fields Session) error {
	return s.put(ctx, key, fields, s.now().Add(s.ttl))
}

// CreatedAt is the field Create stores the session's start in (Unix
// seconds with a fraction, as Vumi's SessionManager stored it).
const CreatedAt = "created_at"

// Create starts a session under key (Vumi's SessionManager.create_session):
// it records the start time in created_at and lives the table's lifetime
// from now, however often it is saved afterwards.
func (s *Store) Create(ctx context.Context, key string, fields Session) (Session, error) {
	out := Session{CreatedAt: strconv.FormatFloat(float64(s.now().UnixMicro())/1e6, 'f', -1, 64)}
	for k, v := range fields {
		out[k] = v
	}
	return out, s.put(ctx, key, out, s.now().Add(s.ttl))
}

// Save stores a session's new fields (Vumi's SessionManager.save_session)
// without extending its life: it still expires the table's lifetime after
// its created_at (or from now, for a session without one).
func (s *Store) Save(ctx context.Context, key string, fields Session) error {
	expires := s.now().Add(s.ttl)
	if at, err := strconv.ParseFloat(fields[CreatedAt], 64); err == nil {
		expires = time.UnixMicro(int64(at * 1e6)).Add(s.ttl)
	}
	return s.put(ctx, key, fields, expires)
}

func (s *Store) put(ctx context.Context, key string, fields Session, expires time.Time) error {
	now := s.now()
	e := entry{Fields: fields, Expires: expires.UnixMilli(), Written: now.UnixMilli()}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("session table %s: encode: %w", s.topic, err)
	}
	s.mu.Lock()
	s.overlay[key] = e
	s.mu.Unlock()
	return s.emit(ctx, key, b)
}

// Delete removes the session under key, and returns once Kafka has it.
// The deletion is written as a marker with its time (tombstoned by the
// sweep later), so that another instance whose own recent write of the
// session still shadows its view sees that the deletion is newer.
func (s *Store) Delete(ctx context.Context, key string) error {
	now := s.now()
	e := entry{Deleted: true, Written: now.UnixMilli(), Expires: now.Add(overlayTTL).UnixMilli()}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("session table %s: encode: %w", s.topic, err)
	}
	s.mu.Lock()
	s.overlay[key] = e
	s.mu.Unlock()
	return s.emit(ctx, key, b)
}

func (s *Store) emit(ctx context.Context, key string, value []byte) error {
	if s.writeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.writeTimeout)
		defer cancel()
	}
	done := make(chan error, 1)
	var msg any
	if value != nil {
		msg = value
	}
	p, err := s.em.Emit(key, msg)
	if err != nil {
		return fmt.Errorf("session table %s: write: %w", s.topic, err)
	}
	p.Then(func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("session table %s: write: %w", s.topic, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sweep drops old overlay entries and tombstones expired sessions.
func (s *Store) sweep(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := s.now()
		s.mu.Lock()
		for k, e := range s.overlay {
			if now.Sub(time.UnixMilli(e.Written)) >= overlayTTL {
				delete(s.overlay, k)
			}
		}
		s.mu.Unlock()
		s.viewMu.RLock()
		s.mu.RLock()
		v := s.view
		s.mu.RUnlock()
		if v == nil || !v.Recovered() {
			s.viewMu.RUnlock()
			continue
		}
		it, err := v.Iterator()
		if err != nil {
			s.viewMu.RUnlock()
			continue
		}
		var expired []string
		for it.Next() && ctx.Err() == nil {
			raw, err := it.Value()
			b, _ := raw.([]byte)
			if err != nil || b == nil {
				continue
			}
			var e entry
			if json.Unmarshal(b, &e) == nil && now.UnixMilli() >= e.Expires {
				expired = append(expired, it.Key())
			}
		}
		it.Release()
		s.viewMu.RUnlock()
		for _, k := range expired {
			// A session this instance wrote since the view read it is
			// alive again: keep it.
			s.mu.RLock()
			local, rewritten := s.overlay[k]
			s.mu.RUnlock()
			if rewritten && !local.Deleted && now.UnixMilli() < local.Expires {
				continue
			}
			if _, err := s.em.Emit(k, nil); err != nil {
				s.log.Warn("expired session not deleted", "error", err)
			}
		}
		if len(expired) > 0 {
			s.log.Debug("expired sessions deleted", "count", len(expired))
		}
	}
}

// Serve runs the session tables and, once they have caught up with their
// topics, the HTTP-RPC server s, until ctx ends; the tables stop after the
// server.
func Serve(ctx context.Context, s *httprpc.Server, stores ...*Store) error {
	stCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	stErr := make(chan error, len(stores))
	for _, st := range stores {
		go func() { stErr <- st.Run(stCtx) }()
	}
	stopped := func() error {
		stop()
		var err error
		for range stores {
			if e := <-stErr; e != nil && err == nil {
				err = e
			}
		}
		return err
	}
	for _, st := range stores {
		select {
		case <-st.ready:
		case err := <-stErr:
			if err == nil {
				err = errors.New("session table stopped")
			}
			stop()
			for range len(stores) - 1 {
				<-stErr
			}
			return err
		case <-ctx.Done():
			_ = stopped()
			return nil
		}
	}
	err := s.Run(ctx)
	if e := stopped(); err == nil {
		err = e
	}
	return err
}

// Worker is the worker of an HTTP-RPC transport with a session table: each
// run builds a fresh server around the handler newHandler returns for the
// run's table, named table (a transport's transport_name, or a
// session_key_prefix shared by several transports), whose sessions live
// ttl.
func Worker(deps *topology.Deps, spec *topology.WorkerSpec, cfg *httprpc.Config, table string, ttl time.Duration,
	opts httprpc.Options, newHandler func(*Store) httprpc.Handler) topology.Worker {
	return topology.WorkerFunc(func(ctx context.Context) error {
		var h handlerSlot
		var st *Store
		opts.Health = func() map[string]any {
			if st == nil {
				return nil
			}
			return map[string]any{"session_table": st.Progress()}
		}
		s, err := httprpc.New(deps, spec, cfg, &h, opts)
		if err != nil {
			return err
		}
		// Session writes fail as fast as publishing does when Kafka is
		// unreachable, so that requests are answered 503 promptly.
		st, err = Open(s.Transport.Base, table, ttl, WriteTimeout(time.Duration(cfg.PublishTimeout*float64(time.Second))))
		if err != nil {
			s.Close()
			return err
		}
		h.Handler = newHandler(st)
		return Serve(ctx, s, st)
	})
}

// handlerSlot lets Worker build the server before the handler (which needs
// the table, which needs the server's base).
type handlerSlot struct{ httprpc.Handler }

// HandleReply implements httprpc.ReplyHandler when the handler does.
func (h *handlerSlot) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	if rh, ok := h.Handler.(httprpc.ReplyHandler); ok {
		return rh.HandleReply(ctx, s, m)
	}
	return s.DefaultReply(ctx, m)
}

var tableRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidTableName reports whether name can name a session table (it becomes
// part of a topic name: letters, digits, '.', '_' and '-').
func ValidTableName(name string) error {
	if !tableRe.MatchString(name) || len(name) > 200 {
		return fmt.Errorf("%q may only contain letters, digits, '.', '_' and '-' (at most 200)", name)
	}
	return nil
}

// Progress is what the table's local copy has read, for health checks:
// the topic, whether it has caught up once, and how many records it has
// read since the process started.
func (s *Store) Progress() map[string]any {
	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	s.mu.RLock()
	v := s.view
	s.mu.RUnlock()
	out := map[string]any{"topic": s.topic, "recovered": false, "records_read": 0}
	if v == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var n uint
	for _, p := range v.Stats(ctx).Partitions {
		if p != nil && p.Input != nil {
			n += p.Input.Count
		}
	}
	out["recovered"], out["records_read"] = v.Recovered(), n
	return out
}
