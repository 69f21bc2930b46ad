package middleware

import (
	"context"
	"fmt"
	"regexp"

	"github.com/vumi-kafka/vumi/schemas"
)

// StoringConfig configures Storing (Vumi's
// vumi.middleware.message_storing.StoringMiddleware).
type StoringConfig struct {
	// StorePrefix names the message store the middleware writes to: the
	// history topics <store_prefix>.inbound, .outbound and .event, which
	// a message_store worker lists in its connectors. Default
	// "message_store".
	StorePrefix string `yaml:"store_prefix"`
	// StoreOnConsume stores consumed messages as well as published ones.
	// Default true.
	StoreOnConsume bool `yaml:"store_on_consume"`
	// RedisManager and RiakManager are accepted for compatibility with
	// Vumi configs and ignored: the store is Kafka.
	RedisManager map[string]any `yaml:"redis_manager"`
	RiakManager  map[string]any `yaml:"riak_manager"`
}

// NewStoringConfig returns the defaults.
func NewStoringConfig() *StoringConfig {
	return &StoringConfig{StorePrefix: "message_store", StoreOnConsume: true}
}

var storePrefixRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Validate checks store_prefix.
func (c *StoringConfig) Validate() error {
	if !storePrefixRe.MatchString(c.StorePrefix) {
		return fmt.Errorf("key store_prefix: %q must be non-empty and may only contain letters, digits, '_' and '-'", c.StorePrefix)
	}
	return nil
}

// StoreWriter writes a record to a topic and waits for the broker's ack.
type StoreWriter interface {
	Write(ctx context.Context, topic string, key, value []byte) error
}

// StoreTopics are the three history topics a Storing middleware writes.
type StoreTopics struct{ Inbound, Outbound, Event string }

// Storing copies every inbound and outbound message and every event that
// passes through it to the message store's history topics (failures are
// not stored, as in Vumi). Messages are linked to batches by the store,
// by tag or helper_metadata.
type Storing struct {
	name      string
	onConsume bool
	topics    StoreTopics
	codecs    *schemas.Codecs
	w         StoreWriter
	inKey     func(*schemas.UserMessage) []byte
	outKey    func(*schemas.UserMessage) []byte
	evKey     func(*schemas.Event) []byte
}

// StoringDeps is what Storing writes with: the topics, the registered
// codecs, the writer and the record keys of each topic.
type StoringDeps struct {
	Topics      StoreTopics
	Codecs      *schemas.Codecs
	Writer      StoreWriter
	InboundKey  func(*schemas.UserMessage) []byte
	OutboundKey func(*schemas.UserMessage) []byte
	EventKey    func(*schemas.Event) []byte
}

// NewStoring returns the middleware.
func NewStoring(name string, cfg *StoringConfig, d StoringDeps) (*Storing, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Storing{name: name, onConsume: cfg.StoreOnConsume, topics: d.Topics, codecs: d.Codecs, w: d.Writer,
		inKey: d.InboundKey, outKey: d.OutboundKey, evKey: d.EventKey}, nil
}

// Name implements Middleware.
func (s *Storing) Name() string { return s.name }

// Close closes the writer when it has resources.
func (s *Storing) Close() error {
	if c, ok := s.w.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

func (s *Storing) skip(c Context) bool { return c.Phase == Consume && !s.onConsume }

// HandleInbound stores an inbound message.
func (s *Storing) HandleInbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	if s.skip(c) {
		return m, nil
	}
	v, err := s.codecs.UserMessage.Encode(m)
	if err != nil {
		return nil, fmt.Errorf("store inbound: %w", err)
	}
	if err := s.w.Write(ctx, s.topics.Inbound, s.inKey(m), v); err != nil {
		return nil, fmt.Errorf("store inbound: %w", err)
	}
	return m, nil
}

// HandleOutbound stores an outbound message.
func (s *Storing) HandleOutbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	if s.skip(c) {
		return m, nil
	}
	v, err := s.codecs.UserMessage.Encode(m)
	if err != nil {
		return nil, fmt.Errorf("store outbound: %w", err)
	}
	if err := s.w.Write(ctx, s.topics.Outbound, s.outKey(m), v); err != nil {
		return nil, fmt.Errorf("store outbound: %w", err)
	}
	return m, nil
}

// HandleEvent stores an event.
func (s *Storing) HandleEvent(ctx context.Context, e *schemas.Event, c Context) (*schemas.Event, error) {
	if s.skip(c) {
		return e, nil
	}
	v, err := s.codecs.Event.Encode(e)
	if err != nil {
		return nil, fmt.Errorf("store event: %w", err)
	}
	if err := s.w.Write(ctx, s.topics.Event, s.evKey(e), v); err != nil {
		return nil, fmt.Errorf("store event: %w", err)
	}
	return e, nil
}
