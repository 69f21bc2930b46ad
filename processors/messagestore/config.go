// Package messagestore is Vumi's message store on Kafka. The history
// topics (<name>.inbound, .outbound, .event) are the store; the
// message_store worker materialises what Vumi's MessageStore answered —
// messages and events by id, inbound / outbound / events per batch, the
// latest delivery status of each outbound message, per-batch status
// counts — plus Vumi's tag pools, and serves them on an HTTP JSON API.
package messagestore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/vumi-kafka/vumi/internal/endpoint"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the message_store worker's config.
type Config struct {
	// Connectors whose history topics are stored: <name>.inbound,
	// .outbound and .event of each. List store_prefix here too to store
	// what StoringMiddleware writes. Required.
	Connectors []string `yaml:"connectors"`
	// StorePrefix names the store's own topics: <store_prefix>.batches
	// (compacted; batch definitions) and <store_prefix>.tagpool (tag pool
	// commands). Default "message_store".
	StorePrefix string `yaml:"store_prefix"`
	// TwistedEndpoint is where the HTTP API listens (Vumi's endpoint
	// syntax, e.g. "tcp:port=8090:interface=127.0.0.1", or host:port).
	// Default tcp:port=8090:interface=127.0.0.1.
	TwistedEndpoint string `yaml:"twisted_endpoint"`
	// WebPath is the path the API is served under. Default "/".
	WebPath string `yaml:"web_path"`
	// HealthPath answers "OK" without authentication. Default "/health/".
	HealthPath string `yaml:"health_path"`
	// Username and Password, when set, are required (HTTP basic auth) on
	// every request but health. Vumi's resource had no authentication.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// RiakManager and RedisManager are accepted for compatibility with
	// Vumi configs and ignored.
	RiakManager   map[string]any `yaml:"riak_manager"`
	RedisManager  map[string]any `yaml:"redis_manager"`
	worker.Common `yaml:",inline"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{StorePrefix: "message_store", TwistedEndpoint: "tcp:port=8090:interface=127.0.0.1", WebPath: "/", HealthPath: "/health/"}
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Validate checks the keys and fills defaults.
func (c *Config) Validate() error {
	if len(c.Connectors) == 0 {
		return errors.New("key connectors: at least one connector name is required")
	}
	seen := map[string]bool{}
	for _, n := range c.Connectors {
		if !nameRe.MatchString(n) {
			return fmt.Errorf("key connectors: %q may only contain letters, digits, '_' and '-'", n)
		}
		if seen[n] {
			return fmt.Errorf("key connectors: %q listed twice", n)
		}
		seen[n] = true
	}
	if !nameRe.MatchString(c.StorePrefix) {
		return fmt.Errorf("key store_prefix: %q may only contain letters, digits, '_' and '-'", c.StorePrefix)
	}
	if _, err := endpoint.Server(c.TwistedEndpoint); err != nil {
		return fmt.Errorf("key twisted_endpoint: %w", err)
	}
	if !strings.HasPrefix(c.WebPath, "/") {
		return fmt.Errorf("key web_path: %q must start with /", c.WebPath)
	}
	if !strings.HasPrefix(c.HealthPath, "/") {
		return fmt.Errorf("key health_path: %q must start with /", c.HealthPath)
	}
	if (c.Username == "") != (c.Password == "") {
		return errors.New("key username: username and password must be given together")
	}
	c.Common.Defaults()
	return nil
}

// BatchesTopic is the compacted topic of batch definitions.
func (c *Config) BatchesTopic() string { return c.StorePrefix + ".batches" }

// TagpoolTopic is the topic of tag-pool commands, keyed by pool.
func (c *Config) TagpoolTopic() string { return c.StorePrefix + ".tagpool" }

// IO is what the worker reads and writes.
func (c *Config) IO(string) topology.IO {
	io := topology.IO{}
	for _, n := range c.Connectors {
		io.Consumes = append(io.Consumes,
			topology.Stream{Topic: n + topology.SuffixInbound, Kind: "user_message"},
			topology.Stream{Topic: n + topology.SuffixOutbound, Kind: "user_message"},
			topology.Stream{Topic: n + topology.SuffixEvent, Kind: "event"})
	}
	batches := topology.Stream{Topic: c.BatchesTopic(), Kind: "state", Compacted: true}
	pools := topology.Stream{Topic: c.TagpoolTopic(), Kind: "command"}
	io.Consumes = append(io.Consumes, batches, pools)
	io.Produces = append(io.Produces, batches, pools)
	return io
}

// Kind is the message_store worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "message_store",
		Aliases: []string{"vumi.components.message_store_resource.MessageStoreResourceWorker",
			"vumi.components.message_store_api.MessageStoreAPIWorker", "vumi.components.tagpool_api.TagpoolApiWorker"},
		Role:      topology.RoleSink,
		Summary:   "materialises the history topics into Vumi's message store (batches, statuses, tag pools) with an HTTP API",
		NewConfig: func() topology.WorkerConfig { return NewConfig() },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				s, err := New(deps, spec, cfg)
				if err != nil {
					return err
				}
				return s.Run(ctx)
			}), nil
		},
	}
}
