package schemas

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"
)

// genericAPI decodes records of schemas this project does not know: union
// members it cannot map to Go types decode as {"type name": value}.
var genericAPI = avro.Config{TagKey: "avro", MaxByteSliceSize: 8 << 20, MaxSliceAllocSize: 1 << 16}.Freeze()

// AnyDecoder decodes records of any kind, choosing the codec by the full
// name of the record's writer schema (for tools such as `vumi tail`).
// Records of schemas this project does not know are decoded generically.
type AnyDecoder struct {
	reg    Registry
	codecs *Codecs
	mu     sync.Mutex
	kinds  map[uint32]*Kind
	others map[uint32]avro.Schema
}

// NewAnyDecoder returns a decoder backed by reg.
func NewAnyDecoder(reg Registry) *AnyDecoder {
	return &AnyDecoder{reg: reg, codecs: NewCodecs(reg), kinds: map[uint32]*Kind{}, others: map[uint32]avro.Schema{}}
}

// Decode returns the record as a *UserMessage, *Event, *Status, *Failure,
// *MetricDatapoint, *MetricAggregate, or, for other schemas, the generic
// Avro value (maps, slices and scalars).
func (d *AnyDecoder) Decode(ctx context.Context, b []byte) (any, error) {
	id, err := SchemaID(b)
	if err != nil {
		return nil, err
	}
	kind, other, err := d.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if other != nil {
		var v any
		if err := genericAPI.Unmarshal(other, b[HeaderSize:], &v); err != nil {
			return nil, fmt.Errorf("decode schema id %d: %w", id, err)
		}
		return v, nil
	}
	switch kind {
	case UserMessageKind:
		return decodeNew(ctx, d.codecs.UserMessage, b)
	case EventKind:
		return decodeNew(ctx, d.codecs.Event, b)
	case StatusKind:
		return decodeNew(ctx, d.codecs.Status, b)
	case FailureKind:
		return decodeNew(ctx, d.codecs.Failure, b)
	case MetricDatapointKind:
		return decodeNew(ctx, d.codecs.MetricDatapoint, b)
	case HeartbeatKind:
		return decodeNew(ctx, d.codecs.Heartbeat, b)
	default:
		return decodeNew(ctx, d.codecs.MetricAggregate, b)
	}
}

// DecodeJSON decodes a record of any kind to JSON (Vumi's JSON message
// format for the Vumi kinds).
func (d *AnyDecoder) DecodeJSON(ctx context.Context, b []byte) ([]byte, error) {
	v, err := d.Decode(ctx, b)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func decodeNew[T any](ctx context.Context, c *Codec[T], b []byte) (*T, error) {
	v := new(T)
	if err := c.DecodeContext(ctx, b, v); err != nil {
		return nil, err
	}
	return v, nil
}

func (d *AnyDecoder) lookup(ctx context.Context, id uint32) (*Kind, avro.Schema, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if k, ok := d.kinds[id]; ok {
		return k, nil, nil
	}
	if s, ok := d.others[id]; ok {
		return nil, s, nil
	}
	if d.reg == nil {
		return nil, nil, fmt.Errorf("schema id %d: no schema registry configured", id)
	}
	text, err := d.reg.SchemaByID(ctx, int(id))
	if err != nil {
		return nil, nil, err
	}
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, nil, fmt.Errorf("schema id %d is not valid Avro: %w", id, err)
	}
	if n, ok := s.(avro.NamedSchema); ok {
		if k, ok := kindByAvroName[n.FullName()]; ok {
			d.kinds[id] = k
			return k, nil, nil
		}
	}
	d.others[id] = s
	return nil, s, nil
}
