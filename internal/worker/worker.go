// Package worker is the plumbing every kind of worker shares: its common
// config keys, a producer for the deployment's topics, failures with Vumi's
// failure codes, status events and heartbeats.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/metrics"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Common is the config every worker has.
type Common struct {
	// PublishStatus publishes the worker's status events to vumi.status
	// (Vumi's publish_status). Default false, as in Vumi.
	PublishStatus bool `yaml:"publish_status"`
	// HeartbeatInterval between heartbeats on vumi.heartbeat; default 10s
	// (Vumi's HEARTBEAT_PERIOD_SECS); 0 keeps the default, negative disables.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// SystemID names the deployment in heartbeats (Vumi's system-id);
	// default "global".
	SystemID string `yaml:"heartbeat_system_id"`
}

// Defaults fills defaults.
func (c *Common) Defaults() {
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.SystemID == "" {
		c.SystemID = "global"
	}
}

// Failure classes. Wrap an error with Temporary or Permanent to give it
// Vumi's failure code; unwrapped errors have none (FC_UNSPECIFIED).
type codedError struct {
	code schemas.FailureCode
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// Temporary marks err as worth retrying (Vumi's TemporaryFailure).
func Temporary(err error) error { return &codedError{schemas.FailureTemporary, err} }

// Permanent marks err as not worth retrying (Vumi's PermanentFailure).
func Permanent(err error) error { return &codedError{schemas.FailurePermanent, err} }

// CodeOf returns the failure code of err, nil when unspecified.
func CodeOf(err error) *schemas.FailureCode {
	var ce *codedError
	if errors.As(err, &ce) {
		c := ce.code
		return &c
	}
	// Packages below this one (middleware) give a code by a method.
	var coded interface{ FailureCode() schemas.FailureCode }
	if errors.As(err, &coded) {
		c := coded.FailureCode()
		return &c
	}
	return nil
}

// Base is what a running worker uses to publish: a franz-go producer (acks
// all, idempotent), the shared codecs, its middleware stack, its logger.
type Base struct {
	Name   string
	Deps   *topology.Deps
	Log    *slog.Logger
	Client *kgo.Client
	Stack  *middleware.Stack
	Common Common
	// Metrics publishes the worker's figures to vumi.metrics (prefix
	// vumi.<worker>.) every publish interval.
	Metrics *metrics.Manager

	instance string
	started  time.Time
	figures  sync.Map // name -> *atomic.Int64

	waiterOnce sync.Once
	waiter     *registryWaiter
	// heldRuns holds the contexts of goka partition processor runs that
	// left a record unconsumed (HoldInProcessor); they are all ended.
	heldRuns sync.Map
}

// NewBase builds the shared plumbing of one worker. The client it makes is
// for producing; consumers make their own.
func NewBase(deps *topology.Deps, spec *topology.WorkerSpec, common Common, extra ...kgo.Opt) (*Base, error) {
	common.Defaults()
	stack, err := deps.Middleware(spec)
	if err != nil {
		return nil, err
	}
	opts := append(deps.KafkaOpts(spec.Name),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.RecordRetries(10),
		kgo.RecordDeliveryTimeout(30*time.Second),
	)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("worker %s: kafka client: %w", spec.Name, err)
	}
	m := metrics.ForWorker(deps, spec.Name, cl, metrics.DefaultPublishInterval)
	stack.Observe(func(mw, handler string, took time.Duration) {
		m.Observe("middleware."+mw+"."+handler+"_time", took)
	})
	return &Base{
		Metrics:  m,
		Name:     spec.Name,
		Deps:     deps,
		Log:      deps.WorkerLogger(spec.Name),
		Client:   cl,
		Stack:    stack,
		Common:   common,
		instance: schemas.GenerateID(),
		started:  time.Now(),
	}, nil
}

// Close flushes and closes the producer and the middleware.
func (b *Base) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mErr := b.Metrics.Stop(ctx) // the last figures go out before the flush
	err := errors.Join(mErr, b.Client.Flush(ctx))
	b.Client.Close()
	return errors.Join(err, b.Stack.Close())
}

