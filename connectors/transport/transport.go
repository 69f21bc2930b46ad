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
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
	return &Transport{
		Base:    b,
		cfg:     cfg,
		inbound: deps.Names.Inbound(cfg.TransportName),
		event:   deps.Names.Event(cfg.TransportName),
		pending: make(chan struct{}, n),
	}, nil
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

// PublishNack rejects an outbound message (Vumi's publish_nack).
func (t *Transport) PublishNack(ctx context.Context, userMessageID, reason string) error {
	return t.PublishEvent(ctx, &schemas.Event{EventType: schemas.EventNack, UserMessageID: userMessageID, NackReason: &reason})
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
// concurrently, at most amqp_prefetch_count at a time. A poll's offsets are
// committed only when every message of it was handled: handled means sent,
// or published to <transport_name>.failures with its reason. On
// cancellation the in-flight messages finish first.
func (t *Transport) Run(ctx context.Context, h Handler) error {
	topic := t.Deps.Names.Outbound(t.cfg.TransportName)
	group := t.Deps.Names.Prefix + "transport." + t.cfg.TransportName
	cl, err := kgo.NewClient(append(t.Deps.KafkaOpts(t.Name+".outbound"),
		kgo.ConsumerGroup(group),
		// A crashed instance's partitions move on after 10 s, not the
		// default 45 s.
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(2*time.Second),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
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
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go t.RunHeartbeat(hbCtx)

	// Handling uses its own context: cancelling ctx stops polling, while
	// the messages already taken finish.
	work := context.WithoutCancel(ctx)
	seed := maphash.MakeSeed()
	lanes := t.cfg.AmqpPrefetchCount
	for {
		fetches := cl.PollRecords(ctx, t.cfg.AmqpPrefetchCount)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(tp string, p int32, err error) {
			t.Log.Error("fetch error", "topic", tp, "partition", p, "error", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		// Split into lanes by key so each user's messages stay in order.
		byLane := make([][]*kgo.Record, lanes)
		for _, r := range recs {
			i := int(maphash.Bytes(seed, r.Key) % uint64(lanes))
			byLane[i] = append(byLane[i], r)
		}
		var wg sync.WaitGroup
		var fatal error
		var mu sync.Mutex
		for _, lane := range byLane {
			if len(lane) == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, r := range lane {
					if err := t.handle(work, h, r); err != nil {
						mu.Lock()
						fatal = errors.Join(fatal, err)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if fatal != nil {
			// A record could be neither handled nor sent to failures
			// (e.g. Kafka unreachable): do not commit; stop so that the
			// supervisor restarts us and the records are redelivered.
			cl.AllowRebalance()
			return fmt.Errorf("transport %s: %w", t.cfg.TransportName, fatal)
		}
		if err := cl.CommitRecords(work, recs...); err != nil {
			t.Log.Warn("commit failed; messages may be redelivered", "error", err)
		}
		cl.AllowRebalance()
	}
}

// handle decodes one outbound record, runs the consume middleware and the
// handler. Whatever cannot be handled goes to failures; only an error
// publishing the failure itself is returned.
func (t *Transport) handle(ctx context.Context, h Handler, r *kgo.Record) error {
	var m schemas.UserMessage
	if err := t.Deps.Codecs.UserMessage.DecodeContext(ctx, r.Value, &m); err != nil {
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
	t.Count("outbound", 1)
	start := time.Now()
	err = h.HandleOutbound(ctx, out)
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
