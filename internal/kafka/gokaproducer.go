package kafka

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of the goka producer on franz-go (see GokaProducerOpts).
const (
	// GokaRecordTimeout is how long a record may wait for the broker's
	// confirmation (retries included) before its promise fails, and with
	// it the goka processor that emitted it.
	GokaRecordTimeout = DefaultProduceTimeout
	// GokaMaxBufferedRecords and GokaMaxBufferedBytes bound what one
	// producer holds unconfirmed; past either, Emit blocks until records
	// are confirmed or fail (at the latest after the record timeout), so
	// a dead broker does not grow memory without limit.
	GokaMaxBufferedRecords = 10000
	GokaMaxBufferedBytes   = 64 << 20
	// GokaCloseTimeout bounds how long Close waits for buffered records to
	// be confirmed; those still unconfirmed then fail (their promises get
	// kgo.ErrClientClosed).
	GokaCloseTimeout = 10 * time.Second
)

// GokaLinger is how long a goka producer waits for more records to batch.
const GokaLinger = time.Millisecond

// GokaProducerOpts are the franz-go settings of a goka producer, added
// after the cluster's own (seeds, TLS, SASL, client id): acks=all with
// idempotent writes (franz-go's default), a 1 ms linger (as sarama's 1 ms
// flush had, without its one request in flight: with no linger every emit
// at low load was a produce request of its own, and the end-to-end
// benchmark at 2,000 msgs/s spent 920 instead of 700 µs of CPU per
// message, for 1 ms less median latency), Kafka's murmur2 key partitioning (the
// partition goka's kafka.KafkaHasher expects), retries and a delivery
// timeout like the workers' own producers, and bounded buffering.
//
// The delivery timeout also fails records whose request went out without
// an answer (kgo.AllowIdempotentProduceCancellation): by default franz-go
// keeps such an idempotent record until the broker answers, which with a
// broker that is gone is for ever, and the goka processor would hang
// instead of failing as it did on sarama. goka's delivery is at-least-once
// anyway (a failed processor reprocesses from its last commit and emits
// again), so the duplicate this may allow costs no guarantee we had.
func GokaProducerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.AllowIdempotentProduceCancellation(),
		kgo.RecordPartitioner(GokaPartitioner()),
		kgo.ProducerLinger(GokaLinger),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.RecordRetries(10),
		kgo.RecordDeliveryTimeout(GokaRecordTimeout),
		kgo.MaxBufferedRecords(GokaMaxBufferedRecords),
		kgo.MaxBufferedBytes(GokaMaxBufferedBytes),
	}
}

// GokaPartitioner is the partitioner of goka producers: franz-go's sticky
// key partitioner with Kafka's murmur2, which for a keyed record picks
// (murmur2(key) & 0x7fffffff) % partitions, the partition goka computes
// with KafkaHasher for its tables.
func GokaPartitioner() kgo.Partitioner { return kgo.StickyKeyPartitioner(nil) }

// GokaProducer is a goka.Producer on a franz-go client: one client per
// producer (goka builds one producer per processor or emitter).
type GokaProducer struct {
	cl           *kgo.Client
	closeTimeout time.Duration
	closeOnce    sync.Once
}

var _ goka.Producer = (*GokaProducer)(nil)

// NewGokaProducer builds a producer from franz-go options: the cluster's
// (e.g. topology.Deps.KafkaOpts) followed by GokaProducerOpts, then any
// overrides in opts.
func NewGokaProducer(opts ...kgo.Opt) (*GokaProducer, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("goka producer: kafka client: %w", err)
	}
	return &GokaProducer{cl: cl, closeTimeout: GokaCloseTimeout}, nil
}

