package schemas

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hamba/avro/v2"
)

// WireMagic is the first byte of every record in the Confluent wire format.
const WireMagic byte = 0

// HeaderSize is the size of the Confluent wire-format header: the magic byte
// and a 4-byte big-endian schema id.
const HeaderSize = 5

// Errors of the wire format.
var (
	ErrShortRecord   = errors.New("record shorter than the 5-byte Confluent header")
	ErrBadMagic      = errors.New("record does not start with the Confluent magic byte 0")
	ErrNotRegistered = errors.New("codec has no schema id: register it first")
)

// Registry is what codecs need of a Confluent-compatible schema registry.
// Implementations cache: after warm-up no call reaches the network.
type Registry interface {
	// Register registers the schema text under subject (idempotent) and
	// returns its global id.
	Register(ctx context.Context, subject, schema string) (int, error)
	// SchemaByID returns the schema text registered under a global id.
	SchemaByID(ctx context.Context, id int) (string, error)
}

// SchemaID reads the schema id of a record in the Confluent wire format.
func SchemaID(b []byte) (uint32, error) {
	if len(b) < HeaderSize {
		return 0, fmt.Errorf("%w (%d bytes)", ErrShortRecord, len(b))
	}
	if b[0] != WireMagic {
		return 0, fmt.Errorf("%w (got 0x%02x)", ErrBadMagic, b[0])
	}
	return binary.BigEndian.Uint32(b[1:HeaderSize]), nil
}

// avroAPI is the hamba/avro configuration every codec uses: strings and
// bytes up to 8 MiB per field, arrays up to 65,536 elements (a hostile
// block count must not allocate gigabytes), unions resolved strictly.
var avroAPI = avro.Config{
	TagKey:               "avro",
	MaxByteSliceSize:     8 << 20,
	MaxSliceAllocSize:    1 << 16,
	UnionResolutionError: true,
}.Freeze()

var writerPool = sync.Pool{New: func() any { return avro.NewWriter(nil, 512, avro.WithWriterConfig(avroAPI)) }}
var readerPool = sync.Pool{New: func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(avroAPI)) }}

// Codec encodes and decodes values of one message kind in the Confluent wire
// format. Encoding uses the kind's own schema and the id it was registered
// under; decoding accepts records written with any schema id the registry
// knows, resolving older or newer writer schemas against the kind's schema.
// A Codec is safe for concurrent use. Its hot path makes no registry call
// and no map lookup once the writer schema of a record has been seen.
type Codec[T any] struct {
	kind *Kind
	reg  Registry
	id   atomic.Uint32 // 0 until registered

	mu      sync.Mutex
	readers atomic.Pointer[map[uint32]avro.Schema] // copy-on-write: id -> schema to decode with
}

// NewCodec returns a codec for kind, backed by reg. Call Register (or
// SetID) before encoding.
func NewCodec[T any](kind *Kind, reg Registry) *Codec[T] {
	c := &Codec[T]{kind: kind, reg: reg}
	empty := map[uint32]avro.Schema{}
	c.readers.Store(&empty)
	return c
}

// Kind returns the codec's message kind.
func (c *Codec[T]) Kind() *Kind { return c.kind }

// ID returns the schema id records are written with, 0 before registration.
func (c *Codec[T]) ID() uint32 { return c.id.Load() }

// Register registers the kind's schema under the "<topic>-value" subject of
// every topic given and records the id. The registry gives one schema one id
// whatever the subject, so the codec serves all these topics.
func (c *Codec[T]) Register(ctx context.Context, topics ...string) error {
	if c.reg == nil {
		return fmt.Errorf("register %s: no schema registry configured", c.kind.Name)
	}
	for _, topic := range topics {
		id, err := c.reg.Register(ctx, Subject(topic), c.kind.Text)
		if err != nil {
			return fmt.Errorf("register %s schema for topic %s: %w", c.kind.Name, topic, err)
		}
		if id <= 0 || id > 1<<31-1 {
			return fmt.Errorf("register %s schema for topic %s: registry returned invalid id %d", c.kind.Name, topic, id)
		}
		if old := c.id.Load(); old != 0 && old != uint32(id) {
			return fmt.Errorf("register %s schema for topic %s: registry gave id %d, another subject gave %d for the same schema", c.kind.Name, topic, id, old)
		}
		c.SetID(uint32(id))
	}
	return nil
}

// SetID sets the id records are written with, for a schema registered
// elsewhere.
func (c *Codec[T]) SetID(id uint32) {
	c.id.Store(id)
	c.addReader(id, c.kind.Schema)
}

func (c *Codec[T]) addReader(id uint32, s avro.Schema) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.readers.Load()
	if _, ok := old[id]; ok {
		return
	}
	next := make(map[uint32]avro.Schema, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[id] = s
	c.readers.Store(&next)
}

// Encode returns v in the Confluent wire format.
func (c *Codec[T]) Encode(v *T) ([]byte, error) { return c.AppendEncode(nil, v) }

