package registry

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures a Registry. The zero value of every field except
// Brokers is usable; New fills in the defaults documented on each field.
type Config struct {
	// Brokers are the seed brokers of the Kafka cluster that holds the
	// registry's topic. Required.
	Brokers []string
	// KafkaOpts are extra franz-go options (TLS, SASL, client id, ...)
	// given to every Kafka client the registry creates. Options that
	// decide what is consumed, how records are partitioned or which
	// brokers are contacted are set by the registry and must not be
	// given here.
	KafkaOpts []kgo.Opt

	// Topic is the compacted, single-partition topic holding the
	// registry's state. Default DefaultTopic.
	Topic string
	// ReplicationFactor is used when the registry creates Topic.
	// Default -1: the broker's default.
	ReplicationFactor int16
	// DisableTopicCreation makes New fail when Topic does not exist
	// instead of creating it.
	DisableTopicCreation bool

	// DefaultCompatibility is the compatibility level in force when none
	// has been configured through the API. Default LevelBackward.
	DefaultCompatibility Level

	// Username and Password, when set, require HTTP Basic authentication
	// with these credentials on every endpoint except /healthz. Both or
	// neither must be set.
	Username, Password string

	// Logger receives the registry's logs. Default: discard.
	Logger *slog.Logger

	// InitTimeout bounds loading the topic in New when the context given
	// to New has no earlier deadline. Default 60s.
	InitTimeout time.Duration
	// WriteTimeout bounds each write to the topic, including waiting
	// for the write to be read back. Default 10s.
	WriteTimeout time.Duration
	// MaxRequestBytes limits request bodies. Default 4 MiB.
	MaxRequestBytes int64
}

// DefaultTopic is the topic used when Config.Topic is empty, the same as
// Confluent's registry.
const DefaultTopic = "_schemas"

const (
	defaultInitTimeout     = 60 * time.Second
	defaultWriteTimeout    = 10 * time.Second
	defaultMaxRequestBytes = 4 << 20
)

// validate fills in defaults and reports every invalid or conflicting
// setting at once.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Brokers) == 0 {
		bad("Brokers is required")
	}
	for i, b := range c.Brokers {
		if b == "" {
			bad("Brokers[%d] is empty", i)
		}
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	} else if err := validTopicName(c.Topic); err != nil {
		bad("Topic: %w", err)
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	} else if c.ReplicationFactor < -1 {
		bad("ReplicationFactor %d is invalid: use -1 for the broker default or a positive number", c.ReplicationFactor)
	}
	if c.DisableTopicCreation && c.ReplicationFactor != -1 {
		bad("ReplicationFactor is set but DisableTopicCreation is too: the registry never creates the topic")
	}
	if c.DefaultCompatibility == "" {
		c.DefaultCompatibility = LevelBackward
	} else if l, ok := parseLevel(string(c.DefaultCompatibility)); ok {
		c.DefaultCompatibility = l
	} else {
		bad("DefaultCompatibility %q is not a compatibility level", c.DefaultCompatibility)
	}
	if (c.Username == "") != (c.Password == "") {
		bad("Username and Password must be set together (Basic auth is enabled only when both are)")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case c.InitTimeout == 0:
		c.InitTimeout = defaultInitTimeout
	case c.InitTimeout < 0:
		bad("InitTimeout %v is negative", c.InitTimeout)
	}
	switch {
	case c.WriteTimeout == 0:
		c.WriteTimeout = defaultWriteTimeout
	case c.WriteTimeout < 0:
		bad("WriteTimeout %v is negative", c.WriteTimeout)
	}
	switch {
	case c.MaxRequestBytes == 0:
		c.MaxRequestBytes = defaultMaxRequestBytes
	case c.MaxRequestBytes < 0:
		bad("MaxRequestBytes %d is negative", c.MaxRequestBytes)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registry: invalid config: %w", err)
	}
	return nil
}

// validTopicName applies Kafka's topic naming rules.
func validTopicName(t string) error {
	if t == "." || t == ".." {
		return fmt.Errorf("%q is not a valid topic name", t)
	}
	if len(t) > 249 {
		return fmt.Errorf("topic name is longer than 249 characters")
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q contains %q: only ASCII letters, digits, '.', '_' and '-' are allowed", t, r)
		}
	}
	return nil
}
