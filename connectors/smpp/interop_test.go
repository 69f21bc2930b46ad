package smpp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/schemas"
)

// nodeSMSC is testdata/interop/smsc.js, an SMSC built on the npm smpp
// package, running in node.
type nodeSMSC struct {
	port  int
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []map[string]any
}

func startNodeSMSC(t *testing.T) *nodeSMSC {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed; the interop test needs it (see scripts/install-test-deps.sh)")
	}
	if _, err := os.Stat("testdata/interop/node_modules/smpp"); err != nil {
		t.Fatal("the npm smpp package is not installed; run scripts/install-test-deps.sh")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "smsc.js")
	cmd.Dir = "testdata/interop"
	cmd.Stderr = testlog.Writer(t)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); cancel(); _ = cmd.Wait() })
	n := &nodeSMSC{stdin: stdin}
	ready := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if m["event"] == "listening" {
				ready <- int(m["port"].(float64))
			}
			n.mu.Lock()
			n.lines = append(n.lines, m)
			n.mu.Unlock()
		}
	}()
	select {
	case n.port = <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("node SMSC did not start")
	}
	return n
}

func (n *nodeSMSC) events(name string) []map[string]any {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []map[string]any
	for _, l := range n.lines {
		if l["event"] == name {
			out = append(out, l)
		}
	}
	return out
}

// TestInteropNodeSMPP runs the transport against the SMPP server of the
// npm smpp package: bind, submit_sm with a receipt, deliver_sm.
func TestInteropNodeSMPP(t *testing.T) {
	node := startNodeSMSC(t)
	c := startCluster(t)
	w := c.watch(t)
	run(t, c, fmt.Sprintf(`
  - name: smpp_node
    kind: smpp
    transport_name: sms
    host: 127.0.0.1
    port: %d
    system_id: esme
    password: secret
    publish_status: true
    initial_reconnect_delay: 1
    submit_sm_processor_config:
      registered_delivery:
        delivery_receipt: SMSC_DELIVERY_RECEIPT_REQUESTED
`, node.port))
	w.until(t, 30*time.Second, "bound", func(w *watcher) bool { return w.hasStatus("bound") })
	m := outbound("27761234567", "hello from vumi")
	c.sender(t).send(t, m)
	w.until(t, 30*time.Second, "ack and delivery report", func(w *watcher) bool {
		return w.eventsOf(schemas.EventAck)[m.MessageID] != nil && w.eventsOf(schemas.EventDeliveryReport)[m.MessageID] != nil
	})
	subs := node.events("submit_sm")
	if len(subs) != 1 || subs[0]["text"] != "hello from vumi" || subs[0]["to"] != "27761234567" {
		t.Fatalf("node SMSC saw %v", subs)
	}
	w.mu.Lock()
	ack := w.eventsOf(schemas.EventAck)[m.MessageID]
	dr := w.eventsOf(schemas.EventDeliveryReport)[m.MessageID]
	w.mu.Unlock()
	if *ack.SentMessageID != subs[0]["id"] || *dr.DeliveryStatus != schemas.DeliveryDelivered {
		t.Fatalf("ack %v, delivery report %v", *ack.SentMessageID, *dr.DeliveryStatus)
	}
	if _, err := io.WriteString(node.stdin, "MO 27769876543 1234 hi from the handset\n"); err != nil {
		t.Fatal(err)
	}
	w.until(t, 30*time.Second, "inbound", func(w *watcher) bool { return len(w.inbound) == 1 })
	w.mu.Lock()
	in := w.inbound[0]
	w.mu.Unlock()
	if in.Text() != "hi from the handset" || in.From() != "27769876543" || in.To() != "1234" {
		t.Fatalf("inbound %+v", in)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(node.events("mo_resp")) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	resps := node.events("mo_resp")
	if len(resps) != 1 || resps[0]["status"] != float64(0) || !strings.Contains(fmt.Sprint(node.events("bound")), "bind_transceiver") {
		t.Fatalf("deliver_sm_resp %v, binds %v", resps, node.events("bound"))
	}
}
