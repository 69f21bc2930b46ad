package history

import (
	"reflect"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/topology"
)

func TestClosure(t *testing.T) {
	idx := []entry{
		{kind: 'm', id: "m0"},                   // the message m1 answers
		{kind: 'm', id: "m1", inReplyTo: "m0"},  // traced
		{kind: 'm', id: "m1", inReplyTo: "m0"},  // a second hop of it
		{kind: 'm', id: "m3", inReplyTo: "m2"},  // before its parent in the index
		{kind: 'm', id: "m2", inReplyTo: "m1"},  // reply
		{kind: 'm', id: "m5", inReplyTo: "m0"},  // a sibling: not part of m1's life
		{kind: 'm', id: "m9"},                   // unrelated
		{kind: 'e', id: "e1", userMsgID: "m2"},  // events add no ids
		{kind: 'm', id: "m6", inReplyTo: "e1"},  // in_reply_to an event id: not a reply
		{kind: 'm', id: "m7", inReplyTo: "m5"},  // reply to the sibling
		{kind: 'f', id: "f1", msgID: "m3"},      // failures add no ids
		{kind: 'm', id: "m8", inReplyTo: ""},    // no parent
		{kind: 'm', id: "m4", inReplyTo: "m3"},  // three levels down
		{kind: 'm', id: "m1b", inReplyTo: "m1"}, // a second reply
	}
	got := closure(idx, "m1")
	want := map[string]int{"m0": -1, "m1": 0, "m2": 1, "m1b": 1, "m3": 2, "m4": 3}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closure = %v, want %v", got, want)
	}
}

// TestTopicDepths: hops are counted per direction, through dispatchers
// only, with the transport's and the application's topics at depth 0.
func TestTopicDepths(t *testing.T) {
	g := &topology.Graph{Topics: map[string]*topology.TopicNode{}}
	worker := func(name string, role topology.Role, consumes, produces []string) {
		g.Workers = append(g.Workers, &topology.WorkerNode{Name: name, Role: role, Consumes: consumes, Produces: produces})
		for _, c := range consumes {
			if g.Topics[c] == nil {
				g.Topics[c] = &topology.TopicNode{Name: c}
			}
			g.Topics[c].Consumers = append(g.Topics[c].Consumers, name)
		}
		for _, p := range produces {
			if g.Topics[p] == nil {
				g.Topics[p] = &topology.TopicNode{Name: p}
			}
			g.Topics[p].Producers = append(g.Topics[p].Producers, name)
		}
	}
	worker("smpp", topology.RoleTransport, []string{"sms.outbound"}, []string{"sms.inbound", "sms.event"})
	worker("d1", topology.RoleDispatcher, []string{"sms.inbound", "sms.event", "mid.outbound"}, []string{"mid.inbound", "mid.event", "sms.outbound"})
	worker("d2", topology.RoleDispatcher, []string{"mid.inbound", "mid.event", "app.outbound"}, []string{"app.inbound", "app.event", "mid.outbound"})
	worker("app", topology.RoleApplication, []string{"app.inbound", "app.event"}, []string{"app.outbound"})
	got := topicDepths(g)
	want := map[string]int{
		"sms.inbound": 0, "mid.inbound": 1, "app.inbound": 2,
		"sms.event": 0, "mid.event": 1, "app.event": 2,
		"app.outbound": 0, "mid.outbound": 1, "sms.outbound": 2,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("depths = %v, want %v", got, want)
	}
	if len(topicDepths(nil)) != 0 {
		t.Error("depths without a graph")
	}
}

func TestRange(t *testing.T) {
	t0 := time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC)
	r := Range{From: t0, To: t0.Add(24 * time.Hour)}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{t0.Add(-time.Nanosecond), false},
		{t0, true},
		{t0.Add(24*time.Hour - time.Millisecond), true},
		{t0.Add(24 * time.Hour), false},
	} {
		if got := r.Contains(tc.at); got != tc.want {
			t.Errorf("Contains(%v) = %v", tc.at, got)
		}
	}
	if !(Range{}).Contains(t0) || (Range{}).String() != "the start to now" {
		t.Errorf("open range: %q", Range{}.String())
	}
}
