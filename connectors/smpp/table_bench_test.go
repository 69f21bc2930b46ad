package smpp

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// BenchmarkDRLookup looks SMSC message ids up in the message id table
// holding VUMI_BENCH_DR_IDS outstanding ids (default 100,000; the target
// is 1,000,000), through the View's on-disk copy as a delivery report from
// another instance would. Reports p50 and p99 per lookup and the heap.
func BenchmarkDRLookup(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("VUMI_BENCH_DR_IDS")); err == nil && v > 0 {
		n = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deps, cl, _ := tableEnv(b, ctx)
	writer, err := newTable(deps, cl, "writer", "sms"+tableMessageIDs, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	waits := make([]func(context.Context) error, 0, 1000)
	for i := 0; i < n; i++ {
		waits = append(waits, writer.PutAsync(fmt.Sprintf("smsc-%09d", i), []byte(schemas.GenerateID()), time.Hour))
		if len(waits) == cap(waits) || i == n-1 {
			for _, w := range waits {
				if err := w(ctx); err != nil {
					b.Fatal(err)
				}
			}
			waits = waits[:0]
		}
	}
	_ = writer.close()
	// A reader on another "instance": its own view, nothing in memory.
	reader, err := newTable(deps, cl, "reader", "sms"+tableMessageIDs, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = reader.run(ctx, time.Hour) }()
	if err := reader.wait(ctx); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	durs := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprintf("smsc-%09d", rand.IntN(n))
		start := time.Now()
		_, ok, err := reader.Get(key)
		durs[i] = time.Since(start)
		if err != nil || !ok {
			b.Fatalf("lookup %s: %v %v", key, ok, err)
		}
	}
	b.StopTimer()
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	b.ReportMetric(float64(durs[len(durs)/2].Microseconds()), "p50_µs")
	b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds()), "p99_µs")
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap_MiB")
	b.ReportMetric(float64(n), "ids")
	_ = reader.close()
}

// tableEnv starts a broker with the topics of an SMPP transport named w
// (transport_name sms, 4 partitions) and returns the deps and a client
// for tables on it; all are closed when tb ends.
func tableEnv(tb testing.TB, ctx context.Context) (*topology.Deps, *kgo.Client, *broker.Broker) {
	tb.Helper()
	br, err := broker.Start(ctx, broker.Config{DataDir: tb.TempDir(), KafkaPort: -1, RegistryPort: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = br.Close() })
	cfg, err := topology.Load("tables.yaml", []byte(fmt.Sprintf("cluster:\n  kafka: {brokers: [%s]}\n  schema_registry: {url: %s}\n  partitions: 4\n  state_dir: %s\nworkers:\n  - {name: w, kind: smpp, transport_name: sms, system_id: a, password: b}\n",
		br.KafkaAddr(), br.RegistryURL(), tb.TempDir())), func() *topology.Registry { r := topology.NewRegistry(); r.Add(Kinds()...); return r }(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	deps, err := topology.NewDeps(&cfg.Cluster, []string{br.KafkaAddr()}, schemas.NewRegistryClient(br.RegistryURL(), schemas.RegistryClientOptions{}), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	if err := topology.Prepare(ctx, deps, topology.BuildGraph(cfg), slog.New(slog.DiscardHandler)); err != nil {
		tb.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.KafkaAddr()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return deps, cl, br
}
