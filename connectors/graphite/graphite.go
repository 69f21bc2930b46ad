// Package graphite is Vumi's GraphiteMetricsCollector as a Kafka connector:
// it consumes the aggregates of vumi.metrics.aggregates (consumer group
// "<prefix>graphite.<worker>") and writes them to Carbon over TCP, in the
// plaintext protocol or, if configured, the pickle protocol. A poll's
// records are committed only once they were written to Carbon; while Carbon
// is unreachable the connector reconnects with backoff and holds at most
// buffer_size points (Kafka keeps the rest), so nothing is lost and memory
// stays bounded.
package graphite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Protocols.
const (
	Plaintext = "plaintext"
	Pickle    = "pickle"
)

// Config is the graphite collector's config.
type Config struct {
	// Address is Carbon's host:port; default 127.0.0.1:2003 for the
	// plaintext protocol, 127.0.0.1:2004 for pickle.
	Address string `yaml:"address"`
	// Protocol is plaintext (default) or pickle.
	Protocol string `yaml:"protocol"`
	// Prefix is prepended to every metric path; default "" (Vumi sent the
	// aggregate names as they are).
	Prefix string `yaml:"prefix"`
	// BufferSize is the most points held while Carbon is unreachable
	// (records fetched per poll); default 10000.
	BufferSize int `yaml:"buffer_size"`
	// BatchSize is the most points per write (per pickle message); default
	// 500, Carbon's MAX_DATAPOINTS_PER_MESSAGE.
	BatchSize int `yaml:"batch_size"`
	// DialTimeout for connecting to Carbon; default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// WriteTimeout for one write; default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// ReconnectDelay is the first wait before reconnecting; it doubles up
	// to MaxReconnectDelay. Defaults 500ms and 30s.
	ReconnectDelay    time.Duration `yaml:"reconnect_delay"`
	MaxReconnectDelay time.Duration `yaml:"max_reconnect_delay"`
	worker.Common     `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	switch c.Protocol {
	case "":
		c.Protocol = Plaintext
	case Plaintext, Pickle:
	default:
		return fmt.Errorf("key protocol: %q is not plaintext or pickle", c.Protocol)
	}
	if c.Address == "" {
		c.Address = "127.0.0.1:2003"
		if c.Protocol == Pickle {
			c.Address = "127.0.0.1:2004"
		}
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return fmt.Errorf("key address: %q is not host:port", c.Address)
	}
	for _, k := range []struct {
		key string
		v   *int
		def int
	}{{"buffer_size", &c.BufferSize, 10000}, {"batch_size", &c.BatchSize, 500}} {
		if *k.v == 0 {
			*k.v = k.def
		}
		if *k.v < 1 {
			return fmt.Errorf("key %s: must be at least 1, got %d", k.key, *k.v)
		}
	}
	for _, k := range []struct {
		key string
		v   *time.Duration
		def time.Duration
	}{{"dial_timeout", &c.DialTimeout, 5 * time.Second}, {"write_timeout", &c.WriteTimeout, 10 * time.Second},
		{"reconnect_delay", &c.ReconnectDelay, 500 * time.Millisecond}, {"max_reconnect_delay", &c.MaxReconnectDelay, 30 * time.Second}} {
		if *k.v == 0 {
			*k.v = k.def
		}
		if *k.v < 0 {
			return fmt.Errorf("key %s: must not be negative, got %v", k.key, *k.v)
		}
	}
	if c.MaxReconnectDelay < c.ReconnectDelay {
		return fmt.Errorf("key max_reconnect_delay: %v is less than reconnect_delay %v", c.MaxReconnectDelay, c.ReconnectDelay)
	}
	if Path(c.Prefix, "") != c.Prefix {
		return fmt.Errorf("key prefix: %q may not contain whitespace or control characters", c.Prefix)
	}
	c.Common.Defaults()
	return nil
}

// IO implements topology.WorkerConfig.
func (c *Config) IO(string) topology.IO {
	return topology.IO{Consumes: []topology.Stream{{Topic: topology.TopicMetricAggregates, Kind: "metric_aggregate"}}}
}

// Kind is the graphite collector kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name:    "graphite",
		Aliases: []string{"vumi.blinkenlights.GraphiteMetricsCollector", "vumi.blinkenlights.metrics_workers.GraphiteMetricsCollector"},
		Role:    topology.RoleSink,
		Summary: "writes vumi.metrics.aggregates to Graphite's Carbon (plaintext or pickle over TCP)",
		NewConfig: func() topology.WorkerConfig {
			return &Config{}
		},
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return &Collector{deps: deps, spec: spec, cfg: spec.Config.(*Config)}, nil
		},
	}
}

// Collector is the graphite collector worker.
type Collector struct {
	deps *topology.Deps
	spec *topology.WorkerSpec
	cfg  *Config
}

// Run consumes aggregates and writes them to Carbon until ctx is cancelled.
func (c *Collector) Run(ctx context.Context) error {
	b, err := worker.NewBase(c.deps, c.spec, c.cfg.Common)
	if err != nil {
		return err
	}
	defer b.Close()
	topic := c.deps.Names.MetricAggregates()
	group := c.deps.Names.Prefix + "graphite." + c.spec.Name
	cl, err := kgo.NewClient(append(c.deps.KafkaOpts(c.spec.Name+".aggregates"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("graphite %s: consumer: %w", c.spec.Name, err)
	}
	defer cl.Close()
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go b.RunHeartbeat(hbCtx)

	s := &Sender{Config: c.cfg, Log: b.Log, OnStatus: func(up bool, err error) {
		st := &schemas.Status{Component: "carbon", Status: schemas.StatusOK, Type: "connected", Message: "Connected to Carbon at " + c.cfg.Address}
		if !up {
			st.Status, st.Type, st.Message = schemas.StatusDown, "disconnected", fmt.Sprintf("Carbon at %s unreachable: %v", c.cfg.Address, err)
		}
		if perr := b.PublishStatus(context.WithoutCancel(ctx), "", st); perr != nil {
			b.Log.Warn("status not published", "error", perr)
		}
	}}
	defer s.Close()
	b.Log.Info("graphite collector running", "carbon", c.cfg.Address, "protocol", c.cfg.Protocol, "prefix", c.cfg.Prefix)
	points := make([]Point, 0, c.cfg.BufferSize)
	for {
		fetches := cl.PollRecords(ctx, c.cfg.BufferSize)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(tp string, p int32, err error) {
			b.Log.Error("fetch error", "topic", tp, "partition", p, "error", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		points = points[:0]
		for _, r := range recs {
			var a schemas.MetricAggregate
			if err := c.deps.Codecs.MetricAggregate.DecodeContext(b.RegistryWait(ctx), r.Value, &a); err != nil {
				if schemas.IsRegistryUnavailable(err) {
					// Stopped while waiting for the registry: nothing
					// of this poll is committed.
					cl.AllowRebalance()
					return nil
				}
				b.Count("aggregates_undecodable", 1)
				b.Log.Warn("undecodable aggregate skipped", "partition", r.Partition, "offset", r.Offset, "error", err)
				continue
			}
			if math.IsNaN(a.Value) || math.IsInf(a.Value, 0) {
				b.Count("aggregates_not_finite", 1)
				continue
			}
			points = append(points, Point{Path: Path(c.cfg.Prefix, a.Name), Timestamp: a.WindowStart.Unix(), Value: a.Value})
		}
		if err := s.Send(ctx, points); err != nil {
			// Only cancellation stops Send: leave the records uncommitted,
			// they are written again after a restart.
			cl.AllowRebalance()
			return nil
		}
		b.Count("points_written", int64(len(points)))
		if err := cl.CommitRecords(ctx, recs...); err != nil && ctx.Err() == nil {
			b.Log.Warn("commit failed; the points may be written again", "error", err)
		}
		cl.AllowRebalance()
	}
}

// Sender writes points to Carbon over one TCP connection, reconnecting
// with backoff. It is not safe for concurrent use.
type Sender struct {
	Config *Config
	Log    *slog.Logger
	// OnStatus, if set, is told when the connection goes up or down.
	OnStatus func(up bool, err error)
	// Dial connects; default net.Dialer with the config's dial timeout.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	conn   net.Conn
	buf    []byte
	down   bool
	everUp bool
	delay  time.Duration
}

// Send writes points, in batches of batch_size, retrying each batch on a
// new connection until it is written; it fails only when ctx is done.
func (s *Sender) Send(ctx context.Context, points []Point) error {
	for len(points) > 0 {
		n := min(len(points), s.Config.BatchSize)
		s.buf = s.buf[:0]
		if s.Config.Protocol == Pickle {
			s.buf = AppendPickle(s.buf, points[:n])
		} else {
			for _, p := range points[:n] {
				s.buf = AppendPlaintext(s.buf, p)
			}
		}
		if err := s.write(ctx, s.buf); err != nil {
			return err
		}
		points = points[n:]
	}
	return nil
}

func (s *Sender) write(ctx context.Context, b []byte) error {
	for {
		err := s.connect(ctx)
		if err == nil {
			_ = s.conn.SetWriteDeadline(time.Now().Add(s.Config.WriteTimeout))
			if _, err = s.conn.Write(b); err == nil {
				s.delay = 0
				return nil
			}
			s.closeConn()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.setDown(err)
		if s.delay == 0 {
			s.delay = s.Config.ReconnectDelay
		} else {
			s.delay = min(2*s.delay, s.Config.MaxReconnectDelay)
		}
		s.Log.Warn("carbon write failed; retrying", "carbon", s.Config.Address, "error", err, "in", s.delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.delay):
		}
	}
}

// connect makes sure there is a connection that Carbon has not closed.
func (s *Sender) connect(ctx context.Context) error {
	if s.conn != nil && !peerClosed(s.conn) {
		return nil
	}
	s.closeConn()
	dial := s.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: s.Config.DialTimeout}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	conn, err := dial(ctx, s.Config.Address)
	if err != nil {
		return err
	}
	s.conn = conn
	if s.down || !s.everUp {
		s.Log.Info("connected to carbon", "carbon", s.Config.Address)
		if s.OnStatus != nil {
			s.OnStatus(true, nil)
		}
	}
	s.down, s.everUp = false, true
	return nil
}

func (s *Sender) setDown(err error) {
	if s.down {
		return
	}
	s.down = true
	if s.OnStatus != nil {
		s.OnStatus(false, err)
	}
}

// peerClosed reports whether Carbon closed the connection. Carbon never
// writes to its clients, so anything but a read timeout means it is gone;
// writing into a closed connection could lose a batch silently.
func peerClosed(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var one [1]byte
	_, err := c.Read(one[:])
	_ = c.SetReadDeadline(time.Time{})
	if err == nil {
		return false
	}
	return errors.Is(err, io.EOF) || !errors.Is(err, os.ErrDeadlineExceeded)
}

func (s *Sender) closeConn() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// Close closes the connection.
func (s *Sender) Close() { s.closeConn() }
