// Package transport is the base of every transport: Vumi's publish helpers
// (publish_message, publish_ack, publish_nack, publish_delivery_report,
// publish_status, send_failure) over franz-go, and the outbound consumer
// that hands <transport_name>.outbound to the transport with bounded
// in-flight work, committing only what was handled.
package transport

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"regexp"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the part of every transport's config that the base reads
// (Vumi's TransportConfig). Embed it with `yaml:",inline"`.
type Config struct {
	// TransportName names the transport's topics: <transport_name>.inbound,
	// .outbound, .event and .failures. Required.
	TransportName string `yaml:"transport_name"`
	// AmqpPrefetchCount is Vumi's name for how many outbound messages may
	// be in flight at once; here it bounds concurrent HandleOutbound calls
	// and records fetched per poll. Default 20.
	AmqpPrefetchCount int `yaml:"amqp_prefetch_count"`
	// RateLimitCount, if set, is how many outbound messages one instance
	// hands to the outside world per RateLimitWindow (Junebug's
	// rate_limit_count); the rest wait on the topic. Default 0: no limit.
	RateLimitCount int `yaml:"rate_limit_count"`
	// RateLimitWindow is the window of RateLimitCount; default 1s.
	RateLimitWindow time.Duration `yaml:"rate_limit_window"`
	// MaxPendingPublishes caps the inbound messages and events being
	// published at once. When Kafka is slow or unreachable, a transport
	// that reads from sockets (telnet, SMPP, XMPP, IRC) blocks in
	// PublishMessage at the cap and so stops reading from its sockets,
	// instead of buffering what it reads without limit. Default 256.
	MaxPendingPublishes int `yaml:"max_pending_publishes"`
	worker.Common       `yaml:",inline"`
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// ValidateBase checks the base keys and fills defaults.
func (c *Config) ValidateBase() error {
	if c.TransportName == "" {
		return errors.New("key transport_name: is required")
	}
	if !nameRe.MatchString(c.TransportName) {
		return fmt.Errorf("key transport_name: %q may only contain letters, digits, '_' and '-'", c.TransportName)
	}
	if c.AmqpPrefetchCount == 0 {
		c.AmqpPrefetchCount = 20
	}
	if c.AmqpPrefetchCount < 1 {
		return fmt.Errorf("key amqp_prefetch_count: must be at least 1, got %d", c.AmqpPrefetchCount)
	}
	if c.RateLimitCount < 0 {
		return fmt.Errorf("key rate_limit_count: must be 0 (no limit) or more, got %d", c.RateLimitCount)
	}
	if c.RateLimitWindow == 0 {
		c.RateLimitWindow = time.Second
	}
	if c.RateLimitWindow < 0 {
		return fmt.Errorf("key rate_limit_window: must be positive, got %s", c.RateLimitWindow)
	}
	if c.MaxPendingPublishes == 0 {
		c.MaxPendingPublishes = 256
	}
	if c.MaxPendingPublishes < 1 {
		return fmt.Errorf("key max_pending_publishes: must be at least 1, got %d", c.MaxPendingPublishes)
	}
	c.Common.Defaults()
	return nil
}

// IO is the topics of a transport.
func (c *Config) IO(string) topology.IO {
	n := c.TransportName
	return topology.IO{
		Consumes: []topology.Stream{{Topic: n + topology.SuffixOutbound, Kind: "user_message"}},
		Produces: []topology.Stream{
			{Topic: n + topology.SuffixInbound, Kind: "user_message"},
			{Topic: n + topology.SuffixEvent, Kind: "event"},
			{Topic: n + topology.SuffixFailures, Kind: "failure"},
		},
	}
}

// Handler sends outbound messages to the outside world. Errors wrapped
// with worker.Temporary or worker.Permanent carry that failure code.
type Handler interface {
	HandleOutbound(ctx context.Context, m *schemas.UserMessage) error
}

// ErrRedeliver, wrapped in a handler's error, leaves the message
// uncommitted instead of sending it to failures: Run stops with the error
// and the message is consumed again when the worker runs next. Handlers use
// it when they cannot finish a message because the worker is stopping
// (e.g. an SMPP transport waiting for a bind at shutdown).
var ErrRedeliver = errors.New("message left for redelivery")

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *schemas.UserMessage) error

