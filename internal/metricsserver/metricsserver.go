// Package metricsserver serves a process's own figures in the Prometheus
// text format at /metrics, with github.com/VictoriaMetrics/metrics: Go
// runtime and process figures, Kafka client figures (through franz-go
// hooks), consumer lag per group and partition, and the size of every
// group table (records in its changelog topic).
//
// These are process-level metrics for ops; the Vumi metrics of workers
// (internal/metrics) go through Kafka to the aggregator and Graphite.
package metricsserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Handler serves every registered figure, with Go runtime and process
// figures, in the Prometheus text format.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		vm.WritePrometheus(w, true)
	})
}

// Serve listens on addr (e.g. "127.0.0.1:9464", or ":0" for any port) and
// serves /metrics until ctx is done. It returns the address it listens on
// once listening; serving errors after that are logged.
func Serve(ctx context.Context, addr string, log *slog.Logger) (net.Addr, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "error", err)
		}
	}()
	log.Info("serving /metrics", "addr", ln.Addr().String())
	return ln.Addr(), nil
}

// KafkaHooks counts what franz-go clients do, by topic: records produced
// (and failed), records fetched, broker connections and bytes. Pass it to
// every client with kgo.WithHooks; one value serves any number of clients.
type KafkaHooks struct {
	set *vm.Set

	produced, produceErrs, fetched sync.Map // topic -> *vm.Counter

	connects, connectErrs, disconnects *vm.Counter
	written, read, writeErrs, readErrs *vm.Counter
}

var (
	_ kgo.HookProduceRecordUnbuffered = (*KafkaHooks)(nil)
	_ kgo.HookFetchRecordUnbuffered   = (*KafkaHooks)(nil)
	_ kgo.HookBrokerConnect           = (*KafkaHooks)(nil)
	_ kgo.HookBrokerDisconnect        = (*KafkaHooks)(nil)
	_ kgo.HookBrokerWrite             = (*KafkaHooks)(nil)
	_ kgo.HookBrokerRead              = (*KafkaHooks)(nil)
)

// NewKafkaHooks registers the Kafka client figures in set (nil: the default
// set served by Handler):
//
//	vumi_kafka_produced_records_total{topic}, vumi_kafka_produce_errors_total{topic},
//	vumi_kafka_fetched_records_total{topic}, vumi_kafka_broker_connects_total,
//	vumi_kafka_broker_connect_errors_total, vumi_kafka_broker_disconnects_total,
//	vumi_kafka_written_bytes_total, vumi_kafka_read_bytes_total,
//	vumi_kafka_write_errors_total, vumi_kafka_read_errors_total.
func NewKafkaHooks(set *vm.Set) *KafkaHooks {
	if set == nil {
		set = vm.GetDefaultSet()
	}
	return &KafkaHooks{
		set:         set,
		connects:    set.GetOrCreateCounter("vumi_kafka_broker_connects_total"),
		connectErrs: set.GetOrCreateCounter("vumi_kafka_broker_connect_errors_total"),
		disconnects: set.GetOrCreateCounter("vumi_kafka_broker_disconnects_total"),
		written:     set.GetOrCreateCounter("vumi_kafka_written_bytes_total"),
		read:        set.GetOrCreateCounter("vumi_kafka_read_bytes_total"),
		writeErrs:   set.GetOrCreateCounter("vumi_kafka_write_errors_total"),
		readErrs:    set.GetOrCreateCounter("vumi_kafka_read_errors_total"),
	}
}

func (h *KafkaHooks) topicCounter(m *sync.Map, name, topic string) *vm.Counter {
	if c, ok := m.Load(topic); ok {
		return c.(*vm.Counter)
	}
	c := h.set.GetOrCreateCounter(fmt.Sprintf(`%s{topic=%q}`, name, topic))
	m.Store(topic, c)
	return c
}

// OnProduceRecordUnbuffered implements kgo.HookProduceRecordUnbuffered.
func (h *KafkaHooks) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if err != nil {
		h.topicCounter(&h.produceErrs, "vumi_kafka_produce_errors_total", r.Topic).Inc()
		return
	}
	h.topicCounter(&h.produced, "vumi_kafka_produced_records_total", r.Topic).Inc()
}

// OnFetchRecordUnbuffered implements kgo.HookFetchRecordUnbuffered.
func (h *KafkaHooks) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if polled {
		h.topicCounter(&h.fetched, "vumi_kafka_fetched_records_total", r.Topic).Inc()
	}
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *KafkaHooks) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.connectErrs.Inc()
		return
	}
	h.connects.Inc()
}

