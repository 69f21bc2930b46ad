package ussdsession

import (
	"fmt"
	"time"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// DefaultTimeout is ussd_session_timeout's default, in seconds.
const DefaultTimeout = 600

// SessionConfig is the session part of a USSD-over-HTTP transport's
// config (Vumi's SessionManager settings), embedded inline.
type SessionConfig struct {
	// UssdSessionTimeout is how long, in seconds, a session lives (from
	// its start, or from its last request where the transport says so);
	// default 600.
	UssdSessionTimeout int `yaml:"ussd_session_timeout"`
	// RedisManager is accepted for compatibility with Vumi configs and
	// ignored: sessions live in the session table.
	RedisManager map[string]any `yaml:"redis_manager"`
}

// ValidateSession fills ussd_session_timeout's default and rejects a
// negative one.
func (c *SessionConfig) ValidateSession() error {
	if c.UssdSessionTimeout == 0 {
		c.UssdSessionTimeout = DefaultTimeout
	}
	if c.UssdSessionTimeout < 0 {
		return fmt.Errorf("key ussd_session_timeout: must be positive, got %d", c.UssdSessionTimeout)
	}
	return nil
}

// SessionTTL is ussd_session_timeout as a duration.
func (c *SessionConfig) SessionTTL() time.Duration {
	return time.Duration(c.UssdSessionTimeout) * time.Second
}

// HTTPConfig is the config of a plain USSD-over-HTTP transport: the
// HTTP-RPC server's settings, the session settings and transport_type.
type HTTPConfig struct {
	httprpc.Config `yaml:",inline"`
	SessionConfig  `yaml:",inline"`
	// TransportType of inbound messages; default "ussd".
	TransportType string `yaml:"transport_type"`
}

// Validate implements topology.WorkerConfig.
func (c *HTTPConfig) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	if c.TransportType == "" {
		c.TransportType = schemas.TransportUSSD
	}
	return c.ValidateSession()
}

// IO implements topology.WorkerConfig: the HTTP-RPC topics and the
// session table.
func (c *HTTPConfig) IO(name string) topology.IO {
	return AddIO(c.Config.IO(name), c.TransportName)
}