// HandleOutbound implements Handler.
func (f HandlerFunc) HandleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	return f(ctx, m)
}

// Transport is the running base of one transport worker.
type Transport struct {
	*worker.Base
	cfg     *Config
	inbound string
	event   string
	limit   *limiter
	// polling is Run's context: a message waiting for the rate limit
	// gives up when it is cancelled (and is consumed again later).
	polling context.Context
	// waiting is what a decode waiting for the schema registry waits
	// under: Run's context, interrupted when partitions are revoked.
	waiting *interruptible

	// pending holds one slot per publish in progress (the cap is its
	// capacity); maxPending is the most ever held at once.
	pending    chan struct{}
	maxPending atomic.Int64
	blocked    atomic.Bool
}

// New builds the base of a transport.
func New(deps *topology.Deps, spec *topology.WorkerSpec, cfg *Config) (*Transport, error) {
	b, err := worker.NewBase(deps, spec, cfg.Common)
	if err != nil {
		return nil, err
	}
	b.Log = b.Log.With("transport_name", cfg.TransportName)
	n := cfg.MaxPendingPublishes
	if n < 1 {
		n = 256 // a Config that skipped ValidateBase
	}
	t := &Transport{
		Base:    b,
		cfg:     cfg,
		inbound: deps.Names.Inbound(cfg.TransportName),
		event:   deps.Names.Event(cfg.TransportName),
		polling: context.Background(),
		waiting: newInterruptible(context.Background()),
		pending: make(chan struct{}, n),
	}
	if cfg.RateLimitCount > 0 {
		t.limit = &limiter{n: cfg.RateLimitCount, window: cfg.RateLimitWindow}
	}
	return t, nil
}

