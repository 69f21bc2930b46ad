package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// TestDispatcherPassThrough: telnet -> dispatcher (Vumi config style, with
// router_class) -> reverse app, and the reply and its ack back again.
func TestDispatcherPassThrough(t *testing.T) {
	c := startCluster(t)
	port := freePort(t)
	run(t, c, fmt.Sprintf(`
  - name: telnet_transport
    kind: telnet
    transport_name: telnet
    twisted_endpoint: tcp:port=%d:interface=127.0.0.1
  - name: dispatcher
    kind: vumi.dispatchers.base.BaseDispatchWorker
    router_class: passthrough
    transport_names: [telnet]
    exposed_names: [reverser]
    middleware:
      - d1: stamp
  - name: reverse_app
    kind: vumi.demos.words.ReverseWorker
    transport_name: reverser
`, port))
	conn := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := newLineReader(conn)
	if got := readLine(t, r); got != "Enter text to reverse:" {
		t.Fatalf("help = %q", got)
	}
	if _, err := conn.Write([]byte("hallo world\n")); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, r); got != "dlrow ollah" {
		t.Fatalf("reply = %q", got)
	}
	// The app's events come through the dispatcher on reverser.event.
	ev := c.Collect(t, c.Consumer(t, "reverser.event"), 30*time.Second, func(got []any) bool { return len(got) >= 2 })
	for _, v := range ev {
		if e := v.(*schemas.Event); e.EventType != schemas.EventAck {
			t.Errorf("event %s", mustJSON(t, e))
		}
	}
	// The dispatcher's middleware saw the inbound on consume and publish.
	in := c.Collect(t, c.Consumer(t, "reverser.inbound"), 30*time.Second, func(got []any) bool { return len(got) >= 2 })
	if trail := in[1].(*schemas.UserMessage).HelperMetadata["trail"]; fmt.Sprint(trail) != "[d1:consume d1:publish]" {
		t.Errorf("dispatcher trail = %v", trail)
	}
}

func TestRouterClassMustMatchKind(t *testing.T) {
	c := startCluster(t)
	_, err := topology.Load("x.yaml", []byte(c.config(`
  - name: d
    kind: passthrough_router
    router_class: vumi.dispatchers.base.SimpleDispatchRouter
    transport_names: [a]
    exposed_names: [b]
`)), kinds(), nil)
	if err == nil || !strings.Contains(err.Error(), `key router_class: "vumi.dispatchers.base.SimpleDispatchRouter" does not name kind passthrough_router`) {
		t.Errorf("error = %v", err)
	}
	if _, err := topology.Load("x.yaml", []byte(c.config(`
  - name: d
    kind: passthrough_router
    router_class: passthrough
    transport_names: [a]
    exposed_names: [b]
`)), kinds(), nil); err != nil {
		t.Errorf("a matching router_class: %v", err)
	}
}
