package e2e

import (
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

const counterWorkers = `
  - name: counter
    kind: counter
    transport_name: sms
`

// TestStateSurvivesRestart: per-user state in the group table is kept
// across a restart of the application.
func TestStateSurvivesRestart(t *testing.T) {
	c := startCluster(t)
	d := run(t, c, counterWorkers)
	out := c.Consumer(t, "sms.outbound")
	c.produceInbound(t, inbound("+27000000001", "a"), inbound("+27000000001", "b"))
	c.Collect(t, out, 60*time.Second, func(got []any) bool { return len(got) >= 2 })
	d.stop()
	run(t, c, counterWorkers)
	c.produceInbound(t, inbound("+27000000001", "c"))
	got := c.Collect(t, out, 60*time.Second, func(got []any) bool { return len(got) >= 1 })
	if r := got[0].(*schemas.UserMessage).Text(); r != "3" {
		t.Errorf("count after restart = %s, want 3", r)
	}
}

// TestTableAheadOfChangelogIsRebuilt: when the broker's data is wiped but
// the local table copies are not, the application rebuilds its tables
// from the (now empty) changelog instead of refusing to start or serving
// stale state.
func TestTableAheadOfChangelogIsRebuilt(t *testing.T) {
	c1 := startCluster(t)
	d := run(t, c1, counterWorkers)
	c1.produceInbound(t, inbound("+27000000001", "a"), inbound("+27000000001", "b"), inbound("+27000000001", "c"))
	c1.Collect(t, c1.Consumer(t, "sms.outbound"), 60*time.Second, func(got []any) bool { return len(got) >= 3 })
	d.stop()
	if err := c1.B.Close(); err != nil {
		t.Fatal(err)
	}

	c2 := startCluster(t)
	c2.State = c1.State // the local copies survive; the broker's data did not
	run(t, c2, counterWorkers)
	c2.produceInbound(t, inbound("+27000000001", "d"))
	got := c2.Collect(t, c2.Consumer(t, "sms.outbound"), 60*time.Second, func(got []any) bool { return len(got) >= 1 })
	if r := got[0].(*schemas.UserMessage).Text(); r != "1" {
		t.Errorf("count on the fresh broker = %s, want 1 (the stale local copy must not be used)", r)
	}
}
