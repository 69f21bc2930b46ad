package chattest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/internal/kafkatest"
)

// Flood describes a backpressure test of a transport that reads from a
// chat server: Senders people each send PerSender messages to the
// transport's account through the server (Send(sender, text), with the
// text given), while Kafka refuses every write.
type Flood struct {
	// ServerPort is the chat server's port on 127.0.0.1: the transport's
	// connection is this process's TCP connection to it that is not one
	// of Except (the senders' own connections).
	ServerPort int
	Except     []net.Conn
	Senders    int
	PerSender  int
	Send       func(sender int, text string)
	// Hold is how long Kafka stays blocked once the transport has
	// stopped reading (long enough for the transport's keep-alives to
	// fire while it does not read).
	Hold time.Duration
}

// CheckBackpressure blocks Kafka's produce requests, has the senders send
// their messages, and checks that the transport stops reading: what the
// server forwarded stays unread in the transport's socket (its kernel
// receive queue holds at least half of it) for the whole hold, the
// connection stays up, and the process's goroutines do not grow with the
// messages. Then Kafka takes writes again, and every message must be on
// the inbound topic exactly once, each sender's in the order sent.
func CheckBackpressure(t *testing.T, e *Env, f Flood) {
	t.Helper()
	pad := strings.Repeat("x", 200)
	total := f.Senders * f.PerSender
	goroutines := runtime.NumGoroutine()
	release := kafkatest.BlockProduce(e.Broker.Cluster())
	defer release()
	var wg sync.WaitGroup
	for s := range f.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range f.PerSender {
				f.Send(s, fmt.Sprintf("s%d m%04d %s", s, i, pad))
			}
		}()
	}
	wg.Wait()
	sent := total * (len(pad) + 12)

	// The server forwards everything to the transport's socket, where it
	// stays unread.
	want := sent / 2
	deadline := time.Now().Add(90 * time.Second)
	unread := 0
	for {
		unread = UnreadBytes(t, f.ServerPort, f.Except...)
		if unread >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d bytes sent are unread in the transport's socket after 90s while Kafka refused writes: the transport kept reading", unread, sent)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if grown := runtime.NumGoroutine() - goroutines; grown > total/4 {
		t.Errorf("%d more goroutines while %d messages wait: the transport holds messages in goroutines", grown, total)
	}
	// Kafka stays blocked for the hold: the transport still does not read
	// (and keeps its connection: a closed socket has no receive queue).
	for end := time.Now().Add(f.Hold); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if u := UnreadBytes(t, f.ServerPort, f.Except...); u < want {
			t.Fatalf("while Kafka stayed blocked the unread bytes in the transport's socket fell from %d to %d: it read on, or lost its connection", unread, u)
		}
	}
	t.Logf("while Kafka refused writes, %d of the %d bytes sent waited unread in the transport's socket; %d more goroutines than before",
		UnreadBytes(t, f.ServerPort, f.Except...), sent, runtime.NumGoroutine()-goroutines)
	release()

	// Every message arrives once, in order per sender.
	deadline = time.Now().Add(3 * time.Minute)
	for {
		got := 0
		for _, m := range e.Inbound() {
			if strings.HasSuffix(m.Text(), pad) {
				got++
			}
		}
		if got >= total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages published within 3 minutes of Kafka taking writes again", got, total)
		}
		time.Sleep(100 * time.Millisecond)
	}
	next := make([]int, f.Senders)
	for _, m := range e.Inbound() {
		var s, i int
		if _, err := fmt.Sscanf(m.Text(), "s%d m%d", &s, &i); err != nil || s < 0 || s >= f.Senders {
			continue
		}
		if i != next[s] {
			t.Errorf("sender %d: message %d arrived when %d was expected (lost, duplicated or out of order)", s, i, next[s])
		}
		next[s] = i + 1
	}
	if n := e.CountRecords(e.TransportName + ".inbound"); n != int64(total) {
		t.Errorf("%d records on %s.inbound, want %d (each message once)", n, e.TransportName, total)
	}
}

// UnreadBytes is how many bytes wait unread in the kernel receive queues of
// this process's established TCP connections to 127.0.0.1:port, except the
// connections given (Linux: /proc/net/tcp, matched by socket inode against
// this process's file descriptors).
func UnreadBytes(t testing.TB, port int, except ...net.Conn) int {
	t.Helper()
	skip := map[string]bool{}
	for _, c := range except {
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			skip[fmt.Sprintf("%04X", a.Port)] = true
		}
	}
	ours := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(l, "socket:[") {
			ours[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	// 127.0.0.1:port, as IPv4 or as an IPv4-mapped IPv6 address.
	remote := fmt.Sprintf("0100007F:%04X", port)
	total := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout inode
			f := strings.Fields(sc.Text())
			if len(f) < 10 || f[3] != "01" || !strings.HasSuffix(f[2], remote) || !ours[f[9]] {
				continue
			}
			if i := strings.LastIndexByte(f[1], ':'); i >= 0 && skip[f[1][i+1:]] {
				continue
			}
			q := strings.SplitN(f[4], ":", 2)
			if len(q) != 2 {
				continue
			}
			n, err := strconv.ParseInt(q[1], 16, 64)
			if err == nil {
				total += int(n)
			}
		}
		fh.Close()
	}
	return total
}
