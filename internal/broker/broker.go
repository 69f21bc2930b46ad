// Package broker runs the embedded deployment: a Kafka-protocol broker
// (franz-go's kfake, persisted to a data directory) and the schema
// registry, both on loopback.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vumi-kafka/vumi/schemas/registry"
)

// Defaults for the embedded broker.
const (
	DefaultDataDir      = "data"
	DefaultKafkaPort    = 9092
	DefaultRegistryPort = 8081
	DefaultPartitions   = 4
)

// Config configures an embedded broker. The zero value runs on the default
// ports with data under ./data.
type Config struct {
	// DataDir holds the broker's data under DataDir/kafka. Default "data".
	DataDir string
	// KafkaPort is the loopback port of the Kafka listener; default 9092.
	// -1 picks a free port.
	KafkaPort int
	// RegistryPort is the loopback port of the schema registry; default
	// 8081. -1 picks a free port. 0 with NoRegistry unset means default.
	RegistryPort int
	// NoRegistry disables the schema registry.
	NoRegistry bool
	// RegistryUsername and RegistryPassword enable HTTP Basic auth on the
	// registry.
	RegistryUsername, RegistryPassword string
	// DefaultPartitions is the partition count of topics created without
	// one; default 4.
	DefaultPartitions int
	// SyncWrites fsyncs every produced batch (slower; survives a power
	// cut, not only a process crash).
	SyncWrites bool
	// Logger receives the broker's and registry's logs; default discard.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.KafkaPort == 0 {
		c.KafkaPort = DefaultKafkaPort
	}
	if c.RegistryPort == 0 {
		c.RegistryPort = DefaultRegistryPort
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = DefaultPartitions
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for name, p := range map[string]int{"kafka port": c.KafkaPort, "registry port": c.RegistryPort} {
		if p < -1 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s %d out of range (1-65535, or -1 for any free port)", name, p))
		}
	}
	if c.DefaultPartitions < 1 {
		errs = append(errs, fmt.Errorf("default partitions %d must be at least 1", c.DefaultPartitions))
	}
	if (c.RegistryUsername == "") != (c.RegistryPassword == "") {
		errs = append(errs, errors.New("registry username and password must be set together"))
	}
	return errors.Join(errs...)
}

// Broker is a running embedded broker and registry.
type Broker struct {
	cfg      Config
	cluster  *kfake.Cluster
	reg      *registry.Registry
	httpSrv  *http.Server
	regAddr  string
	serveErr chan error
}

// Start starts the broker, then the registry on top of it. On error
// everything started is stopped again.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	dir := filepath.Join(cfg.DataDir, "kafka")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded broker: data dir: %w", err)
	}
	port := cfg.KafkaPort
	if port == -1 {
		port = 0
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DataDir(dir),
		kfake.ClusterID("vumi-embedded"),
		kfake.DefaultNumPartitions(cfg.DefaultPartitions),
		kfake.WithLogger(kfakeLogger{cfg.Logger}),
		// kfake applies time retention to compacted topics too (real Kafka
		// does not), which would delete schemas and table state after a
		// week. Keep everything by default; set retention.ms per topic to
		// expire history.
		kfake.BrokerConfigs(map[string]string{"log.retention.ms": "-1"}),
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: start Kafka on 127.0.0.1:%d (data %s): %w", cfg.KafkaPort, dir, err)
	}
	b := &Broker{cfg: cfg, cluster: cluster, serveErr: make(chan error, 1)}
	cfg.Logger.Info("embedded Kafka broker started", "addr", b.KafkaAddr(), "data_dir", dir)
	if cfg.NoRegistry {
		return b, nil
	}
	if err := b.startRegistry(ctx); err != nil {
		cluster.Close()
		return nil, err
	}
	return b, nil
}

func (b *Broker) startRegistry(ctx context.Context) error {
	reg, err := registry.New(ctx, registry.Config{
		Brokers:  []string{b.KafkaAddr()},
		Username: b.cfg.RegistryUsername,
		Password: b.cfg.RegistryPassword,
		Logger:   b.cfg.Logger.With("component", "schema-registry"),
	})
	if err != nil {
		return fmt.Errorf("embedded schema registry: %w", err)
	}
	port := b.cfg.RegistryPort
	if port == -1 {
		port = 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		reg.Close()
		return fmt.Errorf("embedded schema registry: listen on 127.0.0.1:%d: %w", b.cfg.RegistryPort, err)
	}
	b.reg = reg
	b.regAddr = ln.Addr().String()
	b.httpSrv = &http.Server{Handler: reg.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { b.serveErr <- b.httpSrv.Serve(ln) }()
	b.cfg.Logger.Info("embedded schema registry started", "url", b.RegistryURL())
	return nil
}

// KafkaAddr is the broker's host:port.
func (b *Broker) KafkaAddr() string { return b.cluster.ListenAddrs()[0] }

// RegistryURL is the registry's base URL, or "" when it is disabled.
func (b *Broker) RegistryURL() string {
	if b.regAddr == "" {
		return ""
	}
	return "http://" + b.regAddr
}

// Cluster is the underlying kfake cluster (for tests and admin).
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the registry then the broker, flushing the broker's state to
// its data directory.
func (b *Broker) Close() error {
	var errs []error
	if b.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := b.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("registry http: %w", err))
		}
		cancel()
	}
	if b.reg != nil {
		if err := b.reg.Close(); err != nil {
			errs = append(errs, fmt.Errorf("registry: %w", err))
		}
	}
	b.cluster.Close()
	b.cfg.Logger.Info("embedded broker stopped")
	return errors.Join(errs...)
}

// kfakeLogger adapts slog to kfake's logger.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	text := fmt.Sprintf(msg, args...)
	switch level {
	case kfake.LogLevelError:
		k.l.Error(text, "component", "kafka")
	case kfake.LogLevelWarn:
		k.l.Warn(text, "component", "kafka")
	default:
		k.l.Debug(text, "component", "kafka")
	}
}
