package metricsserver

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events", "app-table"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hooks := NewKafkaHooks(nil)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.WithHooks(hooks))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for _, topic := range []string{"events", "events", "events", "app-table", "app-table"} {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A consumer group that has committed one record of three: lag 2.
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumerGroup("app"), kgo.ConsumeTopics("events"),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(hooks))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var first *kgo.Record
	for first == nil {
		fs := cons.PollRecords(ctx, 1)
		if ctx.Err() != nil {
			t.Fatal("nothing fetched")
		}
		if recs := fs.Records(); len(recs) > 0 {
			first = recs[0]
		}
	}
	if err := cons.CommitRecords(ctx, first); err != nil {
		t.Fatal(err)
	}

	snap, err := Read(ctx, kadm.NewClient(prod))
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Lag) != 1 || snap.Lag[0] != (PartitionLag{Group: "app", Topic: "events", Partition: 0, Lag: 2}) {
		t.Errorf("lag %+v, want app/events/0 = 2", snap.Lag)
	}
	if len(snap.Tables) != 1 || snap.Tables[0] != (PartitionSize{Topic: "app-table", Partition: 0, Records: 2}) {
		t.Errorf("tables %+v, want app-table/0 = 2", snap.Tables)
	}

	srvCtx, stop := context.WithCancel(ctx)
	defer stop()
	addr, err := Serve(srvCtx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	go WatchKafka(srvCtx, prod, 50*time.Millisecond, nil)
	for _, want := range []string{
		`vumi_kafka_produced_records_total{topic="events"} 3`,
		`vumi_kafka_produced_records_total{topic="app-table"} 2`,
		`vumi_kafka_fetched_records_total{topic="events"}`,
		`vumi_kafka_broker_connects_total`,
		`vumi_kafka_consumer_lag{group="app",topic="events",partition="0"} 2`,
		`vumi_table_records{table="app-table",partition="0"} 2`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		for {
			body := get(t, "http://"+addr.String()+"/metrics")
			if strings.Contains(body, want) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("/metrics lacks %q:\n%s", want, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}