// AppendEncode appends v in the Confluent wire format to dst.
func (c *Codec[T]) AppendEncode(dst []byte, v *T) ([]byte, error) {
	id := c.id.Load()
	if id == 0 {
		return nil, fmt.Errorf("encode %s: %w", c.kind.Name, ErrNotRegistered)
	}
	w := writerPool.Get().(*avro.Writer)
	w.Reset(nil)
	defer func() {
		w.Error = nil
		writerPool.Put(w)
	}()
	var hdr [HeaderSize]byte
	binary.BigEndian.PutUint32(hdr[1:], id)
	_, _ = w.Write(hdr[:])
	w.WriteVal(c.kind.Schema, v)
	if w.Error != nil {
		return nil, fmt.Errorf("encode %s: %w", c.kind.Name, w.Error)
	}
	return append(dst, w.Buffer()...), nil
}

// Decode decodes a record in the Confluent wire format into v. It fails
// with a clear error, never a panic, on malformed input.
func (c *Codec[T]) Decode(b []byte, v *T) error {
	return c.DecodeContext(context.Background(), b, v)
}

// DecodeContext is Decode with a context for the registry lookup of a
// writer schema not seen before. When that lookup fails because the
// registry is unavailable, the error wraps ErrRegistryUnavailable; under a
// context from WaitForRegistry the lookup is retried until it succeeds or
// the context ends.
func (c *Codec[T]) DecodeContext(ctx context.Context, b []byte, v *T) error {
	if err := stopped(ctx); err != nil {
		return fmt.Errorf("decode %s: %w", c.kind.Name, err)
	}
	id, err := SchemaID(b)
	if err != nil {
		return fmt.Errorf("decode %s: %w", c.kind.Name, err)
	}
	schema, ok := (*c.readers.Load())[id]
	if !ok {
		schema, err = lookupWaiting(ctx, id, func() (avro.Schema, error) { return c.resolve(ctx, id) })
		if err != nil {
			return fmt.Errorf("decode %s: schema id %d: %w", c.kind.Name, id, err)
		}
	}
	r := readerPool.Get().(*avro.Reader)
	r.Reset(b[HeaderSize:])
	defer func() {
		r.Error = nil
		r.Reset(nil)
		readerPool.Put(r)
	}()
	r.ReadVal(schema, v)
	if r.Error != nil {
		if errors.Is(r.Error, io.EOF) || errors.Is(r.Error, io.ErrUnexpectedEOF) {
			return fmt.Errorf("decode %s (schema id %d): record truncated", c.kind.Name, id)
		}
		return fmt.Errorf("decode %s (schema id %d): %w", c.kind.Name, id, r.Error)
	}
	// Peek past the end: anything left over means the record was not what
	// its schema id says.
	r.Peek()
	if r.Error == nil {
		return fmt.Errorf("decode %s (schema id %d): trailing bytes after the record", c.kind.Name, id)
	}
	return nil
}

// resolve fetches the writer schema with the given id and prepares a schema
// that decodes its records into T.
func (c *Codec[T]) resolve(ctx context.Context, id uint32) (avro.Schema, error) {
	if c.reg == nil {
		return nil, errors.New("unknown schema id and no schema registry configured")
	}
	text, err := c.reg.SchemaByID(ctx, int(id))
	if err != nil {
		return nil, err
	}
	writer, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("registry schema is not valid Avro: %w", err)
	}
	var schema avro.Schema = c.kind.Schema
	if writer.Fingerprint() != c.kind.Schema.Fingerprint() {
		schema, err = avro.NewSchemaCompatibility().Resolve(c.kind.Schema, writer)
		if err != nil {
			return nil, fmt.Errorf("writer schema cannot be read as %s: %w", c.kind.Name, err)
		}
	}
	c.addReader(id, schema)
	return schema, nil
}

// The codecs of every kind, sharing one registry.
type Codecs struct {
	UserMessage     *Codec[UserMessage]
	Event           *Codec[Event]
	Status          *Codec[Status]
	Failure         *Codec[Failure]
	MetricDatapoint *Codec[MetricDatapoint]
	MetricAggregate *Codec[MetricAggregate]
	Heartbeat       *Codec[Heartbeat]
}

// NewCodecs returns one codec per kind, backed by reg.
func NewCodecs(reg Registry) *Codecs {
	return &Codecs{
		UserMessage:     NewCodec[UserMessage](UserMessageKind, reg),
		Event:           NewCodec[Event](EventKind, reg),
		Status:          NewCodec[Status](StatusKind, reg),
		Failure:         NewCodec[Failure](FailureKind, reg),
		MetricDatapoint: NewCodec[MetricDatapoint](MetricDatapointKind, reg),
		MetricAggregate: NewCodec[MetricAggregate](MetricAggregateKind, reg),
		Heartbeat:       NewCodec[Heartbeat](HeartbeatKind, reg),
	}
}
