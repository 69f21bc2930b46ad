package ussdsession_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/testcluster"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// TestWriteTimeoutWithKafkaGone: with WriteTimeout, a session write fails
// soon after Kafka went away, and the table stops well within franz-go's
// default record timeout for goka producers (kafka.GokaRecordTimeout, 30
// s): its emitter gives the pending record up instead of waiting for it.
func TestWriteTimeoutWithKafkaGone(t *testing.T) {
	c := testcluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster := &topology.ClusterConfig{
		Kafka:      topology.KafkaConfig{Brokers: []string{c.B.KafkaAddr()}, ClientID: "test", DialTimeout: 10 * time.Second},
		Partitions: 2,
		StateDir:   t.TempDir(),
	}
	deps, err := topology.NewDeps(cluster, cluster.Kafka.Brokers, schemas.NewRegistryClient(c.B.RegistryURL(), schemas.RegistryClientOptions{}), nil, testlog.New(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := worker.NewBase(deps, &topology.WorkerSpec{Name: "w"}, worker.Common{HeartbeatInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	compact := "compact"
	if _, err := kadm.NewClient(b.Client).CreateTopic(ctx, 2, 1, map[string]*string{"cleanup.policy": &compact}, ussdsession.Topic("t")); err != nil {
		t.Fatal(err)
	}

	st, err := ussdsession.Open(b, "t", time.Hour, ussdsession.WriteTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- st.Run(runCtx) }()
	if err := st.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "a", ussdsession.Session{"state": "1"}); err != nil {
		t.Fatalf("write with Kafka up: %v", err)
	}
	// The write is in the topic, on the partition goka reads key a from.
	cons := c.ConsumerWith(t, nil, ussdsession.Topic("t"))
	var got *kgo.Record
	for got == nil {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("session write not in its topic")
		}
		fs.EachRecord(func(r *kgo.Record) { got = r })
	}
	if string(got.Key) != "a" || got.Partition != kafka.Partition([]byte("a"), 2) {
		t.Fatalf("session record %q on partition %d", got.Key, got.Partition)
	}

	c.B.Cluster().Close()
	start := time.Now()
	if err := st.Put(ctx, "b", ussdsession.Session{"state": "1"}); err == nil {
		t.Fatal("write with Kafka gone succeeded")
	}
	stop()
	select {
	case err := <-done:
		t.Logf("write failed and table stopped %v after Kafka went away (Run: %v)", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(kafka.GokaRecordTimeout - 5*time.Second):
		t.Fatalf("table still stopping %v after Kafka went away (write timeout 1s)", time.Since(start).Round(time.Millisecond))
	}
}