// Count adds n to a named figure (reported in heartbeats).
func (b *Base) Count(name string, n int64) {
	v, ok := b.figures.Load(name)
	if !ok {
		v, _ = b.figures.LoadOrStore(name, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(n)
	b.Metrics.Count(name, n)
}

// Gauge adds delta to a named level (e.g. in_flight), reported in
// heartbeats like the counters but not published as a metric counter.
func (b *Base) Gauge(name string, delta int64) {
	v, ok := b.figures.Load(name)
	if !ok {
		v, _ = b.figures.LoadOrStore(name, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(delta)
}

// Figures returns a snapshot of the worker's figures.
func (b *Base) Figures() map[string]float64 {
	out := map[string]float64{}
	b.figures.Range(func(k, v any) bool {
		out[k.(string)] = float64(v.(*atomic.Int64).Load())
		return true
	})
	return out
}

// Produce encodes v with c and produces it, waiting for the broker's ack.
func Produce[T any](ctx context.Context, b *Base, c *schemas.Codec[T], topic string, key []byte, v *T) error {
	val, err := c.Encode(v)
	if err != nil {
		return Permanent(fmt.Errorf("encode for %s: %w", topic, err))
	}
	if err := kafka.ProduceSync(ctx, b.Client, &kgo.Record{Topic: topic, Key: key, Value: val}); err != nil {
		return Temporary(fmt.Errorf("produce to %s: %w", topic, err))
	}
	return nil
}

// FailureFor builds a failure message for a record a worker could not
// handle. decoded is the message when it could be decoded (its Vumi JSON is
// kept); otherwise the raw value is kept.
func (b *Base) FailureFor(rec *kgo.Record, decoded interface{ MarshalJSON() ([]byte, error) }, msgType string, cause error) *schemas.Failure {
	f := &schemas.Failure{
		FailureID:   schemas.GenerateID(),
		Timestamp:   schemas.Now(),
		FailureCode: CodeOf(cause),
		Reason:      cause.Error(),
		Worker:      schemas.String(b.Name),
	}
	if msgType != "" {
		f.MessageType = schemas.String(msgType)
	}
	if decoded != nil {
		if js, err := decoded.MarshalJSON(); err == nil {
			f.Message = schemas.String(string(js))
		}
	}
	if rec != nil {
		f.SourceTopic = schemas.String(rec.Topic)
		p, o := rec.Partition, rec.Offset
		f.SourcePartition, f.SourceOffset = &p, &o
		f.Key = rec.Key
		if f.Message == nil {
			f.Raw = rec.Value
		}
	}
	return f
}

// SendFailure runs a failure through the middleware (publish phase) and
// produces it to <connector>.failures, keyed like the original record.
func (b *Base) SendFailure(ctx context.Context, connector string, f *schemas.Failure) error {
	b.Count("failures", 1)
	out, err := b.Stack.Failure(ctx, f, middleware.Context{Phase: middleware.Publish, Connector: connector, Worker: b.Name})
	if err != nil {
		// A failing failure handler must not stop the worker on this
		// message for ever: publish the failure as it was.
		b.Log.Error("failure middleware failed; publishing the failure unchanged", "error", err)
		out = f
	}
	if out == nil {
		return nil
	}
	f = out
	b.Log.Warn("message failed", "connector", connector, "reason", f.Reason, "failure_code", derefCode(f.FailureCode))
	return Produce(ctx, b, b.Deps.Codecs.Failure, b.Deps.Names.Failures(connector), f.Key, f)
}

func derefCode(c *schemas.FailureCode) string {
	if c == nil {
		return "unspecified"
	}
	return string(*c)
}

// PublishStatus publishes a status event when publish_status is on
// (through the middleware's status handlers), and logs it either way.
func (b *Base) PublishStatus(ctx context.Context, transportName string, st *schemas.Status) error {
	if st.Timestamp.IsZero() {
		st.Timestamp = schemas.Now()
	}
	if st.Worker == nil {
		st.Worker = schemas.String(b.Name)
	}
	if st.TransportName == nil && transportName != "" {
		st.TransportName = schemas.String(transportName)
	}
	b.Log.Info("status", "component", st.Component, "status", st.Status, "type", st.Type, "message", st.Message)
	if !b.Common.PublishStatus {
		return nil
	}
	st, err := b.Stack.Status(ctx, st, middleware.Context{Phase: middleware.Publish, Connector: transportName, Worker: b.Name})
	if err != nil || st == nil {
		return err
	}
	return Produce(ctx, b, b.Deps.Codecs.Status, b.Deps.Names.Status(), topology.StatusKey(st), st)
}

// RunHeartbeat publishes a heartbeat every interval until ctx is done, and
// starts the worker's metric publishing.
func (b *Base) RunHeartbeat(ctx context.Context) {
	b.Metrics.Start(ctx)
	if b.Common.HeartbeatInterval < 0 {
		return
	}
	host, _ := os.Hostname()
	t := time.NewTicker(b.Common.HeartbeatInterval)
	defer t.Stop()
	for {
		hb := &schemas.Heartbeat{
			Version:         schemas.HeartbeatVersion,
			SystemID:        b.Common.SystemID,
			WorkerID:        b.Common.SystemID + ":" + b.Name,
			WorkerName:      b.Name,
			InstanceID:      b.instance,
			Hostname:        host,
			PID:             int32(os.Getpid()),
			Timestamp:       schemas.Now(),
			IntervalSeconds: int32(b.Common.HeartbeatInterval / time.Second),
			Figures:         b.Figures(),
		}
		hb.Figures["uptime_seconds"] = time.Since(b.started).Seconds()
		if err := Produce(ctx, b, b.Deps.Codecs.Heartbeat, b.Deps.Names.Heartbeat(), []byte(b.Name), hb); err != nil && ctx.Err() == nil {
			b.Log.Warn("heartbeat not published", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
