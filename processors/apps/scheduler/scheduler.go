// Package scheduler is the message scheduler (Vumi 0.4's scheduled and
// grouped messages): a user message published on <worker>.schedule with a
// send time in helper_metadata.schedule is sent on
// <transport_name>.outbound at that time — to its to_addr, or to each
// address of helper_metadata.schedule.to_addrs (a grouped message).
//
// <worker>.schedule is a compacted topic keyed by the schedule id: it is
// the table of pending schedules. Sending a schedule writes a tombstone
// for its key (so does cancelling one), so a restart replays only what is
// still pending. Instances share the topic's partitions in a consumer
// group; each keeps its partitions' pending schedules in a heap and fires
// them on time. docs/scheduling.md has more.
package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// MetadataKey is the helper_metadata key of a schedule request.
const MetadataKey = "schedule"

// TopicOf is the schedule topic of a scheduler worker (without prefix).
func TopicOf(worker string) string { return worker + ".schedule" }

// Request marks m to be sent at at; with toAddrs, m is sent to each of
// them (a grouped message) instead of its to_addr. Publish the result on
// the scheduler's topic keyed by Key(m).
func Request(m *schemas.UserMessage, at time.Time, toAddrs ...string) *schemas.UserMessage {
	if m.HelperMetadata == nil {
		m.HelperMetadata = schemas.Metadata{}
	}
	s := map[string]any{"send_at": at.UTC().Format(time.RFC3339Nano)}
	if len(toAddrs) > 0 {
		list := make([]any, len(toAddrs))
		for i, a := range toAddrs {
			list[i] = a
		}
		s["to_addrs"] = list
	}
	m.HelperMetadata[MetadataKey] = s
	return m
}

// Key is the schedule topic key of a request: its message_id, which is
// also what a cancellation (a tombstone) is keyed by.
func Key(m *schemas.UserMessage) []byte { return []byte(m.MessageID) }

// schedule reads a request's send time and addresses.
func schedule(m *schemas.UserMessage) (time.Time, []string, error) {
	s, ok := m.HelperMetadata[MetadataKey].(map[string]any)
	if !ok {
		return time.Time{}, nil, errors.New("helper_metadata.schedule: missing")
	}
	at, _ := s["send_at"].(string)
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("helper_metadata.schedule.send_at: %w", err)
	}
	var to []string
	if list, present := s["to_addrs"]; present {
		l, ok := list.([]any)
		if !ok {
			return time.Time{}, nil, errors.New("helper_metadata.schedule.to_addrs: not a list")
		}
		for _, a := range l {
			addr, ok := a.(string)
			if !ok || addr == "" {
				return time.Time{}, nil, errors.New("helper_metadata.schedule.to_addrs: not a list of addresses")
			}
			to = append(to, addr)
		}
	}
	return t, to, nil
}