// OnBrokerDisconnect implements kgo.HookBrokerDisconnect.
func (h *KafkaHooks) OnBrokerDisconnect(kgo.BrokerMetadata, net.Conn) { h.disconnects.Inc() }

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (h *KafkaHooks) OnBrokerWrite(_ kgo.BrokerMetadata, _ int16, n int, _, _ time.Duration, err error) {
	h.written.Add(n)
	if err != nil {
		h.writeErrs.Inc()
	}
}

// OnBrokerRead implements kgo.HookBrokerRead.
func (h *KafkaHooks) OnBrokerRead(_ kgo.BrokerMetadata, _ int16, n int, _, _ time.Duration, err error) {
	h.read.Add(n)
	if err != nil {
		h.readErrs.Inc()
	}
}

// Snapshot is one reading of consumer lag and table sizes.
type Snapshot struct {
	// Lag is per group, topic and partition: records not yet committed.
	Lag []PartitionLag
	// Tables is per group-table topic and partition: records in the
	// changelog (end offset minus start offset).
	Tables []PartitionSize
}

// PartitionLag is one partition's lag in one consumer group.
type PartitionLag struct {
	Group, Topic string
	Partition    int32
	Lag          int64
}

// PartitionSize is one partition's record count.
type PartitionSize struct {
	Topic     string
	Partition int32
	Records   int64
}

// Read takes a snapshot: the lag of every consumer group (goka processors
// are consumer groups too) and the size of every topic ending in "-table"
// (goka's group tables).
func Read(ctx context.Context, adm *kadm.Client) (*Snapshot, error) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	snap := &Snapshot{}
	if groups := listed.Groups(); len(groups) > 0 {
		lags, err := adm.Lag(ctx, groups...)
		if err != nil {
			return nil, fmt.Errorf("lag: %w", err)
		}
		for _, g := range lags.Sorted() {
			for _, l := range g.Lag.Sorted() {
				if l.Err != nil || l.Lag < 0 {
					continue
				}
				snap.Lag = append(snap.Lag, PartitionLag{Group: g.Group, Topic: l.Topic, Partition: l.Partition, Lag: l.Lag})
			}
		}
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var tables []string
	for _, t := range topics.Names() {
		if strings.HasSuffix(t, "-table") {
			tables = append(tables, t)
		}
	}
	if len(tables) > 0 {
		starts, err := adm.ListStartOffsets(ctx, tables...)
		if err != nil {
			return nil, fmt.Errorf("table start offsets: %w", err)
		}
		ends, err := adm.ListEndOffsets(ctx, tables...)
		if err != nil {
			return nil, fmt.Errorf("table end offsets: %w", err)
		}
		ends.Each(func(e kadm.ListedOffset) {
			s, ok := starts.Lookup(e.Topic, e.Partition)
			if e.Err != nil || !ok || s.Err != nil {
				return
			}
			snap.Tables = append(snap.Tables, PartitionSize{Topic: e.Topic, Partition: e.Partition, Records: e.Offset - s.Offset})
		})
		sort.Slice(snap.Tables, func(i, j int) bool {
			a, b := snap.Tables[i], snap.Tables[j]
			return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
		})
	}
	return snap, nil
}

// WritePrometheus writes the snapshot as vumi_kafka_consumer_lag{group,topic,partition}
// and vumi_table_records{table,partition} gauges.
func (s *Snapshot) WritePrometheus(w io.Writer) {
	for _, l := range s.Lag {
		vm.WriteGaugeUint64(w, fmt.Sprintf(`vumi_kafka_consumer_lag{group=%q,topic=%q,partition="%d"}`, l.Group, l.Topic, l.Partition), uint64(max(l.Lag, 0)))
	}
	for _, t := range s.Tables {
		vm.WriteGaugeUint64(w, fmt.Sprintf(`vumi_table_records{table=%q,partition="%d"}`, t.Topic, t.Partition), uint64(max(t.Records, 0)))
	}
}

var (
	latest     atomic.Pointer[Snapshot]
	writerOnce sync.Once
)

// WatchKafka reads lag and table sizes through cl every interval until ctx
// is done, and serves the latest reading at /metrics. One watcher per
// process is enough: it sees every group and table of the cluster.
func WatchKafka(ctx context.Context, cl *kgo.Client, interval time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	writerOnce.Do(func() {
		vm.RegisterMetricsWriter(func(w io.Writer) {
			if s := latest.Load(); s != nil {
				s.WritePrometheus(w)
			}
		})
	})
	adm := kadm.NewClient(cl)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, interval)
		snap, err := Read(rctx, adm)
		cancel()
		if err == nil {
			latest.Store(snap)
		} else if ctx.Err() == nil {
			log.Debug("kafka lag not read", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
