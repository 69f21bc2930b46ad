// Package httprpc is the base of Vumi's synchronous HTTP transports
// (HttpRpcTransport): an HTTP request becomes an inbound message and waits
// for the application's reply, which becomes the HTTP response.
//
// Unlike Vumi, several instances of one such transport may run behind a
// load balancer: a reply consumed by an instance that does not hold the
// request is forwarded to the one that does through <transport>.rpc, and a
// reply whose request is gone (timed out, client left, instance died) goes
// to <transport>.failures. docs/http-rpc.md describes the design.
package httprpc

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/topology"
)

// Validation modes.
const (
	Strict     = "strict"
	Permissive = "permissive"
)

// Config is Vumi's HttpRpcTransportConfig. Durations are in seconds, as in
// Vumi.
type Config struct {
	transport.Config `yaml:",inline"`
	// WebPath is the path requests arrive on, e.g. "/api/v1/sms". Required.
	WebPath string `yaml:"web_path"`
	// WebPort to listen on; default 0 (any free port).
	WebPort int `yaml:"web_port"`
	// WebInterface to listen on; default all interfaces.
	WebInterface string `yaml:"web_interface"`
	// WebUsername and WebPassword require HTTP Basic auth when set (both
	// or neither).
	WebUsername string `yaml:"web_username"`
	WebPassword string `yaml:"web_password"`
	// WebAuthDomain is the Basic auth realm; default "Vumi HTTP RPC transport".
	WebAuthDomain string `yaml:"web_auth_domain"`
	// HealthPath answers health checks (no auth); default "health".
	HealthPath string `yaml:"health_path"`
	// RequestCleanupInterval: how often, in seconds, requests past
	// request_timeout are closed; default 5; below 1 disables it.
	RequestCleanupInterval int `yaml:"request_cleanup_interval"`
	// RequestTimeout in seconds; default 240.
	RequestTimeout int `yaml:"request_timeout"`
	// RequestTimeoutStatusCode of a timed-out request; default 504.
	RequestTimeoutStatusCode int `yaml:"request_timeout_status_code"`
	// RequestTimeoutBody of a timed-out request; default "".
	RequestTimeoutBody string `yaml:"request_timeout_body"`
	// Noisy logs every request and reply at debug level.
	Noisy bool `yaml:"noisy"`
	// ValidationMode is strict (unknown parameters are an error) or
	// permissive; default strict.
	ValidationMode string `yaml:"validation_mode"`
	// ResponseTimeDown and ResponseTimeDegraded, in seconds, decide the
	// response status events; defaults 10.0 and 1.0.
	ResponseTimeDown     float64 `yaml:"response_time_down"`
	ResponseTimeDegraded float64 `yaml:"response_time_degraded"`
	// RPCLiveness is how long, in seconds, an instance is considered alive
	// after its last presence beat when forwarding replies; default 5.
	RPCLiveness float64 `yaml:"rpc_liveness"`
	// PublishTimeout bounds, in seconds, publishing a request's inbound
	// message: when Kafka is unreachable the client gets a 503 this soon
	// instead of hanging; default 1.
	PublishTimeout float64 `yaml:"publish_timeout"`

	defaults bool
}

// ValidateRPC checks the HTTP-RPC keys and fills defaults.
func (c *Config) ValidateRPC() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if !c.defaults {
		c.defaults = true
		if c.WebAuthDomain == "" {
			c.WebAuthDomain = "Vumi HTTP RPC transport"
		}
		if c.HealthPath == "" {
			c.HealthPath = "health"
		}
		if c.RequestCleanupInterval == 0 {
			c.RequestCleanupInterval = 5
		}
		if c.RequestTimeout == 0 {
			c.RequestTimeout = 240
		}
		if c.RequestTimeoutStatusCode == 0 {
			c.RequestTimeoutStatusCode = 504
		}
		if c.ValidationMode == "" {
			c.ValidationMode = Strict
		}
		if c.ResponseTimeDown == 0 {
			c.ResponseTimeDown = 10
		}
		if c.ResponseTimeDegraded == 0 {
			c.ResponseTimeDegraded = 1
		}
		if c.RPCLiveness == 0 {
			c.RPCLiveness = 5
		}
		if c.PublishTimeout == 0 {
			c.PublishTimeout = 1
		}
	}
	var errs []error
	if c.WebPath == "" {
		errs = append(errs, errors.New("key web_path: is required"))
	}
	if c.WebPort < 0 || c.WebPort > 65535 {
		errs = append(errs, fmt.Errorf("key web_port: %d is not a port", c.WebPort))
	}
	if (c.WebUsername == "") != (c.WebPassword == "") {
		errs = append(errs, errors.New("key web_username: if either web_username or web_password is specified, both must be specified"))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("key request_timeout: must be positive, got %d", c.RequestTimeout))
	}
	if c.RequestTimeoutStatusCode < 100 || c.RequestTimeoutStatusCode > 599 {
		errs = append(errs, fmt.Errorf("key request_timeout_status_code: %d is not an HTTP status code", c.RequestTimeoutStatusCode))
	}
	if c.ValidationMode != Strict && c.ValidationMode != Permissive {
		errs = append(errs, fmt.Errorf("key validation_mode: invalid validation mode %q (want strict or permissive)", c.ValidationMode))
	}
	if c.ResponseTimeDegraded < 0 || c.ResponseTimeDown < c.ResponseTimeDegraded {
		errs = append(errs, fmt.Errorf("key response_time_down: %v must be at least response_time_degraded (%v)", c.ResponseTimeDown, c.ResponseTimeDegraded))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, fmt.Errorf("key publish_timeout: must be positive, got %v", c.PublishTimeout))
	}
	if c.RPCLiveness <= 0 {
		errs = append(errs, fmt.Errorf("key rpc_liveness: must be positive, got %v", c.RPCLiveness))
	}
	if strings.TrimLeft(c.HealthPath, "/") == strings.TrimLeft(c.WebPath, "/") {
		errs = append(errs, errors.New("key health_path: must differ from web_path"))
	}
	return errors.Join(errs...)
}

func (c *Config) requestTimeout() time.Duration {
	return time.Duration(c.RequestTimeout) * time.Second
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// RPCTopic is the topic replies are forwarded on between instances.
func RPCTopic(transportName string) string { return transportName + ".rpc" }

// PresenceTopic is the compacted topic instances announce themselves on.
func PresenceTopic(transportName string) string { return transportName + ".rpc-instances" }

// IO is the topics of an HTTP-RPC transport.
func (c *Config) IO(name string) topology.IO {
	io := c.Config.IO(name)
	rpc, presence := RPCTopic(c.TransportName), PresenceTopic(c.TransportName)
	io.Consumes = append(io.Consumes,
		topology.Stream{Topic: rpc, Kind: "user_message"},
		topology.Stream{Topic: presence, Kind: "state", Compacted: true})
	io.Produces = append(io.Produces,
		topology.Stream{Topic: rpc, Kind: "user_message"},
		topology.Stream{Topic: presence, Kind: "state", Compacted: true})
	return io
}
