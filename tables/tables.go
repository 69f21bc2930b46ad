// Package tables holds what goka group tables need beyond goka itself:
// typed value codecs (so callbacks never type-assert interface{} values)
// and entries that expire, for the state Vumi kept in Redis with a TTL
// (routing memory, sessions, delivery-report id maps, multipart parts).
package tables

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Codec is a typed goka codec: Encode takes *T or T, Decode returns *T.
type Codec[T any] struct {
	// Marshal and Unmarshal encode one value; JSON when nil.
	Marshal   func(*T) ([]byte, error)
	Unmarshal func([]byte, *T) error
}

// Encode implements goka.Codec.
func (c Codec[T]) Encode(value any) ([]byte, error) {
	var v *T
	switch x := value.(type) {
	case *T:
		v = x
	case T:
		v = &x
	default:
		return nil, fmt.Errorf("tables: cannot encode %T", value)
	}
	if c.Marshal != nil {
		return c.Marshal(v)
	}
	return json.Marshal(v)
}

// Decode implements goka.Codec.
func (c Codec[T]) Decode(data []byte) (any, error) {
	v := new(T)
	var err error
	if c.Unmarshal != nil {
		err = c.Unmarshal(data, v)
	} else {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		return nil, fmt.Errorf("tables: decode %T: %w", v, err)
	}
	return v, nil
}

// ErrShortEntry is returned for an expiring entry shorter than its header.
var ErrShortEntry = errors.New("tables: entry shorter than its 8-byte expiry header")

// Expiring is a table value with an expiry time: an 8-byte big-endian Unix
// microsecond expiry followed by the payload. A zero expiry never expires.
type Expiring struct {
	Expires time.Time
	Value   []byte
}

// NewExpiring returns an entry that expires ttl from now (never when ttl
// is zero or negative).
func NewExpiring(value []byte, ttl time.Duration, now time.Time) Expiring {
	e := Expiring{Value: value}
	if ttl > 0 {
		e.Expires = now.Add(ttl)
	}
	return e
}

// Expired reports whether the entry has expired at now.
func (e Expiring) Expired(now time.Time) bool { return !e.Expires.IsZero() && !now.Before(e.Expires) }

// MarshalBinary encodes the entry.
func (e Expiring) MarshalBinary() ([]byte, error) {
	out := make([]byte, 8+len(e.Value))
	var us int64
	if !e.Expires.IsZero() {
		us = e.Expires.UnixMicro()
	}
	binary.BigEndian.PutUint64(out, uint64(us))
	copy(out[8:], e.Value)
	return out, nil
}

// UnmarshalBinary decodes an entry.
func (e *Expiring) UnmarshalBinary(b []byte) error {
	if len(b) < 8 {
		return fmt.Errorf("%w (%d bytes)", ErrShortEntry, len(b))
	}
	us := int64(binary.BigEndian.Uint64(b))
	e.Expires = time.Time{}
	if us != 0 {
		e.Expires = time.UnixMicro(us).UTC()
	}
	e.Value = append([]byte(nil), b[8:]...)
	return nil
}

// ExpiringCodec is the goka codec of Expiring entries.
var ExpiringCodec = Codec[Expiring]{
	Marshal:   func(e *Expiring) ([]byte, error) { return e.MarshalBinary() },
	Unmarshal: func(b []byte, e *Expiring) error { return e.UnmarshalBinary(b) },
}
