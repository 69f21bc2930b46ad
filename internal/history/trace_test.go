package history

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/schemas/schematest"
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

// TestBuildStepsOrder: hops in causal order even when a dispatcher's clock
// is behind the transport's; a failure worker's retry comes after the
// failure; events with their hops; repeats are flagged.
func TestBuildStepsOrder(t *testing.T) {
	ctx := context.Background()
	reg := schematest.New()
	codecs := schemas.NewCodecs(reg)
	if err := codecs.UserMessage.Register(ctx, "x.inbound"); err != nil {
		t.Fatal(err)
	}
	if err := codecs.Event.Register(ctx, "x.event"); err != nil {
		t.Fatal(err)
	}
	if err := codecs.Failure.Register(ctx, "x.failures"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 17, 12, 0, 0, 0, time.UTC)
	in := schemas.NewUserMessage()
	in.MessageID, in.FromAddr, in.ToAddr, in.Content = "m1", schemas.String("+27820000001"), schemas.String("1234"), schemas.String("hi")
	reply := in.Reply("hello", true)
	reply.MessageID = "m2"
	replyJSON, _ := reply.MarshalJSON()
	var recs []*kgo.Record
	offsets := map[string]int64{}
	add := func(topic string, at time.Duration, v []byte) {
		recs = append(recs, &kgo.Record{Topic: topic, Offset: offsets[topic], Timestamp: t0.Add(at), Value: v})
		offsets[topic]++
	}
	msg := func(m *schemas.UserMessage) []byte {
		b, err := codecs.UserMessage.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ev := func(id string) []byte {
		b, err := codecs.Event.Encode(&schemas.Event{EventID: id, EventType: schemas.EventAck, UserMessageID: "m2", SentMessageID: schemas.String("s1"), Timestamp: t0})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	temp := schemas.FailureTemporary
	fail := func(id string) []byte {
		b, err := codecs.Failure.Encode(&schemas.Failure{FailureID: id, Timestamp: t0, FailureCode: &temp, Reason: "SMSC down",
			Worker: schemas.String("smpp"), MessageType: schemas.String(schemas.TypeUserMessage), Message: schemas.String(string(replyJSON)),
			SourceTopic: schemas.String("sms.outbound"), SourcePartition: new(int32), SourceOffset: new(int64)})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Given out of order, as the re-read returns them.
	add("app.event", 13*time.Millisecond, ev("e1"))
	add("sms.outbound", 3*time.Millisecond, msg(reply))
	add("app.inbound", -5*time.Millisecond, msg(in)) // the dispatcher's clock is behind
	add("sms.inbound", 0, msg(in))
	add("sms.failures", 4*time.Millisecond, fail("f1"))
	add("sms.outbound", 10*time.Millisecond, msg(reply)) // the failure worker's retry
	add("sms.event", 11*time.Millisecond, ev("e1"))
	add("app.outbound", 2*time.Millisecond, msg(reply))

	g := &topology.Graph{Topics: map[string]*topology.TopicNode{}}
	worker := func(name string, role topology.Role, consumes, produces []string) {
		g.Workers = append(g.Workers, &topology.WorkerNode{Name: name, Role: role, Consumes: consumes, Produces: produces})
		for _, list := range [][]string{consumes, produces} {
			for _, tp := range list {
				if g.Topics[tp] == nil {
					g.Topics[tp] = &topology.TopicNode{Name: tp}
				}
			}
		}
		for _, p := range produces {
			g.Topics[p].Producers = append(g.Topics[p].Producers, name)
		}
	}
	worker("smpp", topology.RoleTransport, []string{"sms.outbound"}, []string{"sms.inbound", "sms.event", "sms.failures"})
	worker("d", topology.RoleDispatcher, []string{"sms.inbound", "sms.event", "app.outbound"}, []string{"app.inbound", "app.event", "sms.outbound"})
	worker("app", topology.RoleApplication, []string{"app.inbound", "app.event"}, []string{"app.outbound"})

	steps, err := buildSteps(ctx, recs, map[string]int{"m1": 0, "m2": 1}, TraceOptions{Graph: g, Decoder: schemas.NewAnyDecoder(reg)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Topic+" "+s.Step)
	}
	want := []string{
		"sms.inbound received", "app.inbound routed",
		"app.outbound reply", "sms.outbound routed", "sms.failures failed", "sms.outbound routed",
		"sms.event ack", "app.event ack",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order:\n got %q\nwant %q", got, want)
	}
	if !strings.HasPrefix(steps[5].Detail, "again") || strings.HasPrefix(steps[3].Detail, "again") {
		t.Errorf("retry not flagged: %q / %q", steps[3].Detail, steps[5].Detail)
	}
	if steps[7].Detail != "routed; sent_message_id s1" || steps[0].ElapsedMS != 5 || steps[1].ElapsedMS != 0 {
		t.Errorf("details %q, elapsed %v %v", steps[7].Detail, steps[0].ElapsedMS, steps[1].ElapsedMS)
	}
	if steps[4].MessageID != "m2" || steps[4].Generation != 1 || !strings.Contains(steps[4].Detail, "[temporary] SMSC down (worker smpp) from sms.outbound") {
		t.Errorf("failure step %+v", steps[4])
	}
}

func TestOffsetRuns(t *testing.T) {
	got := offsetRuns([]int64{2000000, 5, 7, 1005, 3000, 6}, 1000)
	want := [][2]int64{{5, 1005}, {3000, 3000}, {2000000, 2000000}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runs %v, want %v", got, want)
	}
}
