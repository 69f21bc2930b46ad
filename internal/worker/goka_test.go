package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/testcluster"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// TestProcessorOnFranzProducer runs a goka processor built by
// Base.NewProcessor (whose producer is the franz-go one) with a group
// table: it counts messages per key, keeps the count in its table and
// emits it. The table's state and its changelog are written (each key's
// changelog record on the partition goka reads that key's state from),
// and a second processor with an empty state directory recovers the
// counts from the changelog and goes on counting.
func TestProcessorOnFranzProducer(t *testing.T) {
	const parts = 4
	c := testcluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	group := goka.Group("counter")
	table := string(goka.GroupTable(group))
	admin := createTopics(t, ctx, c, parts, group, "in", "out")

	graph := goka.DefineGroup(group,
		goka.Input("in", new(codec.String), func(g goka.Context, _ any) {
			n := int64(0)
			if v := g.Value(); v != nil {
				n = v.(int64)
			}
			n++
			g.SetValue(n)
			g.Emit("out", g.Key(), strconv.FormatInt(n, 10), goka.WithCtxEmitHeaders(goka.Headers{"count": []byte(strconv.FormatInt(n, 10))}))
		}),
		goka.Persist(new(codec.Int64)),
		goka.Output("out", new(codec.String)),
	)

	run := func(name string) (*goka.Processor, func() error) {
		t.Helper()
		return runProcessor(t, ctx, c, parts, name, graph)
	}

	const keys = 20
	produce := func(times int) {
		t.Helper()
		var recs []*kgo.Record
		for range times {
			for k := range keys {
				recs = append(recs, &kgo.Record{Topic: "in", Key: []byte(fmt.Sprintf("user-%d", k)), Value: []byte("hello")})
			}
		}
		if err := admin.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	out := c.Consumer(t, "out")
	// readOut reads out until every key's latest count is want.
	last := map[string]int64{}
	readOut := func(want int64) {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 90*time.Second)
		defer rcancel()
		for {
			done := len(last) == keys
			for _, v := range last {
				done = done && v == want
			}
			if done {
				return
			}
			fs := out.PollFetches(rctx)
			if rctx.Err() != nil {
				t.Fatalf("out: counts %v, want %d for each of %d keys", last, want, keys)
			}
			fs.EachRecord(func(r *kgo.Record) {
				n, err := strconv.ParseInt(string(r.Value), 10, 64)
				if err != nil {
					t.Fatalf("out record %q: %v", r.Value, err)
				}
				if len(r.Headers) != 1 || r.Headers[0].Key != "count" || string(r.Headers[0].Value) != string(r.Value) {
					t.Errorf("out record %s=%s: headers %v", r.Key, r.Value, r.Headers)
				}
				if want := kafka.Partition(r.Key, parts); r.Partition != want {
					t.Errorf("out record %s on partition %d, murmur2 says %d", r.Key, r.Partition, want)
				}
				if n > last[string(r.Key)] {
					last[string(r.Key)] = n
				}
			})
		}
	}

	p1, stop1 := run("counter-a")
	produce(3)
	readOut(3)
	for k := range keys {
		key := fmt.Sprintf("user-%d", k)
		v, err := p1.Get(key)
		if err != nil || v == nil || v.(int64) != 3 {
			t.Fatalf("state of %s: %v, %v; want 3", key, v, err)
		}
	}
	if err := stop1(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("first processor: %v", err)
	}

	// The changelog: each key's last record is its count, on the
	// partition of the key's input records (the one goka recovers it in).
	cl := c.Consumer(t, table)
	changelog := map[string]int64{}
	cctx, ccancel := context.WithTimeout(ctx, 90*time.Second)
	defer ccancel()
	for len(changelog) < keys || func() bool {
		for _, v := range changelog {
			if v != 3 {
				return true
			}
		}
		return false
	}() {
		fs := cl.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatalf("changelog %s: %v, want 3 for each of %d keys", table, changelog, keys)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n, err := new(codec.Int64).Decode(r.Value)
			if err != nil {
				t.Fatalf("changelog record %q: %v", r.Value, err)
			}
			if want := kafka.GokaHasherPartition(kafka.KafkaHasher(), r.Key, parts); r.Partition != want {
				t.Errorf("changelog record %s on partition %d, goka looks it up on %d", r.Key, r.Partition, want)
			}
			changelog[string(r.Key)] = n.(int64)
		})
	}

	// A new instance with an empty state directory recovers the counts
	// from the changelog.
	p2, stop2 := run("counter-b")
	for k := range keys {
		key := fmt.Sprintf("user-%d", k)
		v, err := p2.Get(key)
		if err != nil || v == nil || v.(int64) != 3 {
			t.Fatalf("recovered state of %s: %v, %v; want 3", key, v, err)
		}
	}
	produce(1)
	readOut(4)
	if err := stop2(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("second processor: %v", err)
	}
}

// runProcessor starts a processor of graph built by Base.NewProcessor for
// a worker called name on c (parts partitions, its own state directory),
// waits until it is ready and returns it with a stop function that
// reports its Run error (also called when the test ends).
func runProcessor(t *testing.T, ctx context.Context, c *testcluster.Cluster, parts int, name string, graph *goka.GroupGraph) (*goka.Processor, func() error) {
	t.Helper()
	cluster := &topology.ClusterConfig{
		Kafka:      topology.KafkaConfig{Brokers: []string{c.B.KafkaAddr()}, ClientID: "test", DialTimeout: 10 * time.Second},
		Partitions: parts,
		StateDir:   t.TempDir(),
	}
	reg := schemas.NewRegistryClient(c.B.RegistryURL(), schemas.RegistryClientOptions{})
	deps, err := topology.NewDeps(cluster, cluster.Kafka.Brokers, reg, nil, testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := worker.NewBase(deps, &topology.WorkerSpec{Name: name}, worker.Common{HeartbeatInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.NewProcessor(graph)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	readyCtx, rcancel := context.WithTimeout(ctx, 90*time.Second)
	defer rcancel()
	if err := p.WaitForReadyContext(readyCtx); err != nil {
		pcancel()
		t.Fatalf("processor %s not ready: %v", name, err)
	}
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			pcancel()
			select {
			case runErr = <-done:
			case <-time.After(90 * time.Second):
				runErr = errors.New("processor did not stop within 90s")
			}
			_ = b.Close()
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return p, stop
}

// createTopics creates the streams and group's table (compacted) with
// parts partitions on c, and returns a client of c for the test.
func createTopics(t *testing.T, ctx context.Context, c *testcluster.Cluster, parts int32, group goka.Group, streams ...string) *kgo.Client {
	t.Helper()
	admin, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	adm := kadm.NewClient(admin)
	for _, tp := range streams {
		if _, err := adm.CreateTopic(ctx, parts, 1, nil, tp); err != nil {
			t.Fatal(err)
		}
	}
	compact := "compact"
	if _, err := adm.CreateTopic(ctx, parts, 1, map[string]*string{"cleanup.policy": &compact}, string(goka.GroupTable(group))); err != nil {
		t.Fatal(err)
	}
	return admin
}
