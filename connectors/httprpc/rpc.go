package httprpc

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
)

// forwarder moves replies between instances of one transport.
//
// Every instance announces itself once a second on the compacted
// <transport>.rpc-instances topic and reads everyone's announcements, so it
// knows which instances are alive. A reply consumed by an instance that
// does not hold its request is produced to <transport>.rpc keyed by the
// holder's id; every instance reads all of <transport>.rpc from where it
// started and takes the replies addressed to it. The alive instance with
// the smallest id also fails the forwarded replies of instances that died
// after the forward, so that no reply disappears.
type forwarder struct {
	s        *Server
	cl       *kgo.Client
	rpc      string
	presence string
	started  time.Time

	mu      sync.Mutex
	seen    map[string]time.Time // instance -> last presence beat
	tracked map[string]trackedReply
}

// trackedReply is a reply forwarded to another instance, kept until its
// request's deadline so that it can be failed if that instance died.
type trackedReply struct {
	target   string
	deadline time.Time
	rec      *kgo.Record
	msg      *schemas.UserMessage
}

const presenceEvery = time.Second

type presenceBeat struct {
	Worker   string `json:"worker"`
	LastSeen int64  `json:"last_seen_ms"`
}

func newForwarder(ctx context.Context, s *Server) (*forwarder, error) {
	names := s.Deps.Names
	f := &forwarder{s: s, rpc: names.Prefix + RPCTopic(s.cfg.TransportName), presence: names.Prefix + PresenceTopic(s.cfg.TransportName),
		started: time.Now(), seen: map[string]time.Time{}, tracked: map[string]trackedReply{}}
	cl, err := kgo.NewClient(append(s.Deps.KafkaOpts(s.Name+".rpc"), kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("http rpc: kafka client: %w", err)
	}
	f.cl = cl
	// Presence from the start; forwarded replies from now on.
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, f.rpc, f.presence)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("http rpc: topics %s, %s: %w", f.rpc, f.presence, err)
	}
	if err := ends.Error(); err != nil {
		cl.Close()
		return nil, fmt.Errorf("http rpc: topics %s, %s: %w", f.rpc, f.presence, err)
	}
	assign := map[string]map[int32]kgo.Offset{f.rpc: {}, f.presence: {}}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == f.rpc {
			assign[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
		} else {
			assign[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	cl.AddConsumePartitions(assign)
	f.beat(ctx)
	return f, nil
}

func (f *forwarder) close() {
	// Leave: a tombstone tells the others at once. Wait for it at most
	// 5 s (kafka.ProduceSync returns at its deadline even when Kafka is
	// unreachable).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = kafka.ProduceSync(ctx, f.cl, &kgo.Record{Topic: f.presence, Key: []byte(f.s.instance)})
	f.cl.Close()
}

func (f *forwarder) beat(ctx context.Context) {
	v, _ := json.Marshal(presenceBeat{Worker: f.s.Name, LastSeen: time.Now().UnixMilli()})
	f.cl.Produce(ctx, &kgo.Record{Topic: f.presence, Key: []byte(f.s.instance), Value: v}, func(_ *kgo.Record, err error) {
		if err != nil && ctx.Err() == nil {
			f.s.Log.Warn("presence beat not published", "error", err)
		}
	})
	f.mu.Lock()
	f.seen[f.s.instance] = time.Now()
	f.mu.Unlock()
}

// alive reports whether an instance announced itself recently.
func (f *forwarder) alive(instance string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	last, ok := f.seen[instance]
	return ok && time.Since(last) <= secs(f.s.cfg.RPCLiveness)
}

// janitor reports whether this instance is the alive one with the
// smallest id.
func (f *forwarder) janitor() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, last := range f.seen {
		if time.Since(last) <= secs(f.s.cfg.RPCLiveness) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return len(ids) > 0 && ids[0] == f.s.instance
}

// forward produces a reply for another instance.
func (f *forwarder) forward(ctx context.Context, target string, m *schemas.UserMessage) error {
	v, err := f.s.Deps.Codecs.UserMessage.Encode(m)
	if err != nil {
		return worker.Permanent(err)
	}
	if err := kafka.ProduceSync(ctx, f.cl, &kgo.Record{Topic: f.rpc, Key: []byte(target), Value: v}); err != nil {
		return worker.Temporary(fmt.Errorf("forward reply to instance %s: %w", target, err))
	}
	f.s.Count("replies_forwarded", 1)
	return nil
}

// run keeps presence fresh and takes forwarded replies until ctx ends.
func (f *forwarder) run(ctx context.Context) {
	go func() {
		t := time.NewTicker(presenceEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f.beat(ctx)
				f.sweep(ctx)
			}
		}
	}()
	for {
		fetches := f.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			f.s.Log.Warn("rpc fetch error", "topic", t, "partition", p, "error", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Topic == f.presence {
				f.presenceRecord(r)
				return
			}
			f.replyRecord(ctx, r)
		})
	}
}

func (f *forwarder) presenceRecord(r *kgo.Record) {
	id := string(r.Key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Value == nil {
		delete(f.seen, id)
		return
	}
	var b presenceBeat
	if json.Unmarshal(r.Value, &b) != nil {
		return
	}
	// Judge liveness by our own clock at reception for fresh beats, so
	// that clock skew between hosts does not matter; old beats replayed at
	// start-up count from their own time.
	at := time.UnixMilli(b.LastSeen)
	if r.Timestamp.After(f.started) {
		at = time.Now()
	}
	if at.After(f.seen[id]) {
		f.seen[id] = at
	}
}

func (f *forwarder) replyRecord(ctx context.Context, r *kgo.Record) {
	target := string(r.Key)
	var m schemas.UserMessage
	if err := f.s.Deps.Codecs.UserMessage.DecodeContext(f.s.RegistryWait(ctx), r.Value, &m); err != nil {
		f.s.Log.Error("undecodable forwarded reply", "offset", r.Offset, "error", err)
		return
	}
	if target == f.s.instance {
		f.s.Count("replies_received_forwarded", 1)
		if err := f.s.handleOutbound(ctx, &m); err != nil {
			f.s.Log.Error("forwarded reply not delivered", "message_id", m.MessageID, "error", err)
		}
		return
	}
	_, deadline := holderOf(&m)
	f.mu.Lock()
	f.tracked[m.MessageID] = trackedReply{target: target, deadline: deadline, rec: r, msg: &m}
	f.mu.Unlock()
}

// sweep fails, on the janitor, the forwarded replies whose holder died
// before answering; every instance forgets replies past their deadline.
func (f *forwarder) sweep(ctx context.Context) {
	grace := secs(f.s.cfg.RPCLiveness)
	now := time.Now()
	var due []trackedReply
	f.mu.Lock()
	for id, tr := range f.tracked {
		if now.After(tr.deadline.Add(grace)) {
			due = append(due, tr)
			delete(f.tracked, id)
		}
	}
	f.mu.Unlock()
	if len(due) == 0 || !f.janitor() {
		return
	}
	for _, tr := range due {
		if f.alive(tr.target) {
			continue // the holder answered or failed it itself
		}
		err := f.s.gone(ctx, tr.rec, tr.msg, fmt.Errorf("%w: instance %s that held the request died", ErrRequestGone, tr.target))
		if err != nil {
			f.s.Log.Error("failure not published", "message_id", tr.msg.MessageID, "error", err)
		}
	}
}
