package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// writeTokenHeader is the record header carrying a token that lets the
// instance that wrote a record recognise it when its consumer reads it
// back. Other readers ignore headers.
const writeTokenHeader = "vumi-registry-write"

// errClosed is returned by writes after the registry is closed.
var errClosed = errors.New("schema registry is closed")

// kafkaLog is the registry's single-partition compacted topic: a producer
// that appends records and a consumer that tails the topic from the start
// and hands every record to apply, in log order.
type kafkaLog struct {
	topic  string
	logger *slog.Logger
	prod   *kgo.Client
	cons   *kgo.Client
	apply  func(*kgo.Record) outcome

	// instance prefixes the write tokens of this process.
	instance string
	seq      atomic.Uint64

	mu      sync.Mutex
	waiters map[string]chan outcome

	// next is the offset after the last record applied.
	next atomic.Int64

	cancel context.CancelFunc
	done   chan struct{} // closed when the consumer loop has exited
}

// openLog connects to Kafka, makes sure the topic exists with the right
// shape, starts the consumer, and returns once every record that was in
// the topic when openLog was called has been applied.
func openLog(ctx context.Context, cfg *Config, apply func(*kgo.Record) outcome) (*kafkaLog, error) {
	var tok [8]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("generating instance id: %w", err)
	}
	base := append(slices.Clone(cfg.KafkaOpts),
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.WithLogger(kgoLogger{cfg.Logger}),
	)
	prod, err := kgo.NewClient(append(slices.Clone(base),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka producer: %w", err)
	}
	if err := ensureTopic(ctx, prod, cfg); err != nil {
		prod.Close()
		return nil, err
	}
	cons, err := kgo.NewClient(append(slices.Clone(base),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			cfg.Topic: {0: kgo.NewOffset().AtStart()},
		}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		prod.Close()
		return nil, fmt.Errorf("creating Kafka consumer: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	l := &kafkaLog{
		topic:    cfg.Topic,
		logger:   cfg.Logger,
		prod:     prod,
		cons:     cons,
		apply:    apply,
		instance: hex.EncodeToString(tok[:]),
		waiters:  map[string]chan outcome{},
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go l.run(runCtx)
	start := time.Now()
	if err := l.sync(ctx); err != nil {
		l.close()
		return nil, fmt.Errorf("reading topic %s: %w", cfg.Topic, err)
	}
	cfg.Logger.Info("schema registry loaded its topic",
		"topic", cfg.Topic, "offset", l.next.Load(), "duration", time.Since(start))
	return l, nil
}

// ensureTopic creates the topic when it is missing (and creation is
// allowed) and checks that it has one partition and is compacted.
func ensureTopic(ctx context.Context, cl *kgo.Client, cfg *Config) error {
	if !cfg.DisableTopicCreation {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 30_000
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = cfg.Topic
		t.NumPartitions = 1
		t.ReplicationFactor = cfg.ReplicationFactor
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name = "cleanup.policy"
		c.Value = kmsg.StringPtr("compact")
		t.Configs = append(t.Configs, c)
		req.Topics = append(req.Topics, t)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("creating topic %s: %w", cfg.Topic, err)
		}
		if len(resp.Topics) != 1 {
			return fmt.Errorf("creating topic %s: broker answered for %d topics", cfg.Topic, len(resp.Topics))
		}
		switch err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); {
		case err == nil:
			cfg.Logger.Info("created schema registry topic", "topic", cfg.Topic)
		case errors.Is(err, kerr.TopicAlreadyExists):
		default:
			msg := ""
			if m := resp.Topics[0].ErrorMessage; m != nil {
				msg = ": " + *m
			}
			return fmt.Errorf("creating topic %s: %w%s", cfg.Topic, err, msg)
		}
	}

	// The topic may take a moment to show up in metadata after creation.
	for {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(cfg.Topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("describing topic %s: %w", cfg.Topic, err)
		}
		if len(resp.Topics) != 1 {
			return fmt.Errorf("describing topic %s: broker answered for %d topics", cfg.Topic, len(resp.Topics))
		}
		t := resp.Topics[0]
		err = kerr.ErrorForCode(t.ErrorCode)
		if errors.Is(err, kerr.UnknownTopicOrPartition) && cfg.DisableTopicCreation {
			return fmt.Errorf("topic %s does not exist and DisableTopicCreation is set", cfg.Topic)
		}
		if err != nil && kerr.IsRetriable(err) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for topic %s: %w", cfg.Topic, ctx.Err())
			case <-time.After(100 * time.Millisecond):
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("describing topic %s: %w", cfg.Topic, err)
		}
		if len(t.Partitions) != 1 {
			return fmt.Errorf("topic %s has %d partitions; the schema registry needs exactly 1 so that all records are totally ordered",
				cfg.Topic, len(t.Partitions))
		}
		break
	}

	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = cfg.Topic
	rr.ConfigNames = []string{"cleanup.policy"}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Resources) == 1 {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err != nil {
		// Not fatal: the principal may lack DescribeConfigs rights.
		cfg.Logger.Warn("could not check the cleanup policy of the schema registry topic",
			"topic", cfg.Topic, "error", err)
		return nil
	}
	for _, c := range resp.Resources[0].Configs {
		if c.Name == "cleanup.policy" && c.Value != nil && !slices.Contains(strings.Split(*c.Value, ","), "compact") {
			return fmt.Errorf("topic %s has cleanup.policy=%s; the schema registry needs a compacted topic (cleanup.policy=compact) or it loses schemas",
				cfg.Topic, *c.Value)
		}
	}
	return nil
}

