package tcptest

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/internal/kafkatest"
	"github.com/vumi-kafka/vumi/schemas"
)

// StopsReadingWhileKafkaBlocks checks that a TCP client transport stops
// reading from its peer while Kafka refuses every write, and loses
// nothing. With Kafka blocked, the peer sends n messages with send(i) (far
// more than the socket buffers and the transport's lanes hold: the peer can
// send them all only if the transport reads without limit); once Kafka
// takes writes again, the peer must finish and every message must arrive
// (key names the i of an inbound message).
func StopsReadingWhileKafkaBlocks(t *testing.T, e *transporttest.Env, n int, send func(i int), key func(*schemas.UserMessage) string) {
	t.Helper()
	release := kafkatest.BlockProduce(e.Broker.Cluster())
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			send(i)
			written.Add(1)
		}
	}()
	select {
	case <-done:
		release()
		t.Fatalf("the peer sent all %d messages while Kafka refused every write: the transport read without limit", n)
	case <-time.After(5 * time.Second):
	}
	stalled := written.Load()
	release()
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		t.Fatalf("the transport did not resume reading (%d of %d written)", written.Load(), n)
	}
	// Nothing is lost: every message arrives once Kafka takes writes again.
	deadline := time.Now().Add(180 * time.Second)
	for {
		seen := map[string]bool{}
		for _, m := range e.Inbound() {
			seen[key(m)] = true
		}
		if len(seen) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages published after Kafka came back", len(seen), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the peer had sent %d of %d messages when the transport stopped reading", stalled, n)
}