// acquire takes a publish slot, waiting while max_pending_publishes
// publishes are in progress (the caller, a socket's reader, waits with
// it: that is the backpressure).
func (t *Transport) acquire(ctx context.Context) error {
	select {
	case t.pending <- struct{}{}:
	default:
		if !t.blocked.Swap(true) {
			t.Log.Warn("publishing is blocked (Kafka slow or unreachable?): max_pending_publishes reached; reading from clients waits",
				"max_pending_publishes", cap(t.pending))
		}
		t.Count("publish_waits", 1)
		select {
		case t.pending <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n := int64(len(t.pending))
	for {
		m := t.maxPending.Load()
		if n <= m || t.maxPending.CompareAndSwap(m, n) {
			break
		}
	}
	return nil
}

func (t *Transport) release() {
	<-t.pending
	if len(t.pending) == 0 && t.blocked.Swap(false) {
		t.Log.Info("publishing flows again")
	}
}

// PendingPublishes returns the publishes in progress now and the most
// there ever were at once (never more than max_pending_publishes).
func (t *Transport) PendingPublishes() (now, most int) {
	return len(t.pending), int(t.maxPending.Load())
}

// TransportName is the transport's name.
func (t *Transport) TransportName() string { return t.cfg.TransportName }

func (t *Transport) mwContext(p middleware.Phase) middleware.Context {
	return middleware.Context{Phase: p, Connector: t.cfg.TransportName, Worker: t.Name}
}

// PublishMessage publishes a message from an end user on
// <transport_name>.inbound (Vumi's publish_message): message_id,
// timestamp and transport_name are filled when missing, the middleware's
// publish handlers run, and the call returns once the broker has it.
func (t *Transport) PublishMessage(ctx context.Context, m *schemas.UserMessage) error {
	if m.MessageID == "" {
		m.MessageID = schemas.GenerateID()
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = schemas.Now()
	}
	if m.TransportName == nil {
		m.TransportName = schemas.String(t.cfg.TransportName)
	}
	out, err := t.Stack.Inbound(ctx, m, t.mwContext(middleware.Publish))
	if err != nil || out == nil {
		return err
	}
	if err := t.acquire(ctx); err != nil {
		return err
	}
	defer t.release()
	if err := worker.Produce(ctx, t.Base, t.Deps.Codecs.UserMessage, t.inbound, topology.InboundKey(out), out); err != nil {
		return err
	}
	t.Count("inbound", 1)
	return nil
}

// PublishEvent publishes an event on <transport_name>.event.
func (t *Transport) PublishEvent(ctx context.Context, e *schemas.Event) error {
	if e.EventID == "" {
		e.EventID = schemas.GenerateID()
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = schemas.Now()
	}
	if e.TransportName == nil {
		e.TransportName = schemas.String(t.cfg.TransportName)
	}
	if err := e.Validate(); err != nil {
		return worker.Permanent(fmt.Errorf("invalid event: %w", err))
	}
	out, err := t.Stack.Event(ctx, e, t.mwContext(middleware.Publish))
	if err != nil || out == nil {
		return err
	}
	if err := t.acquire(ctx); err != nil {
		return err
	}
	defer t.release()
	if err := worker.Produce(ctx, t.Base, t.Deps.Codecs.Event, t.event, topology.EventKey(out), out); err != nil {
		return err
	}
	t.Count(out.Status(), 1)
	return nil
}

// PublishAck acknowledges an outbound message (Vumi's publish_ack).
func (t *Transport) PublishAck(ctx context.Context, userMessageID, sentMessageID string) error {
	return t.PublishEvent(ctx, &schemas.Event{EventType: schemas.EventAck, UserMessageID: userMessageID, SentMessageID: &sentMessageID})
}

// PublishAckRecord is PublishAck with the transport's compact record of
// the protocol exchange (e.g. the SMPP submit_sm sequence numbers, command
// status and SMSC message ids) in the event's transport_metadata, where
// `vumi trace` shows it.
func (t *Transport) PublishAckRecord(ctx context.Context, userMessageID, sentMessageID string, record schemas.Metadata) error {
	return t.PublishEvent(ctx, &schemas.Event{EventType: schemas.EventAck, UserMessageID: userMessageID, SentMessageID: &sentMessageID, TransportMetadata: record})
}

// PublishNack rejects an outbound message (Vumi's publish_nack).
func (t *Transport) PublishNack(ctx context.Context, userMessageID, reason string) error {
	return t.PublishEvent(ctx, &schemas.Event{EventType: schemas.EventNack, UserMessageID: userMessageID, NackReason: &reason})
}

// PublishNackRecord is PublishNack with the transport's record of the
// protocol exchange (see PublishAckRecord).
func (t *Transport) PublishNackRecord(ctx context.Context, userMessageID, reason string, record schemas.Metadata) error {
	return t.PublishEvent(ctx, &schemas.Event{EventType: schemas.EventNack, UserMessageID: userMessageID, NackReason: &reason, TransportMetadata: record})
}

// PublishDeliveryReport reports delivery (Vumi's publish_delivery_report).
func (t *Transport) PublishDeliveryReport(ctx context.Context, userMessageID string, status schemas.DeliveryStatus, meta schemas.Metadata) error {
	return t.PublishEvent(ctx, &schemas.Event{EventType: schemas.EventDeliveryReport, UserMessageID: userMessageID, DeliveryStatus: &status, TransportMetadata: meta})
}

// Status publishes a status event about one of the transport's components.
func (t *Transport) Status(ctx context.Context, component string, level schemas.StatusLevel, typ, message string, details schemas.Metadata) error {
	return t.PublishStatus(ctx, t.cfg.TransportName, &schemas.Status{Component: component, Status: level, Type: typ, Message: message, Details: details})
}

// SendFailure publishes a failure about an outbound record.
func (t *Transport) SendFailure(ctx context.Context, rec *kgo.Record, m *schemas.UserMessage, cause error) error {
	var decoded interface{ MarshalJSON() ([]byte, error) }
	if m != nil {
		decoded = m
	}
	return t.Base.SendFailure(ctx, t.cfg.TransportName, t.FailureFor(rec, decoded, schemas.TypeUserMessage, cause))
}

// Run consumes <transport_name>.outbound in the consumer group
// "<prefix>transport.<transport_name>" and gives each message to h until
// ctx is cancelled; it also publishes heartbeats. Messages with the same
// key (the end user's address) are handled in order; different keys run
// concurrently, at most amqp_prefetch_count at a time. Polling goes on
// while messages are being handled (a slow message does not hold back the
// next poll), and offsets are committed as messages finish: a partition's
// offset moves past a message only once it and every message before it in
// the partition were handled (sent, or published to
// <transport_name>.failures with the reason). On cancellation the
// in-flight messages finish and are committed first.
func (t *Transport) Run(ctx context.Context, h Handler) error {
	topic := t.Deps.Names.Outbound(t.cfg.TransportName)
	group := t.Deps.Names.Prefix + "transport." + t.cfg.TransportName
	tr := newTracker()
	t.waiting = newInterruptible(ctx) // before the client: revoked uses it
	defer t.waiting.close()
	var cl *kgo.Client
	// A revoked partition's messages in flight finish and are committed
	// before another instance takes it over.
	revoked := func(rctx context.Context, c *kgo.Client, _ map[string][]int32) {
		// A message waiting for the schema registry would hold the
		// rebalance for as long as the registry is down: it stops
		// waiting and is left for redelivery (Run then stops, and is
		// restarted).
		t.waiting.interrupt()
		tr.waitIdle()
		t.commit(rctx, c, tr)
	}
	cl, err := kgo.NewClient(append(t.Deps.KafkaOpts(t.Name+".outbound"),
		kgo.ConsumerGroup(group),
		// A crashed instance's partitions move on after 10 s, not the
		// default 45 s.
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(2*time.Second),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsRevoked(revoked),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("transport %s: consumer: %w", t.cfg.TransportName, err)
	}
	defer func() {
		// Leave the group within a bound: with Kafka unreachable, Close
		// alone could wait on it for a long time.
		lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = cl.LeaveGroupContext(lctx)
		cancel()
		cl.Close()
	}()
	t.polling = ctx
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go t.RunHeartbeat(hbCtx)

	// Handling uses its own context: cancelling ctx stops polling, while
	// the messages already taken finish.
	work := context.WithoutCancel(ctx)
	limit := t.cfg.AmqpPrefetchCount
	slots := make(chan struct{}, limit)
	var (
		fatalMu sync.Mutex
		fatal   error
	)
	failed := make(chan struct{})
	var failOnce sync.Once
	// One lane per key hash, each handling its messages in order.
	seed := maphash.MakeSeed()
	lanes := make([]chan *kgo.Record, limit)
	var lanesWG sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan *kgo.Record, limit)
		lanesWG.Add(1)
		go func() {
			defer lanesWG.Done()
			for r := range lanes[i] {
				stopped := false
				select {
				case <-failed:
					stopped = true // after a fatal error nothing more is handled
				default:
				}
				if !stopped {
					if err := t.handle(work, h, r); err != nil {
						fatalMu.Lock()
						fatal = errors.Join(fatal, err)
						fatalMu.Unlock()
						failOnce.Do(func() { close(failed) })
					} else {
						tr.done(r)
					}
				}
				tr.finish(r)
				<-slots
			}
		}()
	}
	stopLanes := func() {
		for _, l := range lanes {
			close(l)
		}
		lanesWG.Wait()
	}
	// Commit what is finished, every 100 ms.
	commitCtx, stopCommits := context.WithCancel(work)
	commitsDone := make(chan struct{})
	go func() {
		defer close(commitsDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-commitCtx.Done():
				return
			case <-tick.C:
				t.commit(commitCtx, cl, tr)
			}
		}
	}()
	finish := func() error {
		stopLanes()
		stopCommits()
		<-commitsDone
		t.commit(work, cl, tr)
		fatalMu.Lock()
		defer fatalMu.Unlock()
		if fatal != nil {
			// A record could be neither handled nor sent to failures
			// (e.g. Kafka unreachable): it is not committed; stop so that
			// the supervisor restarts us and it is redelivered.
			return fmt.Errorf("transport %s: %w", t.cfg.TransportName, fatal)
		}
		return nil
	}

	// A fatal error stops a poll waiting for records.
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	go func() {
		select {
		case <-failed:
			stopPolling()
		case <-pollCtx.Done():
		}
	}()
	for {
		// Wait for a free slot before polling: at most limit messages
		// are in flight.
		select {
		case slots <- struct{}{}:
			<-slots
		case <-ctx.Done():
			return finish()
		case <-failed:
			return finish()
		}
		free := limit - len(slots)
		fetches := cl.PollRecords(pollCtx, max(free, 1))
		if pollCtx.Err() != nil {
			return finish()
		}
		select {
		case <-failed:
			return finish()
		default:
		}
		fetches.EachError(func(tp string, p int32, err error) {
			t.Log.Error("fetch error", "topic", tp, "partition", p, "error", err)
		})
		for _, r := range fetches.Records() {
			select {
			case slots <- struct{}{}:
			case <-failed:
				return finish()
			}
			tr.start(r)
			lanes[int(maphash.Bytes(seed, r.Key)%uint64(limit))] <- r
		}
	}
}

