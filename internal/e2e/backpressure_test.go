package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/schemas"
)

// blockProduce makes the embedded broker hold every produce request (and,
// kfake serving requests one at a time, everything after it) until the
// returned function is called: to a client, Kafka stops answering.
func (c *cluster) blockProduce() (release func()) {
	ch := make(chan struct{})
	kc := c.B.Cluster()
	kc.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		<-ch
		return nil, nil, false
	})
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// TestTelnetBackpressure: while Kafka does not answer, the telnet
// transport stops reading from its clients once max_pending_publishes
// publishes wait (it does not read and buffer what they send): the
// clients' writes block when the sockets' buffers are full. When Kafka
// answers again every line a client sent is published.
func TestTelnetBackpressure(t *testing.T) {
	c := startCluster(t)
	c.external = append(c.external, "telnet.inbound", "telnet.outbound")
	port := freePort(t)
	run(t, c, fmt.Sprintf(`
  - name: telnet_transport
    kind: telnet
    transport_name: telnet
    twisted_endpoint: tcp:port=%d:interface=127.0.0.1
    max_pending_publishes: 2
    heartbeat_interval: -1s
`, port))
	const clients, maxLines = 4, 200000
	conns := make([]net.Conn, clients)
	for i := range conns {
		var err error
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if conns[i], err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
		_ = conns[i].(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	release := c.blockProduce()
	defer release()

	// Each client writes 200-byte lines until a write makes no progress
	// for 2 s: the transport no longer reads from it.
	written := make([]int, clients)
	blocked := make([]bool, clients)
	pad := strings.Repeat("x", 180)
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < maxLines; n++ {
				_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
				if _, err := fmt.Fprintf(conn, "c%d l%06d %s\r\n", i, n, pad); err != nil {
					blocked[i] = errors.Is(err, os.ErrDeadlineExceeded)
					return
				}
				written[i] = n + 1
			}
		}()
	}
	wg.Wait()
	total := 0
	for i := range clients {
		total += written[i]
		if !blocked[i] {
			t.Errorf("client %d wrote %d lines without ever blocking: the transport kept reading while Kafka did not answer", i, written[i])
		}
	}
	t.Logf("while Kafka did not answer, %d clients got %d lines (%d KiB) into their sockets before their writes blocked", clients, total, total*200/1024)

	// Kafka answers again: every line written is published.
	release()
	for _, conn := range conns {
		_ = conn.SetWriteDeadline(time.Time{})
	}
	cl := c.Consumer(t, "telnet.inbound")
	got := map[string]bool{}
	seen := 0
	c.Collect(t, cl, 2*time.Minute, func(vs []any) bool {
		for _, v := range vs[seen:] {
			if m, ok := v.(*schemas.UserMessage); ok {
				if f := strings.Fields(m.Text()); len(f) >= 2 {
					got[f[0]+" "+f[1]] = true
				}
			}
		}
		seen = len(vs)
		for i := range clients {
			for n := 0; n < written[i]; n++ {
				if !got[fmt.Sprintf("c%d l%06d", i, n)] {
					return false
				}
			}
		}
		return true
	})
}

// TestMaxPendingPublishes: with Kafka not answering, 40 concurrent
// publishes through a transport's base hold at most max_pending_publishes
// slots; the others wait for a slot (their callers, socket readers, wait
// with them). When Kafka answers, every one of them is published.
func TestMaxPendingPublishes(t *testing.T) {
	hooks = benchHooks{ready: make(chan *transport.Transport, 1), outbound: func(*schemas.UserMessage) {}}
	c := startCluster(t)
	c.external = append(c.external, "bench.inbound", "bench.outbound")
	run(t, c, `
  - name: bench_transport
    kind: bench_transport
    transport_name: bench
    max_pending_publishes: 4
    heartbeat_interval: -1s
`)
	var tr *transport.Transport
	select {
	case tr = <-hooks.ready:
	case <-time.After(30 * time.Second):
		t.Fatal("transport did not start")
	}
	release := c.blockProduce()
	defer release()
	const n = 40
	errs := make(chan error, n)
	for i := range n {
		go func() {
			m := inbound(fmt.Sprintf("+2784%07d", i), "pending")
			m.TransportName = nil
			errs <- tr.PublishMessage(context.Background(), m)
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if now, _ := tr.PendingPublishes(); now == 4 {
			break
		}
		if time.Now().After(deadline) {
			now, most := tr.PendingPublishes()
			t.Fatalf("pending publishes %d (most %d), want 4 with Kafka blocked", now, most)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the 36 others are waiting, not publishing
	if now, most := tr.PendingPublishes(); now != 4 || most != 4 {
		t.Fatalf("pending publishes %d (most %d), want 4", now, most)
	}
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("publish: %v", err)
		}
	}
	if now, most := tr.PendingPublishes(); now != 0 || most > 4 {
		t.Errorf("after release: %d pending, most %d; want 0 and at most 4", now, most)
	}
	got := c.Collect(t, c.Consumer(t, "bench.inbound"), time.Minute, func(vs []any) bool { return len(vs) >= n })
	if len(got) != n {
		t.Errorf("%d messages on bench.inbound, want %d", len(got), n)
	}
}
