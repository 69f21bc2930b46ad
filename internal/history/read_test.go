package history

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/broker"
)

// TestSpansAndRead: offsets-for-times bounds the read, the exact range is
// filtered by timestamp (also for a record whose timestamp goes back), and
// nothing is committed.
func TestSpansAndRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir(), KafkaPort: -1, RegistryPort: -1, NoRegistry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.FetchMaxWait(100*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "h.inbound"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC)
	// Partition 0: seconds 0..9; partition 1: seconds 0..9, then one
	// record stamped second 3 after them.
	for p := int32(0); p < 2; p++ {
		for i := 0; i < 10; i++ {
			r := &kgo.Record{Topic: "h.inbound", Partition: p, Value: []byte(strconv.Itoa(i)), Timestamp: t0.Add(time.Duration(i) * time.Second)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	late := &kgo.Record{Topic: "h.inbound", Partition: 1, Value: []byte("late3"), Timestamp: t0.Add(3 * time.Second)}
	if err := cl.ProduceSync(ctx, late).FirstErr(); err != nil {
		t.Fatal(err)
	}
	rng := Range{From: t0.Add(2 * time.Second), To: t0.Add(5 * time.Second)}
	spans, err := Spans(ctx, adm, []string{"h.inbound"}, rng)
	if err != nil {
		t.Fatal(err)
	}
	want := []Span{{"h.inbound", 0, 2, 5}, {"h.inbound", 1, 2, 5}}
	if len(spans) != 2 || spans[0] != want[0] || spans[1] != want[1] {
		t.Fatalf("spans %v, want %v", spans, want)
	}
	var got []string
	var lastDone, lastTotal int64
	err = Read(ctx, cl, spans, ReadOptions{Range: rng, Progress: func(d, t int64) { lastDone, lastTotal = d, t }}, func(r *kgo.Record) error {
		got = append(got, strconv.Itoa(int(r.Partition))+":"+string(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	// late3 is after the span's end offset (the first record at or after
	// To): like Kafka's own tools, a range is located by offsets, so a
	// record stamped out of order that far is not found.
	if want := []string{"0:2", "0:3", "0:4", "1:2", "1:3", "1:4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("read %v, want %v", got, want)
	}
	if lastDone != lastTotal || lastTotal != 6 {
		t.Errorf("progress %d/%d", lastDone, lastTotal)
	}
	// Open-ended: from second 8 to the end, the late record (offset 10)
	// is in the span but filtered by its timestamp.
	open := Range{From: t0.Add(8 * time.Second)}
	spans, err = Spans(ctx, adm, []string{"h.inbound"}, open)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := Read(ctx, cl, spans, ReadOptions{Range: open}, func(r *kgo.Record) error {
		got = append(got, strconv.Itoa(int(r.Partition))+":"+string(r.Value))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if want := []string{"0:8", "0:9", "1:8", "1:9"}; !reflect.DeepEqual(got, want) {
		t.Errorf("open range read %v", got)
	}
	// A range after everything is empty; a missing topic is an error.
	spans, err = Spans(ctx, adm, []string{"h.inbound"}, Range{From: t0.Add(time.Hour)})
	if err != nil || len(spans) != 0 {
		t.Errorf("future range: %v %v", spans, err)
	}
	if _, err := Spans(ctx, adm, []string{"nope"}, rng); !errors.Is(err, ErrNoTopic) {
		t.Errorf("missing topic: %v", err)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil || len(groups) != 0 {
		t.Errorf("groups after reading: %v %v", groups.Groups(), err)
	}
}
