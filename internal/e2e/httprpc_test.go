package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// TestReplyForDeadInstanceGoesToFailures: an HTTP API instance holding a
// request dies; the reply, consumed by the surviving instance, lands on
// api.failures instead of disappearing.
func TestReplyForDeadInstanceGoesToFailures(t *testing.T) {
	c := startCluster(t)
	portA, portB := freePort(t), freePort(t)
	instance := func(name string, port int) string {
		return fmt.Sprintf(`
  - name: %s
    kind: http_api
    transport_name: api
    web_path: /send
    web_port: %d
    web_interface: 127.0.0.1
    reply_expected: true
    request_timeout: 60
`, name, port)
	}
	a := run(t, c, instance("api_a", portA))
	run(t, c, instance("api_b", portB))

	answered := make(chan int, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/send?content=hi&to_addr=1&from_addr=%%2B27830000001", portA))
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	in := c.Collect(t, c.Consumer(t, "api.inbound"), 30*time.Second, func(got []any) bool { return len(got) >= 1 })
	held := in[0].(*schemas.UserMessage)
	a.stop() // the holder dies; its pending request is answered as timed out
	select {
	case code := <-answered:
		if code != 504 && code != -1 {
			t.Errorf("request to the dying instance got %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the request to the stopped instance was never answered")
	}

	// The application's reply arrives now; only api_b consumes.
	reply := held.Reply("too late", true)
	ctx := context.Background()
	if err := c.Codecs.UserMessage.Register(ctx, "api.outbound"); err != nil {
		t.Fatal(err)
	}
	v, err := c.Codecs.UserMessage.Encode(reply)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "api.outbound", Key: topology.OutboundKey(reply), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	failures := c.Collect(t, c.Consumer(t, "api.failures"), 60*time.Second, func(got []any) bool {
		for _, v := range got {
			if f := v.(*schemas.Failure); f.Message != nil && strings.Contains(*f.Message, reply.MessageID) {
				return true
			}
		}
		return false
	})
	for _, v := range failures {
		f := v.(*schemas.Failure)
		if f.Message != nil && strings.Contains(*f.Message, reply.MessageID) {
			if !strings.Contains(f.Reason, "no pending request") || *f.Worker != "api_b" {
				t.Errorf("failure: worker %s reason %q", *f.Worker, f.Reason)
			}
		}
	}
}
