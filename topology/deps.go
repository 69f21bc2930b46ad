package topology

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	gometrics "github.com/rcrowley/go-metrics"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

// Deps is what a worker gets to build itself: where Kafka is, the shared
// codecs (schemas registered for every topic of the deployment before any
// worker starts), topic names, and logging.
type Deps struct {
	Cluster  *ClusterConfig
	Names    Names
	Brokers  []string
	Codecs   *schemas.Codecs
	Registry schemas.Registry
	Logger   *slog.Logger
	// Kinds is the binary's registry (to build middleware).
	Kinds *Registry
	// KafkaHooks are added to every franz-go client made with KafkaOpts
	// (process-level figures, see internal/metricsserver).
	KafkaHooks []kgo.Hook

	tlsConfig *tls.Config
}

// NewDeps prepares the dependencies for a cluster whose brokers are known
// (for an embedded deployment, after the broker started).
func NewDeps(cluster *ClusterConfig, brokers []string, reg schemas.Registry, kinds *Registry, log *slog.Logger) (*Deps, error) {
	d := &Deps{
		Cluster:  cluster,
		Names:    cluster.Names(),
		Brokers:  brokers,
		Codecs:   schemas.NewCodecs(reg),
		Registry: reg,
		Logger:   log,
		Kinds:    kinds,
	}
	if cluster.Kafka.TLS.Enabled {
		tc, err := buildTLS(&cluster.Kafka.TLS)
		if err != nil {
			return nil, fmt.Errorf("cluster.kafka.tls: %w", err)
		}
		d.tlsConfig = tc
	}
	return d, nil
}

func buildTLS(c *TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in by config
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificates found", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// KafkaOpts returns franz-go options for the cluster: seeds, client id,
// TLS, SASL, batch compression, acks=all with idempotent writes
// (franz-go's default).
func (d *Deps) KafkaOpts(clientID string) []kgo.Opt {
	k := &d.Cluster.Kafka
	opts := []kgo.Opt{
		kgo.SeedBrokers(d.Brokers...),
		kgo.ClientID(k.ClientID + "." + clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DialTimeout(k.DialTimeout),
	}
	switch k.Compression {
	case "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default: // snappy, franz-go's default
	}
	if d.tlsConfig != nil {
		opts = append(opts, kgo.DialTLSConfig(d.tlsConfig.Clone()))
	}
	if len(d.KafkaHooks) > 0 {
		opts = append(opts, kgo.WithHooks(d.KafkaHooks...))
	}
	switch strings.ToUpper(k.SASL.Mechanism) {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha512Mechanism()))
	}
	return opts
}

// GokaProducerBuilder returns the producer builder of goka processors and
// emitters: a franz-go client per producer with the cluster's settings
// (KafkaOpts(clientID): seeds, TLS, SASL, client id, hooks) and
// kafka.GokaProducerOpts (acks=all, idempotent, 1 ms linger, murmur2 key
// partitioning, bounded buffering). It replaces sarama's producer, whose
// idempotence needs one request in flight per broker; goka's consumers
// stay on sarama (SaramaConfig). extra overrides (tests).
func (d *Deps) GokaProducerBuilder(clientID string, extra ...kgo.Opt) goka.ProducerBuilder {
	return kafka.GokaProducerBuilder(d.KafkaOpts(clientID), extra...)
}

func init() {
	// sarama records histograms and meters of every request in a
	// go-metrics registry that nothing here reads (our figures come from
	// franz-go hooks and goka); they were ~1 % of the end-to-end
	// benchmark's CPU. With nil metrics sarama's calls do nothing.
	gometrics.UseNilMetrics = true
}

// SaramaConfig returns the sarama config of goka's consumers, views and
// topic manager: a modern protocol version, reading from the oldest offset,
// short fetch waits. goka produces with franz-go (GokaProducerBuilder), so
// nothing here configures a sarama producer, and sarama keeps its default
// of several requests in flight per broker connection (its idempotent
// producer needed one).
func (d *Deps) SaramaConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = d.Cluster.Kafka.ClientID + "." + clientID
	c.Net.DialTimeout = d.Cluster.Kafka.DialTimeout
	c.Consumer.Return.Errors = true
	c.Consumer.MaxProcessingTime = time.Second
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	c.Consumer.Fetch.Default = 1 << 20
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	c.Metadata.RefreshFrequency = time.Minute
	if d.tlsConfig != nil {
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = d.tlsConfig.Clone()
	}
	k := &d.Cluster.Kafka
	if k.SASL.Mechanism != "" {
		c.Net.SASL.Enable = true
		c.Net.SASL.User = k.SASL.Username
		c.Net.SASL.Password = k.SASL.Password
		switch strings.ToUpper(k.SASL.Mechanism) {
		case "PLAIN":
			c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "SCRAM-SHA-256":
			c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			c.Net.SASL.SCRAMClientGeneratorFunc = newSCRAMClient(sha256Gen)
		case "SCRAM-SHA-512":
			c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			c.Net.SASL.SCRAMClientGeneratorFunc = newSCRAMClient(sha512Gen)
		}
	}
	return c
}

// StateDir is where a worker keeps the local copies of its tables.
func (d *Deps) StateDir(worker string) string {
	return strings.TrimRight(d.Cluster.StateDir, "/") + "/" + worker
}

// Middleware builds a worker's middleware stack.
func (d *Deps) Middleware(spec *WorkerSpec) (*middleware.Stack, error) {
	entries := make([]middleware.Entry, 0, len(spec.Middleware))
	for _, m := range spec.Middleware {
		mw, err := m.Kind.Build(d, spec.Name, m)
		if err != nil {
			return nil, fmt.Errorf("worker %s: middleware %s: %w", spec.Name, m.Name, err)
		}
		entries = append(entries, middleware.Entry{Middleware: mw, Priorities: m.Priorities})
	}
	return middleware.NewStack(entries...), nil
}

// WorkerLogger returns the logger for a worker: every line carries its name.
func (d *Deps) WorkerLogger(name string) *slog.Logger { return d.Logger.With("worker", name) }

// hostPort reports whether s looks like host:port.
func hostPort(s string) bool {
	_, _, err := net.SplitHostPort(s)
	return err == nil
}
