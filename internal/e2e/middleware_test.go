package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

// TestMiddlewareLayering: several middleware on a transport, a dispatcher
// and an application; each message's helper_metadata.trail shows every
// layer it passed, in Vumi's order (consume in config order, publish in
// reverse), and the real middleware did their work on the way.
func TestMiddlewareLayering(t *testing.T) {
	c := startCluster(t)
	run(t, c, `
  - name: devnull
    kind: devnull
    transport_name: dn
    ack_rate: 1.0
    failure_rate: 0.0
    reply_rate: 1.0
    reply_copy: fail
    middleware:
      - s1: stamp
      - prov: vumi.middleware.provider_setter.StaticProviderSettingMiddleware
      - s2: stamp
    prov:
      provider: MNO
  - name: dispatcher
    kind: vumi.dispatchers.base.BaseDispatchWorker
    router_class: passthrough
    transport_names: [dn]
    exposed_names: [app1]
    middleware:
      - d1: stamp
      - d2: {class: stamp}
  - name: app
    kind: failing
    transport_name: app1
    middleware:
      - a1: stamp
      - at: vumi.middleware.address_translator.AddressTranslationMiddleware
      - a2: stamp
    at:
      outbound_map: {"alice": "+27820000001"}
`)
	m := schemas.NewUserMessage()
	m.ToAddr, m.FromAddr, m.Content = schemas.String("+27820000001"), schemas.String("1234"), schemas.String("ping")
	c.produceTo(t, "app1.outbound", m)

	trail := func(v any) string { return fmt.Sprint(v.(*schemas.UserMessage).HelperMetadata["trail"]) }
	out := c.Collect(t, c.Consumer(t, "dn.outbound"), 60*time.Second, func(got []any) bool { return len(got) >= 1 })
	if got := trail(out[0]); got != "[d1:consume d2:consume d2:publish d1:publish]" {
		t.Errorf("dn.outbound trail = %s", got)
	}
	in := c.Collect(t, c.Consumer(t, "dn.inbound"), 60*time.Second, func(got []any) bool { return len(got) >= 1 })
	rm := in[0].(*schemas.UserMessage)
	if got := trail(rm); got != "[s2:publish s1:publish]" || rm.Text() != "fail" {
		t.Errorf("dn.inbound trail = %s (%s)", got, rm.Text())
	}
	if p := rm.Provider; p == nil || *p != "MNO" {
		t.Errorf("provider on dn.inbound = %v, want MNO (set by the transport's publish middleware)", p)
	}
	app := c.Collect(t, c.Consumer(t, "app1.inbound"), 60*time.Second, func(got []any) bool { return len(got) >= 1 })
	if got := trail(app[0]); got != "[s2:publish s1:publish d1:consume d2:consume d2:publish d1:publish]" {
		t.Errorf("app1.inbound trail = %s", got)
	}
	// The application fails on "fail": its failure holds the message as
	// the application saw it, after its own consume middleware.
	fs := c.Collect(t, c.Consumer(t, "app1.failures"), 60*time.Second, func(got []any) bool { return len(got) >= 1 })
	f := fs[0].(*schemas.Failure)
	var seen map[string]any
	if f.Message == nil || json.Unmarshal([]byte(*f.Message), &seen) != nil {
		t.Fatalf("failure without a message: %+v", f)
	}
	hm, _ := seen["helper_metadata"].(map[string]any)
	if got := fmt.Sprint(hm["trail"]); got != "[s2:publish s1:publish d1:consume d2:consume d2:publish d1:publish a1:consume a2:consume]" {
		t.Errorf("application trail = %s", got)
	}
	if seen["from_addr"] != "alice" {
		t.Errorf("from_addr seen by the application = %v, want alice (inverse of outbound_map)", seen["from_addr"])
	}
}
