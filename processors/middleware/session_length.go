package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/tables"
)

// KV is the state SessionLength keeps (Vumi kept it in Redis with a TTL):
// a replicated map whose writes survive restarts. internal/kvtopic
// implements it on a compacted topic.
type KV interface {
	Get(key string) ([]byte, bool)
	Put(ctx context.Context, key string, val []byte) error
	Delete(ctx context.Context, key string) error
}

// Session length namespace types.
const (
	NamespaceTransportName = "transport_name"
	NamespaceTag           = "tag"
)

// SessionLengthConfig configures SessionLength (Vumi's
// vumi.middleware.session_length.SessionLengthMiddleware).
type SessionLengthConfig struct {
	// Timeout after which a session's start time is forgotten, in
	// seconds. Default 600.
	Timeout int `yaml:"timeout"`
	// NamespaceType says what namespaces the (address, start time) pairs:
	// transport_name (the message's transport_name) or tag (the tag
	// TaggingMiddleware put on it; put that middleware earlier).
	// Default transport_name.
	NamespaceType string `yaml:"namespace_type"`
	// FieldName is the helper_metadata key the times are written under.
	// Default "session".
	FieldName string `yaml:"field_name"`
	// RedisManager is accepted for compatibility with Vumi configs and
	// ignored: the state lives in a compacted topic.
	RedisManager map[string]any `yaml:"redis_manager"`
}

// NewSessionLengthConfig returns the defaults.
func NewSessionLengthConfig() *SessionLengthConfig {
	return &SessionLengthConfig{Timeout: 600, NamespaceType: NamespaceTransportName, FieldName: "session"}
}

// Validate checks the keys.
func (c *SessionLengthConfig) Validate() error {
	if c.Timeout <= 0 {
		return fmt.Errorf("key timeout: must be a positive number of seconds, got %d", c.Timeout)
	}
	if c.NamespaceType != NamespaceTransportName && c.NamespaceType != NamespaceTag {
		return fmt.Errorf("key namespace_type: %q is not transport_name or tag", c.NamespaceType)
	}
	if c.FieldName == "" {
		return fmt.Errorf("key field_name: must not be empty")
	}
	return nil
}

// SessionLength records when a session started (and ended) in
// helper_metadata[field_name].session_start / session_end, as Unix
// seconds, on every message of the session.
type SessionLength struct {
	name string
	cfg  SessionLengthConfig
	kv   KV
	log  *slog.Logger
	now  func() time.Time
}

// NewSessionLength returns the middleware; now is the clock (nil: the
// real one).
func NewSessionLength(name string, cfg *SessionLengthConfig, kv KV, log *slog.Logger, now func() time.Time) (*SessionLength, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &SessionLength{name: name, cfg: *cfg, kv: kv, log: log, now: now}, nil
}

// Name implements Middleware.
func (s *SessionLength) Name() string { return s.name }

// Close releases the state store when it has resources.
func (s *SessionLength) Close() error {
	if c, ok := s.kv.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// HandleInbound keys the session by from_addr.
func (s *SessionLength) HandleInbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	return s.process(ctx, m, m.FromAddr, c)
}

// HandleOutbound keys the session by to_addr.
func (s *SessionLength) HandleOutbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	return s.process(ctx, m, m.ToAddr, c)
}

func (s *SessionLength) namespace(m *schemas.UserMessage) (string, bool) {
	if s.cfg.NamespaceType == NamespaceTag {
		t, ok := TagOf(m.HelperMetadata)
		return t.String(), ok
	}
	return m.Transport(), m.TransportName != nil
}

func (s *SessionLength) process(ctx context.Context, m *schemas.UserMessage, addr *string, c Context) (*schemas.UserMessage, error) {
	ns, ok := s.namespace(m)
	if !ok {
		s.log.LogAttrs(ctx, slog.LevelError, "session length namespace cannot be null, skipping message",
			slog.String("middleware", s.name), slog.String("namespace_type", s.cfg.NamespaceType), slog.String("message_id", m.MessageID))
		return m, nil
	}
	if addr == nil {
		s.log.LogAttrs(ctx, slog.LevelError, "session length key address cannot be null, skipping message",
			slog.String("middleware", s.name), slog.String("message_id", m.MessageID))
		return m, nil
	}
	key := ns + ":" + *addr + ":session_created"
	switch m.Session() {
	case schemas.SessionNew:
		if !s.has(m, "session_start") {
			t := s.seconds()
			val, _ := tables.NewExpiring([]byte(strconv.FormatFloat(t, 'f', -1, 64)), time.Duration(s.cfg.Timeout)*time.Second, s.now()).MarshalBinary()
			if err := s.kv.Put(ctx, key, val); err != nil {
				return nil, err
			}
			s.set(m, "session_start", t)
		}
	case schemas.SessionClose:
		if !s.has(m, "session_end") {
			s.set(m, "session_end", s.seconds())
		}
		if !s.has(m, "session_start") {
			if err := s.setCurrentStart(ctx, m, key, true); err != nil {
				return nil, err
			}
		}
	default:
		if !s.has(m, "session_start") {
			if err := s.setCurrentStart(ctx, m, key, false); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (s *SessionLength) seconds() float64 {
	return float64(s.now().UnixMicro()) / 1e6
}

func (s *SessionLength) setCurrentStart(ctx context.Context, m *schemas.UserMessage, key string, clear bool) error {
	raw, ok := s.kv.Get(key)
	if !ok {
		return nil
	}
	var e tables.Expiring
	if err := e.UnmarshalBinary(raw); err != nil || e.Expired(s.now()) {
		// Expired or unreadable: the session is forgotten, as a Redis
		// key past its TTL would be.
		return s.kv.Delete(ctx, key)
	}
	if t, err := strconv.ParseFloat(string(e.Value), 64); err == nil {
		s.set(m, "session_start", t)
	}
	if clear {
		return s.kv.Delete(ctx, key)
	}
	return nil
}

func (s *SessionLength) field(m *schemas.UserMessage, create bool) map[string]any {
	if m.HelperMetadata == nil {
		if !create {
			return nil
		}
		m.HelperMetadata = schemas.Metadata{}
	}
	f, ok := m.HelperMetadata[s.cfg.FieldName].(map[string]any)
	if !ok && create {
		f = map[string]any{}
		m.HelperMetadata[s.cfg.FieldName] = f
	}
	return f
}

func (s *SessionLength) has(m *schemas.UserMessage, key string) bool {
	_, ok := s.field(m, false)[key]
	return ok
}

func (s *SessionLength) set(m *schemas.UserMessage, key string, v float64) {
	s.field(m, true)[key] = v
}