// GokaProducerBuilder returns a goka.ProducerBuilder making GokaProducers
// with the cluster options clusterOpts, then GokaProducerOpts, then extra.
// goka's brokers and client id are not used (clusterOpts carry the seeds
// and the deployment's client id). The builder refuses a goka hasher that
// does not pick the partitions murmur2 does: goka would then look its
// table keys up on other partitions than the ones they were written to.
func GokaProducerBuilder(clusterOpts []kgo.Opt, extra ...kgo.Opt) goka.ProducerBuilder {
	return func(_ []string, _ string, hasher func() hash.Hash32) (goka.Producer, error) {
		if err := CheckGokaHasher(hasher); err != nil {
			return nil, err
		}
		opts := append(append(append([]kgo.Opt{}, clusterOpts...), GokaProducerOpts()...), extra...)
		return NewGokaProducer(opts...)
	}
}

// CheckGokaHasher reports an error unless hasher (nil: goka's default,
// FNV-1a) puts keys on the partitions Kafka's murmur2 partitioner does.
func CheckGokaHasher(hasher func() hash.Hash32) error {
	if hasher == nil {
		return errors.New("goka producer: no hasher given; goka's default (FNV-1a) does not match Kafka's murmur2 partitioning, use kafka.KafkaHasher()")
	}
	for i := range 64 {
		key := []byte("vumi-partition-check-" + strconv.Itoa(i))
		for _, n := range []int32{3, 7, 64} {
			if got, want := GokaHasherPartition(hasher, key, n), Partition(key, n); got != want {
				return fmt.Errorf("goka producer: goka's hasher puts key %q on partition %d of %d, Kafka's murmur2 on %d; use kafka.KafkaHasher()", key, got, n, want)
			}
		}
	}
	return nil
}

// GokaHasherPartition is the partition goka picks for key among n with
// hasher (goka's processor and view: int32 of Sum32, negated if negative,
// modulo n).
func GokaHasherPartition(hasher func() hash.Hash32, key []byte, n int32) int32 {
	h := hasher()
	_, _ = h.Write(key)
	p := int32(h.Sum32())
	if p < 0 {
		p = -p
	}
	return p % n
}

// Client is the producer's franz-go client (for tests and figures).
func (p *GokaProducer) Client() *kgo.Client { return p.cl }

// Emit produces value under key to topic.
func (p *GokaProducer) Emit(topic, key string, value []byte) *goka.Promise {
	return p.EmitWithHeaders(topic, key, value, nil)
}

// EmitWithHeaders produces value under key to topic with headers. The
// promise is finished when the broker confirmed the record (with a
// *sarama.ProducerMessage carrying the topic, key, value, headers,
// partition, offset and timestamp) or when it failed. It blocks while the
// producer holds its maximum of unconfirmed records.
func (p *GokaProducer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	promise, finish := goka.NewPromiseWithFinisher()
	// A non-nil key, even when empty, as sarama's StringEncoder: it is
	// hashed, never spread at random.
	k := make([]byte, len(key))
	copy(k, key)
	r := &kgo.Record{Topic: topic, Key: k, Value: value}
	if len(headers) > 0 {
		r.Headers = make([]kgo.RecordHeader, 0, len(headers))
		for hk, hv := range headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: hk, Value: hv})
		}
	}
	p.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
		finish(saramaMessage(r), err)
	})
	return promise
}

// saramaMessage describes a produced record the way sarama's producer
// reports a sent message, for goka's ThenWithMessage callers.
func saramaMessage(r *kgo.Record) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{
		Topic:     r.Topic,
		Key:       sarama.ByteEncoder(r.Key),
		Value:     sarama.ByteEncoder(r.Value),
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp,
	}
	if r.Value == nil {
		m.Value = nil
	}
	if len(r.Headers) > 0 {
		m.Headers = make([]sarama.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value}
		}
	}
	return m
}

// Close waits up to the close timeout for buffered records to be
// confirmed, then closes the client (records still unconfirmed fail, so
// every promise is finished). Emitting after Close finishes the promise
// with kgo.ErrClientClosed.
func (p *GokaProducer) Close() error {
	var err error
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.closeTimeout)
		defer cancel()
		if ferr := p.cl.Flush(ctx); ferr != nil {
			err = fmt.Errorf("goka producer: records not confirmed within %v of closing: %w", p.closeTimeout, ferr)
		}
		p.cl.Close()
	})
	return err
}
