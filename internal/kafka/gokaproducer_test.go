package kafka

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// emitted is what a promise reported.
type emitted struct {
	msg *sarama.ProducerMessage
	err error
}

func newGokaTestProducer(t *testing.T, c *kfake.Cluster, extra ...kgo.Opt) *GokaProducer {
	t.Helper()
	b := GokaProducerBuilder([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, extra...)
	p, err := b(nil, "test", KafkaHasher())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p.(*GokaProducer)
}

// TestGokaProducerEmits: records emitted through the goka producer arrive
// with their key, value and headers, on the partition goka's hasher picks
// for the key, and each promise's message carries the topic, key, value,
// headers, partition and offset the record was written at.
func TestGokaProducerEmits(t *testing.T) {
	const parts = 12
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := newGokaTestProducer(t, c)

	const n = 300
	var mu sync.Mutex
	got := map[string]emitted{}
	var wg sync.WaitGroup
	for i := range n {
		key := fmt.Sprintf("key-%d", i)
		value := []byte(fmt.Sprintf("value-%d", i))
		wg.Add(1)
		var pr *goka.Promise
		if i%2 == 0 {
			pr = p.EmitWithHeaders("t", key, value, goka.Headers{"h": []byte("hv-" + key), "n": []byte("x")})
		} else {
			pr = p.Emit("t", key, value)
		}
		pr.ThenWithMessage(func(m *sarama.ProducerMessage, err error) {
			mu.Lock()
			got[key] = emitted{m, err}
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()

	byKey := map[string]*kgo.Record{}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(byKey) < n {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", len(byKey), n, err)
		}
		fs.EachRecord(func(r *kgo.Record) { byKey[string(r.Key)] = r })
	}

	for i := range n {
		key := fmt.Sprintf("key-%d", i)
		e := got[key]
		if e.err != nil {
			t.Fatalf("%s: promise failed: %v", key, e.err)
		}
		r := byKey[key]
		if r == nil {
			t.Fatalf("%s: not in the topic", key)
		}
		if want := fmt.Sprintf("value-%d", i); string(r.Value) != want {
			t.Errorf("%s: value %q, want %q", key, r.Value, want)
		}
		wantPart := GokaHasherPartition(KafkaHasher(), []byte(key), parts)
		if r.Partition != wantPart {
			t.Errorf("%s: on partition %d, goka's hasher expects %d", key, r.Partition, wantPart)
		}
		m := e.msg
		if m == nil {
			t.Fatalf("%s: promise without a message", key)
		}
		if m.Topic != "t" || m.Partition != r.Partition || m.Offset != r.Offset {
			t.Errorf("%s: promise says %s/%d@%d, record is at t/%d@%d", key, m.Topic, m.Partition, m.Offset, r.Partition, r.Offset)
		}
		mk, _ := m.Key.Encode()
		mv, _ := m.Value.Encode()
		if string(mk) != key || string(mv) != string(r.Value) {
			t.Errorf("%s: promise message key %q value %q", key, mk, mv)
		}
		hs := map[string]string{}
		for _, h := range r.Headers {
			hs[h.Key] = string(h.Value)
		}
		if i%2 == 0 {
			if len(hs) != 2 || hs["h"] != "hv-"+key || hs["n"] != "x" {
				t.Errorf("%s: headers %v", key, hs)
			}
			if len(m.Headers) != 2 {
				t.Errorf("%s: promise message headers %v", key, m.Headers)
			}
		} else if len(hs) != 0 {
			t.Errorf("%s: headers %v, emitted none", key, hs)
		}
	}
}

// TestGokaPartitionerMatchesHasher: for many keys (empty, short, long,
// binary) and partition counts, the partition franz-go's partitioner of
// the goka producer picks is the one goka's hasher (KafkaHasher) computes
// for table lookups, and the one sarama's hash partitioner with that
// hasher (the producer goka used before) picked.
func TestGokaPartitionerMatchesHasher(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := [][]byte{{}, []byte("a"), []byte("27831234567"), []byte("session:27831234567")}
	for range 5000 {
		k := make([]byte, rng.IntN(64))
		for i := range k {
			k[i] = byte(rng.UintN(256))
		}
		keys = append(keys, k)
	}
	sp := sarama.NewCustomHashPartitioner(KafkaHasher())("t")
	for _, n := range []int32{1, 2, 3, 4, 7, 8, 12, 16, 31, 64, 100, 1000} {
		tp := GokaPartitioner().ForTopic("t")
		for _, k := range keys {
			r := &kgo.Record{Topic: "t", Key: k}
			if !tp.RequiresConsistency(r) {
				t.Fatalf("partitioner may move keyed records between partitions")
			}
			franz := int32(tp.Partition(r, int(n)))
			gk := GokaHasherPartition(KafkaHasher(), k, n)
			sar, err := sp.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(k)}, n)
			if err != nil {
				t.Fatal(err)
			}
			if franz != gk || franz != sar {
				t.Fatalf("key %x among %d partitions: franz-go %d, goka hasher %d, sarama %d", k, n, franz, gk, sar)
			}
		}
	}
}

// TestCheckGokaHasher: the builder refuses goka's default hasher (FNV-1a)
// and no hasher, and takes KafkaHasher.
func TestCheckGokaHasher(t *testing.T) {
	if err := CheckGokaHasher(KafkaHasher()); err != nil {
		t.Fatalf("KafkaHasher refused: %v", err)
	}
	if err := CheckGokaHasher(goka.DefaultHasher()); err == nil {
		t.Fatal("goka's FNV-1a hasher accepted")
	}
	if err := CheckGokaHasher(nil); err == nil {
		t.Fatal("no hasher accepted")
	}
	b := GokaProducerBuilder([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")})
	if p, err := b(nil, "x", goka.DefaultHasher()); err == nil {
		_ = p.Close()
		t.Fatal("builder made a producer for goka's FNV-1a hasher")
	}
}

// TestGokaProducerSettings: the producer's client has the settings the
// semantics rely on: acks=all, idempotent, a short linger, a delivery timeout,
// bounded buffering.
func TestGokaProducerSettings(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := newGokaTestProducer(t, c).Client()
	if v := cl.OptValue(kgo.RequiredAcks).(kgo.Acks); v != kgo.AllISRAcks() {
		t.Errorf("acks %v, want all", v)
	}
	if v := cl.OptValue(kgo.DisableIdempotentWrite).(bool); v {
		t.Error("idempotent writes disabled")
	}
	if v := cl.OptValue(kgo.AllowIdempotentProduceCancellation).(bool); !v {
		t.Error("records in flight to a broker that never answers would never fail")
	}
	if v := cl.OptValue(kgo.ProducerLinger).(time.Duration); v != GokaLinger || v > 5*time.Millisecond {
		t.Errorf("linger %v, want %v (at most a few ms: USSD latency)", v, GokaLinger)
	}
	if v := cl.OptValue(kgo.RecordDeliveryTimeout).(time.Duration); v != GokaRecordTimeout {
		t.Errorf("delivery timeout %v, want %v", v, GokaRecordTimeout)
	}
	if v := cl.OptValue(kgo.MaxBufferedRecords).(int64); v != GokaMaxBufferedRecords {
		t.Errorf("max buffered records %v, want %v", v, GokaMaxBufferedRecords)
	}
	if v := cl.OptValue(kgo.MaxBufferedBytes).(int64); v != GokaMaxBufferedBytes {
		t.Errorf("max buffered bytes %v, want %v", v, GokaMaxBufferedBytes)
	}
}

// TestGokaProducerBrokerGone: with the broker gone, an emit's promise
// finishes with an error once the record timeout has passed (goka then
// fails the processor), and Close returns (its flush bounded) with every
// promise finished.
func TestGokaProducerBrokerGone(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	p := newGokaTestProducer(t, c, kgo.RecordDeliveryTimeout(time.Second), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	first := make(chan error, 1)
	p.Emit("t", "k", []byte("v")).Then(func(err error) { first <- err })
	if err := <-first; err != nil {
		t.Fatalf("emit to a live broker: %v", err)
	}

	c.Close()
	start := time.Now()
	res := make(chan emitted, 1)
	p.Emit("t", "k", []byte("lost")).ThenWithMessage(func(m *sarama.ProducerMessage, err error) { res <- emitted{m, err} })
	select {
	case e := <-res:
		if e.err == nil {
			t.Fatal("emit to a stopped broker succeeded")
		}
		if e.msg == nil || e.msg.Topic != "t" {
			t.Errorf("failed promise's message %+v", e.msg)
		}
		t.Logf("promise failed after %v: %v", time.Since(start).Round(time.Millisecond), e.err)
	case <-time.After(60 * time.Second):
		t.Fatal("promise of an emit to a stopped broker not finished 60s after (record timeout 1s)")
	}

	// Records still buffered when Close gives up are failed, not lost.
	p.closeTimeout = 200 * time.Millisecond
	pending := make(chan error, 1)
	p.Emit("t", "k2", []byte("pending")).Then(func(err error) { pending <- err })
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		t.Logf("Close: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("Close did not return within 60s (close timeout 200ms)")
	}
	select {
	case err := <-pending:
		if err == nil {
			t.Fatal("record emitted to a stopped broker reported written")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("promise still open 60s after Close")
	}
	after := make(chan error, 1)
	p.Emit("t", "k3", []byte("after")).Then(func(err error) { after <- err })
	if err := <-after; !errors.Is(err, kgo.ErrClientClosed) {
		t.Fatalf("emit after Close: %v, want kgo.ErrClientClosed", err)
	}
}

// TestGokaProducerCloseFlushes: Close waits for buffered records to be
// written: every promise of an emit before Close has succeeded when Close
// returns.
func TestGokaProducerCloseFlushes(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := GokaProducerBuilder([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)})
	p, err := b(nil, "test", KafkaHasher())
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var mu sync.Mutex
	var ok, failed int
	for i := range n {
		p.Emit("t", fmt.Sprint(i), []byte("v")).Then(func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
			} else {
				ok++
			}
		})
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if ok != n || failed != 0 {
		t.Fatalf("after Close: %d written, %d failed, %d unfinished of %d", ok, failed, n-ok-failed, n)
	}
}
