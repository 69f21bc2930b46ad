package e2e

import (
	"bufio"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

// TestTelnetEcho is Vumi's tutorial part 1 on Kafka: a real TCP telnet
// session against the telnet transport and the echo application, with
// middleware on both, checking what lands on every topic.
func TestTelnetEcho(t *testing.T) {
	c := startCluster(t)
	port := freePort(t)
	run(t, c, fmt.Sprintf(`
  - name: telnet_transport
    kind: telnet
    transport_name: telnet
    twisted_endpoint: tcp:port=%d:interface=127.0.0.1
    publish_status: true
    middleware:
      - m1: stamp
      - m2: stamp
      - log: logging
  - name: echo
    kind: echo
    transport_name: telnet
    middleware:
      - a1: stamp
      - a2: stamp
`, port))

	conn := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := newLineReader(conn)
	// A real telnet client opens with option negotiation: it must be
	// refused, not echoed as text.
	if _, err := conn.Write([]byte{255, 253, 1, 255, 251, 31}); err != nil { // IAC DO ECHO, IAC WILL NAWS
		t.Fatal(err)
	}
	help := readLine(t, r)
	if help != "Enter text to echo:" {
		t.Fatalf("first line = %q, want the echo help text", help)
	}
	if _, err := conn.Write([]byte("hallo world\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, r); got != "hallo world" {
		t.Fatalf("echo = %q, want %q", got, "hallo world")
	}
	if _, err := conn.Write([]byte("/quit\r\n")); err != nil {
		t.Fatal(err)
	}

	// Inbound: session new (no content), resume "hallo world", close.
	in := c.Collect(t, c.Consumer(t, "telnet.inbound"), 30*time.Second, func(got []any) bool { return len(got) >= 3 })
	var sessions []string
	for _, v := range in {
		m := v.(*schemas.UserMessage)
		sessions = append(sessions, string(m.Session())+"/"+m.Text())
		if m.Transport() != "telnet" || m.TransportType == nil || *m.TransportType != "telnet" || m.To() != fmt.Sprintf("127.0.0.1:%d", port) {
			t.Errorf("inbound message fields: %s", mustJSON(t, m))
		}
		// Transport publishes: middleware in reverse order.
		if trail := m.HelperMetadata["trail"]; !reflect.DeepEqual(trail, []any{"m2:publish", "m1:publish"}) {
			t.Errorf("inbound trail = %v", trail)
		}
	}
	if want := []string{"new/", "resume/hallo world", "close/"}; !reflect.DeepEqual(sessions, want) {
		t.Errorf("inbound sessions = %v, want %v", sessions, want)
	}

	// Outbound: the two replies, with the app's consume then publish order.
	out := c.Collect(t, c.Consumer(t, "telnet.outbound"), 30*time.Second, func(got []any) bool { return len(got) >= 2 })
	reply := out[1].(*schemas.UserMessage)
	if reply.Text() != "hallo world" || reply.InReplyTo == nil || *reply.InReplyTo != in[1].(*schemas.UserMessage).MessageID {
		t.Errorf("reply = %s", mustJSON(t, reply))
	}
	wantTrail := []any{"m2:publish", "m1:publish", "a1:consume", "a2:consume", "a2:publish", "a1:publish"}
	if trail := reply.HelperMetadata["trail"]; !reflect.DeepEqual(trail, wantTrail) {
		t.Errorf("outbound trail = %v, want %v", trail, wantTrail)
	}

	// Events: an ack for each reply delivered to the client.
	ev := c.Collect(t, c.Consumer(t, "telnet.event"), 30*time.Second, func(got []any) bool { return len(got) >= 2 })
	// Events are keyed by user_message_id, so they may come from different
	// partitions in any order.
	acked := map[string]bool{}
	for _, v := range ev {
		e := v.(*schemas.Event)
		if e.EventType != schemas.EventAck || e.SentMessageID == nil {
			t.Errorf("event = %s", mustJSON(t, e))
		}
		acked[e.UserMessageID] = true
	}
	for _, v := range out {
		if id := v.(*schemas.UserMessage).MessageID; !acked[id] {
			t.Errorf("reply %s was not acked (acks: %v)", id, acked)
		}
	}

	// Status: publish_status is on, so "listening" is on vumi.status (among
	// the supervisor's worker_started events).
	isListening := func(v any) bool {
		s := v.(*schemas.Status)
		return s.Type == "listening" && s.Status == schemas.StatusOK && s.Component == "telnet"
	}
	st := c.Collect(t, c.Consumer(t, "vumi.status"), 30*time.Second, func(got []any) bool {
		for _, v := range got {
			if isListening(v) {
				return true
			}
		}
		return false
	})
	found := false
	for _, v := range st {
		found = found || isListening(v)
	}
	if !found {
		t.Errorf("no telnet listening status among %d status events; first: %s", len(st), mustJSON(t, st[0].(*schemas.Status)))
	}
	// Heartbeats from both workers.
	hb := c.Collect(t, c.Consumer(t, "vumi.heartbeat"), 30*time.Second, func(got []any) bool {
		seen := map[string]bool{}
		for _, v := range got {
			seen[v.(*schemas.Heartbeat).WorkerName] = true
		}
		return seen["telnet_transport"] && seen["echo"]
	})
	if len(hb) < 2 {
		t.Errorf("heartbeats: %d", len(hb))
	}
	// Metrics: the workers' counts reach vumi.metrics (every 5 s).
	c.Collect(t, c.Consumer(t, "vumi.metrics"), 30*time.Second, func(got []any) bool {
		names := map[string]bool{}
		for _, v := range got {
			names[v.(*schemas.MetricDatapoint).Name] = true
		}
		return names["vumi.echo.inbound"] && names["vumi.telnet_transport.inbound"] && names["vumi.echo.inbound.handle_time"] &&
			names["vumi.telnet_transport.outbound.handle_time"] && names["vumi.telnet_transport.middleware.m1.publish_inbound_time"]
	})
}

func newLineReader(conn net.Conn) *bufio.Reader { return bufio.NewReader(conn) }

// dial connects, retrying while the server is still starting.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, line)
		}
		// Drop the server's option refusals (IAC ...) before the text.
		line = strings.TrimLeft(line, "\xff\xfb\xfc\xfd\xfe\x01\x1f")
		return strings.TrimRight(line, "\r\n")
	}
}

func mustJSON(t *testing.T, v interface{ MarshalJSON() ([]byte, error) }) string {
	b, err := v.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