// commit commits, per partition, the offset past the longest run of
// handled messages.
func (t *Transport) commit(ctx context.Context, cl *kgo.Client, tr *tracker) {
	offsets := tr.ready()
	if len(offsets) == 0 {
		return
	}
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil {
			for _, tp := range resp.Topics {
				for _, p := range tp.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); e != nil && err == nil {
						err = e
					}
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			t.Log.Warn("commit failed; messages may be redelivered", "error", err)
		}
	})
}

// tracker follows the outbound records in flight per partition, so that
// offsets are committed only up to the first one not yet handled.
type tracker struct {
	mu    sync.Mutex
	parts map[tpart]*partTrack
	busy  int
	idle  *sync.Cond
}

type tpart struct {
	topic     string
	partition int32
}

type partTrack struct {
	inflight []*kgo.Record // in offset order
	handled  map[int64]bool
	commit   *kgo.Record // the last record of the handled prefix, not yet committed
}

func newTracker() *tracker {
	tr := &tracker{parts: map[tpart]*partTrack{}}
	tr.idle = sync.NewCond(&tr.mu)
	return tr
}

func (tr *tracker) start(r *kgo.Record) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	k := tpart{r.Topic, r.Partition}
	p := tr.parts[k]
	if p == nil {
		p = &partTrack{handled: map[int64]bool{}}
		tr.parts[k] = p
	}
	tr.busy++
	// Offsets grow within a partition, except when a partition comes
	// back after it was lost and is read again from its committed
	// offset: keep the list sorted, each offset once (a record read twice
	// is handled when either copy is).
	n := len(p.inflight)
	if n == 0 || p.inflight[n-1].Offset < r.Offset {
		p.inflight = append(p.inflight, r)
		return
	}
	i := sort.Search(n, func(i int) bool { return p.inflight[i].Offset >= r.Offset })
	if i < n && p.inflight[i].Offset == r.Offset {
		return
	}
	p.inflight = append(p.inflight, nil)
	copy(p.inflight[i+1:], p.inflight[i:])
	p.inflight[i] = r
}

