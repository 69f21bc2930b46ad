package scheduler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/processors/apps/apptest"
	"github.com/vumi-kafka/vumi/processors/apps/scheduler"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(scheduler.Kind(), reminderKind()) }

// reminder is an application that answers "remind me" a second later,
// through the scheduler, and "remind us" with a grouped message.
type reminder struct{}

type reminderConfig struct {
	app.Config `yaml:",inline"`
}

func (c *reminderConfig) Validate() error { return c.ValidateBase() }

func reminderKind() *topology.Kind {
	return &topology.Kind{
		Name: "reminder", Role: topology.RoleApplication,
		NewConfig: func() topology.WorkerConfig { return &reminderConfig{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return app.Worker(deps, spec, &spec.Config.(*reminderConfig).Config, reminder{}, app.Options{}), nil
		},
	}
}

func (reminder) ConsumeUserMessage(c *app.Context, m *schemas.UserMessage) error {
	r := m.Reply("reminder: "+m.Text(), true)
	switch m.Text() {
	case "remind me":
		return c.Schedule(scheduler.Request(r, time.Now().Add(time.Second)))
	case "remind us":
		return c.Schedule(scheduler.Request(r, time.Now().Add(time.Second), "27000000001", "27000000002"))
	}
	return c.ReplyTo(m, "say remind me", true)
}

func TestApplicationSchedules(t *testing.T) {
	c := apptest.Start(t)
	c.Run(t, kinds, workers+`  - name: app
    kind: reminder
    transport_name: sms
    scheduler: sched
`)
	p := c.Producer(t)
	sentAt := time.Now()
	p.Inbound(t, apptest.Inbound("27761234567", "remind me"), apptest.Inbound("27761234568", "remind us"))
	got := apptest.Messages(c.Collect(t, c.Consumer(t, "sms.outbound"), 20*time.Second, func(got []any) bool { return len(got) >= 3 }))
	if took := time.Since(sentAt); took < time.Second {
		t.Errorf("reminders after %v, want 1s", took)
	}
	to := map[string]string{}
	for _, m := range got {
		to[m.To()] = m.Text()
	}
	want := map[string]string{"27761234567": "reminder: remind me", "27000000001": "reminder: remind us", "27000000002": "reminder: remind us"}
	for addr, text := range want {
		if to[addr] != text {
			t.Errorf("to %s: %q, want %q (all %v)", addr, to[addr], text, to)
		}
	}
}

const workers = `  - name: sched
    kind: message_scheduler
    transport_name: sms
`

func TestConfig(t *testing.T) {
	cases := []struct{ name, yaml, wantErr string }{
		{"ok", "transport_name: sms", ""},
		{"no transport", "heartbeat_interval: 1s", "key transport_name: is required"},
		{"unknown key", "transport_name: sms\n    url: x", "url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := topology.Load("t.yaml", []byte("workers:\n  - name: sched\n    kind: message_scheduler\n    "+tc.yaml+"\n"), kinds(), nil)
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

type sent struct {
	msg *schemas.UserMessage
	at  time.Time // when it reached the outbound topic
}

// runSchedule schedules n messages over the next spread (starting in
// lead), restarts the scheduler in the middle, and checks that every
// message is sent once, not early, and within 1s of its time (or of the
// restart, for those due while it was down).
func runSchedule(t testing.TB, n int, lead, spread time.Duration) {
	c := apptest.Start(t)
	d := c.Run(t, kinds, workers)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := c.Codecs.UserMessage.Register(ctx, "sched.schedule"); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(lead)
	due := map[string]time.Time{}
	var recs []*kgo.Record
	add := func(m *schemas.UserMessage, at time.Time, to ...string) {
		scheduler.Request(m, at, to...)
		v, err := c.Codecs.UserMessage.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "sched.schedule", Key: scheduler.Key(m), Value: v})
	}
	for i := 0; i < n; i++ {
		m := apptest.Inbound("1234", fmt.Sprintf("scheduled %d", i))
		m.ToAddr = schemas.String(fmt.Sprintf("2776%07d", i))
		at := start.Add(time.Duration(i) * spread / time.Duration(n))
		due[m.MessageID] = at
		add(m, at)
	}
	group := apptest.Inbound("1234", "to the group")
	groupAt := start.Add(spread / 3)
	add(group, groupAt, "27000000001", "27000000002", "27000000003")
	cancelled := apptest.Inbound("1234", "cancelled")
	add(cancelled, start.Add(spread/2))
	recs = append(recs, &kgo.Record{Topic: "sched.schedule", Key: scheduler.Key(cancelled)})
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	out, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ConsumeTopics("sms.outbound"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var got []sent
	read := func(until time.Time) {
		for time.Now().Before(until) {
			pctx, cancel := context.WithDeadline(ctx, until)
			fs := out.PollFetches(pctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				var m schemas.UserMessage
				if err := c.Codecs.UserMessage.Decode(r.Value, &m); err != nil {
					t.Fatal(err)
				}
				got = append(got, sent{&m, r.Timestamp})
			})
		}
	}
	// restart in the middle of the schedules
	read(start.Add(spread / 2))
	stopped := time.Now()
	d.Stop()
	c.Run(t, kinds, workers)
	restarted := time.Now()
	t.Logf("restart took %v", restarted.Sub(stopped))
	read(start.Add(spread + 3*time.Second))

	seen := map[string]int{}
	groupSeen := map[string]bool{}
	var late, early int
	var worst time.Duration
	for _, s := range got {
		if s.msg.Text() == "to the group" {
			groupSeen[s.msg.To()] = true
			if s.msg.HelperMetadata["schedule_id"] != group.MessageID {
				t.Errorf("grouped message without its schedule_id: %v", s.msg.HelperMetadata)
			}
			continue
		}
		if s.msg.Text() == "cancelled" {
			t.Errorf("a cancelled schedule was sent")
			continue
		}
		at, ok := due[s.msg.MessageID]
		if !ok {
			t.Errorf("unexpected message %q", s.msg.Text())
			continue
		}
		seen[s.msg.MessageID]++
		if _, ok := s.msg.HelperMetadata[scheduler.MetadataKey]; ok {
			t.Errorf("sent message keeps its schedule metadata")
		}
		expected := at
		if at.After(stopped) && at.Before(restarted) {
			expected = restarted
		}
		lateness := s.at.Sub(expected)
		worst = max(worst, lateness)
		if s.at.Before(at.Add(-5 * time.Millisecond)) {
			early++
		}
		if lateness > time.Second {
			late++
		}
	}
	var missing, dup int
	for id := range due {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing != 0 || dup != 0 || early != 0 || late != 0 {
		t.Errorf("%d scheduled: %d missing, %d sent more than once, %d early, %d more than 1s late", n, missing, dup, early, late)
	}
	if len(groupSeen) != 3 {
		t.Errorf("grouped message reached %v, want 3 addresses", groupSeen)
	}
	t.Logf("%d messages, worst lateness %v", n, worst)
}

func TestScheduledMessages(t *testing.T) {
	runSchedule(t, 2000, 2*time.Second, 4*time.Second)
}

// BenchmarkScheduled10000 is the figure: 10,000 scheduled
// messages over 8 s, across a restart (run with -benchtime 1x).
func BenchmarkScheduled10000(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runSchedule(b, 10000, 3*time.Second, 8*time.Second)
	}
}
