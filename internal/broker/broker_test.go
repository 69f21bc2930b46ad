package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
)

func start(t *testing.T, dir string) *Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, Config{DataDir: dir, KafkaPort: -1, RegistryPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRestartKeepsRecordsOffsetsAndSchemas: records, consumer-group offsets
// and registered schema ids written before a restart are there after it.
func TestRestartKeepsRecordsOffsetsAndSchemas(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic, group = "sms.inbound", "app"

	b := start(t, dir)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	codecs := schemas.NewCodecs(schemas.NewRegistryClient(b.RegistryURL(), schemas.RegistryClientOptions{}))
	if err := codecs.UserMessage.Register(ctx, topic); err != nil {
		t.Fatal(err)
	}
	id := codecs.UserMessage.ID()
	for i := range 10 {
		m := schemas.NewUserMessage()
		m.Content = schemas.String(fmt.Sprintf("msg %d", i))
		v, err := codecs.UserMessage.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("+2776"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Commit offset 4 on partition holding the key.
	offsets := kadm.Offsets{}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var part int32 = -1
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 10 {
			part = o.Partition
		}
	})
	if part < 0 {
		t.Fatalf("no partition holds the 10 records: %v", ends)
	}
	offsets.AddOffset(topic, part, 4, -1)
	if _, err := adm.CommitOffsets(ctx, group, offsets); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := start(t, dir)
	defer b2.Close()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(b2.KafkaAddr()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	adm2 := kadm.NewClient(cl2)
	fetched, err := adm2.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup(topic, part); !ok || o.At != 4 {
		t.Errorf("committed offset after restart = %+v (found %v), want 4", o, ok)
	}
	var got []string
	for len(got) < 10 {
		fs := cl2.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var m schemas.UserMessage
			if err := codecs.UserMessage.Decode(r.Value, &m); err != nil {
				t.Fatal(err)
			}
			got = append(got, m.Text())
		})
	}
	for i, c := range got {
		if want := fmt.Sprintf("msg %d", i); c != want {
			t.Errorf("record %d = %q, want %q", i, c, want)
		}
	}
	// The registry kept its ids.
	fresh := schemas.NewCodecs(schemas.NewRegistryClient(b2.RegistryURL(), schemas.RegistryClientOptions{}))
	if err := fresh.UserMessage.Register(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if fresh.UserMessage.ID() != id {
		t.Errorf("schema id after restart = %d, want %d", fresh.UserMessage.ID(), id)
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{KafkaPort: 70000}, "kafka port 70000 out of range"},
		{Config{RegistryPort: -5}, "registry port -5 out of range"},
		{Config{DefaultPartitions: -1}, "default partitions -1"},
		{Config{RegistryUsername: "u"}, "username and password must be set together"},
	}
	for _, tc := range cases {
		err := tc.cfg.validate()
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}

// TestCompactedTopicsKeepOldRecords: kfake applies retention.ms to
// compacted topics too; the embedded broker must not lose week-old schemas
// or table state.
func TestCompactedTopicsKeepOldRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := start(t, t.TempDir())
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	compact := "compact"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &compact}, "state-table"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-30 * 24 * time.Hour)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "state-table", Key: []byte("k"), Value: []byte("v"), Timestamp: old}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	b.Cluster().Compact()
	b.Cluster().ApplyRetention()
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, "state-table")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("state-table", 0); o.Offset != 0 {
		t.Errorf("a 30-day-old record of a compacted topic was deleted (log start %d)", o.Offset)
	}
}