// done marks r handled (committable).
func (tr *tracker) done(r *kgo.Record) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	p := tr.parts[tpart{r.Topic, r.Partition}]
	p.handled[r.Offset] = true
	for len(p.inflight) > 0 && p.handled[p.inflight[0].Offset] {
		p.commit = p.inflight[0]
		delete(p.handled, p.inflight[0].Offset)
		p.inflight = p.inflight[1:]
	}
}

// finish says r is no longer being worked on (handled or not).
func (tr *tracker) finish(*kgo.Record) {
	tr.mu.Lock()
	tr.busy--
	if tr.busy == 0 {
		tr.idle.Broadcast()
	}
	tr.mu.Unlock()
}

func (tr *tracker) waitIdle() {
	tr.mu.Lock()
	for tr.busy > 0 {
		tr.idle.Wait()
	}
	tr.mu.Unlock()
}

// ready returns the offsets to commit and forgets them.
func (tr *tracker) ready() map[string]map[int32]kgo.EpochOffset {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out map[string]map[int32]kgo.EpochOffset
	for k, p := range tr.parts {
		if p.commit == nil {
			continue
		}
		if out == nil {
			out = map[string]map[int32]kgo.EpochOffset{}
		}
		if out[k.topic] == nil {
			out[k.topic] = map[int32]kgo.EpochOffset{}
		}
		out[k.topic][k.partition] = kgo.EpochOffset{Epoch: p.commit.LeaderEpoch, Offset: p.commit.Offset + 1}
		p.commit = nil
	}
	return out
}