// Config is the scheduler's config.
type Config struct {
	// TransportName: scheduled messages are sent on
	// <transport_name>.outbound. Required.
	TransportName string `yaml:"transport_name"`
	worker.Common `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	ac := app.Config{TransportName: c.TransportName}
	if err := ac.ValidateBase(); err != nil {
		return err
	}
	c.Common.Defaults()
	return nil
}

// IO implements topology.WorkerConfig.
func (c *Config) IO(name string) topology.IO {
	t := c.TransportName
	sched := topology.Stream{Topic: TopicOf(name), Kind: "user_message", Compacted: true}
	return topology.IO{
		Consumes: []topology.Stream{sched},
		Produces: []topology.Stream{sched,
			{Topic: t + topology.SuffixOutbound, Kind: "user_message"},
			{Topic: t + topology.SuffixFailures, Kind: "failure"}},
	}
}

// Kind is the scheduler worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name:    "message_scheduler",
		Role:    topology.RoleApplication,
		Summary: "sends scheduled (and grouped) messages at their time; schedules survive restarts",
		NewConfig: func() topology.WorkerConfig {
			return &Config{}
		},
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				b, err := worker.NewBase(deps, spec, cfg.Common)
				if err != nil {
					return err
				}
				defer b.Close()
				return newScheduler(b, cfg).run(ctx)
			}), nil
		},
	}
}

type entry struct {
	key  string
	at   time.Time
	msg  *schemas.UserMessage
	to   []string
	part int32
	idx  int
}

type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *entryHeap) Push(x any)        { e := x.(*entry); e.idx = len(*h); *h = append(*h, e) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}

type partition struct {
	loaded bool
	end    int64 // the end offset when assigned: loaded once read up to it
	keys   map[string]*entry
}

type scheduler struct {
	*worker.Base
	cfg      *Config
	topic    string
	outbound string

	mu    sync.Mutex
	parts map[int32]*partition
	due   entryHeap // entries of loaded partitions only
	wake  chan struct{}
}

func newScheduler(b *worker.Base, cfg *Config) *scheduler {
	return &scheduler{Base: b, cfg: cfg, topic: b.Deps.Names.Prefix + TopicOf(b.Name),
		outbound: b.Deps.Names.Outbound(cfg.TransportName), parts: map[int32]*partition{}, wake: make(chan struct{}, 1)}
}

func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *scheduler) run(ctx context.Context) error {
	// No offsets are ever committed: every assignment reads its
	// partitions from the start, rebuilding the pending schedules.
	cl, err := kgo.NewClient(append(s.Deps.KafkaOpts(s.Name+".consumer"),
		kgo.ConsumerGroup(s.Deps.Names.Prefix+s.Name),
		kgo.ConsumeTopics(s.topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.revoked),
	)...)
	if err != nil {
		return fmt.Errorf("scheduler %s: kafka client: %w", s.Name, err)
	}
	defer cl.Close()
	hbCtx, stop := context.WithCancel(ctx)
	defer stop()
	go s.RunHeartbeat(hbCtx)
	fired := make(chan struct{})
	go func() { defer close(fired); s.fireLoop(hbCtx) }()
	defer func() { stop(); <-fired }()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			s.Log.Warn("fetch error", "topic", t, "partition", p, "error", err)
		})
		fetches.EachRecord(func(r *kgo.Record) { s.apply(ctx, r) })
	}
}

func (s *scheduler) assigned(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, s.topic)
	if err != nil {
		s.Log.Warn("end offsets not listed; schedules of new partitions wait for their first record", "error", err)
	}
	starts, _ := adm.ListStartOffsets(ctx, s.topic)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range m[s.topic] {
		st := &partition{keys: map[string]*entry{}, end: -1}
		if err == nil {
			if o, ok := ends.Lookup(s.topic, p); ok && o.Err == nil {
				st.end = o.Offset
				if so, ok := starts.Lookup(s.topic, p); ok && so.Err == nil && so.Offset >= o.Offset {
					st.loaded = true
				}
			}
		}
		s.parts[p] = st
	}
	s.Log.Info("partitions assigned", "partitions", m[s.topic])
}

func (s *scheduler) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range m[s.topic] {
		if st, ok := s.parts[p]; ok && st.loaded {
			for _, e := range st.keys {
				if e.idx >= 0 {
					heap.Remove(&s.due, e.idx)
				}
			}
		}
		delete(s.parts, p)
	}
}

// apply adds, replaces or (tombstone) removes a schedule. A schedule
// written with a schema id not seen before, met while the schema registry
// is down, waits for the registry (nothing is committed here: every
// assignment reads the topic again).
func (s *scheduler) apply(ctx context.Context, r *kgo.Record) {
	key := string(r.Key)
	var e *entry
	if r.Value != nil {
		var m schemas.UserMessage
		err := s.Deps.Codecs.UserMessage.DecodeContext(s.RegistryWait(ctx), r.Value, &m)
		if schemas.IsRegistryUnavailable(err) {
			return // stopping
		}
		if err == nil {
			var at time.Time
			var to []string
			if at, to, err = schedule(&m); err == nil {
				e = &entry{key: key, at: at, msg: &m, to: to, part: r.Partition, idx: -1}
			}
		}
		if err != nil {
			f := s.FailureFor(r, nil, schemas.TypeUserMessage, worker.Permanent(fmt.Errorf("schedule request: %w", err)))
			if err := s.SendFailure(context.Background(), s.cfg.TransportName, f); err != nil {
				s.Log.Error("failure not published", "error", err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.parts[r.Partition]
	if !ok {
		return
	}
	if old, ok := st.keys[key]; ok {
		if old.idx >= 0 {
			heap.Remove(&s.due, old.idx)
		}
		delete(st.keys, key)
	}
	if e != nil {
		st.keys[key] = e
		if st.loaded {
			heap.Push(&s.due, e)
		}
	}
	if !st.loaded && (st.end < 0 || r.Offset+1 >= st.end) {
		st.loaded = true
		for _, e := range st.keys {
			heap.Push(&s.due, e)
		}
		s.Log.Info("partition loaded", "partition", r.Partition, "pending", len(st.keys))
	}
	s.poke()
}

// fireLoop sends what is due, sleeping until the next schedule.
func (s *scheduler) fireLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var batch []*entry
		now := time.Now()
		for s.due.Len() > 0 && !s.due[0].at.After(now) {
			batch = append(batch, heap.Pop(&s.due).(*entry))
		}
		wait := time.Hour
		if s.due.Len() > 0 {
			wait = time.Until(s.due[0].at)
		}
		s.mu.Unlock()
		if len(batch) > 0 {
			s.fire(ctx, batch)
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// fire sends the messages of due schedules, then writes their tombstones.
// A batch once started is finished even when the worker is stopping (with
// a bounded wait), so that a clean stop sends nothing twice.
func (s *scheduler) fire(runCtx context.Context, batch []*entry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	var tombs []*kgo.Record
	for _, e := range batch {
		for _, m := range outgoing(e) {
			out, err := s.Stack.Outbound(ctx, m, middleware.Context{Phase: middleware.Publish, Connector: s.cfg.TransportName, Worker: s.Name})
			if err != nil {
				s.Log.Error("scheduled message dropped by middleware error", "message_id", m.MessageID, "error", err)
				continue
			}
			if out == nil {
				continue
			}
			v, err := s.Deps.Codecs.UserMessage.Encode(out)
			if err != nil {
				s.Log.Error("scheduled message not encodable", "message_id", m.MessageID, "error", err)
				continue
			}
			recs = append(recs, &kgo.Record{Topic: s.outbound, Key: topology.OutboundKey(out), Value: v})
		}
		tombs = append(tombs, &kgo.Record{Topic: s.topic, Key: []byte(e.key), Partition: e.part})
	}
	for {
		if err := kafka.ProduceSync(ctx, s.Client, recs...); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Log.Warn("scheduled messages not sent; retrying", "error", err)
			time.Sleep(time.Second)
			continue
		}
		break
	}
	s.Count("sent", int64(len(recs)))
	if err := kafka.ProduceSync(ctx, s.Client, tombs...); err != nil && ctx.Err() == nil {
		s.Log.Error("sent schedules not marked done; they may be sent again after a restart", "error", err)
	}
	s.mu.Lock()
	for _, e := range batch {
		if st, ok := s.parts[e.part]; ok && st.keys[e.key] == e {
			delete(st.keys, e.key)
		}
	}
	s.mu.Unlock()
}

// outgoing is what a schedule sends: the message, or a copy per address
// of a grouped message (each with its own message_id).
func outgoing(e *entry) []*schemas.UserMessage {
	base := *e.msg
	base.HelperMetadata = e.msg.HelperMetadata.Clone()
	delete(base.HelperMetadata, MetadataKey)
	if len(e.to) == 0 {
		return []*schemas.UserMessage{&base}
	}
	out := make([]*schemas.UserMessage, 0, len(e.to))
	for _, addr := range e.to {
		m := base
		m.MessageID = schemas.GenerateID()
		m.ToAddr = schemas.String(addr)
		m.HelperMetadata = base.HelperMetadata.Clone()
		m.HelperMetadata["schedule_id"] = e.key
		out = append(out, &m)
	}
	return out
}