// run is the consumer loop.
func (l *kafkaLog) run(ctx context.Context) {
	defer close(l.done)
	var lastErr string
	for {
		fetches := l.cons.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		failed := false
		fetches.EachError(func(topic string, partition int32, err error) {
			failed = true
			if s := err.Error(); s != lastErr {
				lastErr = s
				l.logger.Warn("error reading the schema registry topic", "topic", topic, "partition", partition, "error", err)
			}
		})
		fetches.EachRecord(l.handle)
		if failed && fetches.NumRecords() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// handle applies one record and wakes the writer waiting for it, if any.
func (l *kafkaLog) handle(rec *kgo.Record) {
	o := l.apply(rec)
	l.next.Store(rec.Offset + 1)
	for _, h := range rec.Headers {
		if h.Key != writeTokenHeader {
			continue
		}
		l.mu.Lock()
		ch := l.waiters[string(h.Value)]
		delete(l.waiters, string(h.Value))
		l.mu.Unlock()
		if ch != nil {
			ch <- o // buffered; never blocks
		}
	}
}

// write appends recs to the topic, in order, with acks from all in-sync
// replicas, and waits until this instance's consumer has applied each of
// them: when write returns, reads observe the records. It returns the
// outcome of applying each record.
func (l *kafkaLog) write(ctx context.Context, recs ...*kgo.Record) ([]outcome, error) {
	select {
	case <-l.done:
		return nil, errClosed
	default:
	}
	tokens := make([]string, len(recs))
	chans := make([]chan outcome, len(recs))
	l.mu.Lock()
	for i, r := range recs {
		tokens[i] = l.instance + "-" + strconv.FormatUint(l.seq.Add(1), 10)
		chans[i] = make(chan outcome, 1)
		l.waiters[tokens[i]] = chans[i]
		r.Topic, r.Partition = l.topic, 0
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: writeTokenHeader, Value: []byte(tokens[i])})
	}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		for _, t := range tokens {
			delete(l.waiters, t)
		}
		l.mu.Unlock()
	}()

	// Not ProduceSync: once buffered, an idempotent record is only failed
	// when that is safe, which with an unreachable broker can be never.
	// Giving up on waiting leaves the record's fate open, as any timeout
	// does; if it is appended later, every instance applies it then.
	produced := make(chan error, len(recs))
	for _, r := range recs {
		l.prod.Produce(ctx, r, func(_ *kgo.Record, err error) { produced <- err })
	}
	for range recs {
		select {
		case err := <-produced:
			if err != nil {
				return nil, fmt.Errorf("producing to topic %s: %w", l.topic, ctxErr(ctx, err))
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("producing to topic %s: %w", l.topic, ctxErr(ctx, ctx.Err()))
		case <-l.done:
			return nil, errClosed
		}
	}
	outs := make([]outcome, len(recs))
	for i, ch := range chans {
		select {
		case outs[i] = <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("reading back the record written to topic %s: %w", l.topic, ctxErr(ctx, ctx.Err()))
		case <-l.done:
			return nil, errClosed
		}
	}
	return outs, nil
}

// sync waits until every record appended to the topic before the call has
// been applied, by appending a NOOP record and waiting for it, as
// Confluent's registry does.
func (l *kafkaLog) sync(ctx context.Context) error {
	_, err := l.write(ctx, &kgo.Record{Key: noopKeyBytes()})
	return err
}

// running reports whether the consumer loop is alive.
func (l *kafkaLog) running() bool {
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

func (l *kafkaLog) close() {
	l.cancel()
	l.cons.Close()
	<-l.done
	l.prod.Close()
}

// ctxErr marks err as a timeout when ctx ran out of time.
func ctxErr(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", errTimeout, err)
	}
	return err
}

// kgoLogger sends franz-go's logs to slog.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var sl slog.Level
	switch level {
	case kgo.LogLevelError:
		sl = slog.LevelError
	case kgo.LogLevelWarn:
		sl = slog.LevelWarn
	case kgo.LogLevelInfo:
		sl = slog.LevelInfo
	default:
		sl = slog.LevelDebug
	}
	k.l.Log(context.Background(), sl, "kafka: "+msg, keyvals...)
}