// handle decodes one outbound record, runs the consume middleware and the
// handler. Whatever cannot be handled goes to failures; only an error
// publishing the failure itself is returned.
func (t *Transport) handle(ctx context.Context, h Handler, r *kgo.Record) error {
	var m schemas.UserMessage
	// A schema id not seen before, met while the registry is down, waits
	// for the registry (holding this lane and so the partition's offset)
	// until Run stops or partitions are revoked; only then is the record
	// left for redelivery (and Run stops with ErrRedeliver).
	if err := t.Deps.Codecs.UserMessage.DecodeContext(t.RegistryWait(t.waiting.context()), r.Value, &m); err != nil {
		if schemas.IsRegistryUnavailable(err) {
			return fmt.Errorf("%w: %w", ErrRedeliver, err)
		}
		t.Log.Error("undecodable outbound record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "error", err)
		return t.SendFailure(ctx, r, nil, worker.Permanent(err))
	}
	out, err := t.Stack.Outbound(ctx, &m, t.mwContext(middleware.Consume))
	if err != nil {
		return t.SendFailure(ctx, r, &m, err)
	}
	if out == nil {
		t.Count("dropped", 1)
		return nil
	}
	if t.limit != nil {
		waited, err := t.limit.wait(t.polling)
		if err != nil {
			// Stopping: leave it (and the rest of the poll) uncommitted.
			return fmt.Errorf("%w: stopped while waiting for the rate limit", ErrRedeliver)
		}
		if waited {
			t.Count("rate_limited", 1)
		}
	}
	t.Count("outbound", 1)
	start := time.Now()
	t.Gauge("in_flight", 1)
	err = t.callHandler(ctx, h, out)
	t.Gauge("in_flight", -1)
	t.Metrics.Observe("outbound.handle_time", time.Since(start))
	if err != nil {
		if errors.Is(err, ErrRedeliver) {
			return err
		}
		t.Log.Warn("outbound message failed", "message_id", out.MessageID, "error", err)
		return t.SendFailure(ctx, r, out, err)
	}
	return nil
}

// callHandler calls the handler, turning a panic into a permanent failure
// of the message: it goes to failures with the panic as its reason, and
// the transport (and every other worker of the process) keeps running.
func (t *Transport) callHandler(ctx context.Context, h Handler, m *schemas.UserMessage) (err error) {
	defer func() {
		if r := recover(); r != nil {
			t.Log.Error("outbound handler panicked", "message_id", m.MessageID, "panic", r, "stack", string(debug.Stack()))
			err = worker.Permanent(fmt.Errorf("handler panicked: %v", r))
		}
	}()
	return h.HandleOutbound(ctx, m)
}

// interruptible is a context derived from a parent that can be cancelled
// on its own and then replaced by a fresh one.
type interruptible struct {
	parent context.Context
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
}

func newInterruptible(parent context.Context) *interruptible {
	i := &interruptible{parent: parent}
	i.ctx, i.cancel = context.WithCancel(parent)
	return i
}

func (i *interruptible) context() context.Context {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.ctx
}

// interrupt cancels the current context (what waits under it stops) and
// makes a fresh one for what comes next.
func (i *interruptible) interrupt() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.cancel()
	i.ctx, i.cancel = context.WithCancel(i.parent)
}

// close cancels the current context for good.
func (i *interruptible) close() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.cancel()
}

// limiter lets n calls through per fixed window.
type limiter struct {
	n      int
	window time.Duration

	mu    sync.Mutex
	start time.Time
	used  int
}

// wait returns once a call may go, reporting whether it had to wait; it
// gives up when ctx is done.
func (l *limiter) wait(ctx context.Context) (bool, error) {
	waited := false
	for {
		l.mu.Lock()
		now := time.Now()
		if now.Sub(l.start) >= l.window {
			l.start, l.used = now, 0
		}
		if l.used < l.n {
			l.used++
			l.mu.Unlock()
			return waited, nil
		}
		d := l.start.Add(l.window).Sub(now)
		l.mu.Unlock()
		waited = true
		select {
		case <-ctx.Done():
			return waited, ctx.Err()
		case <-time.After(d):
		}
	}
}
