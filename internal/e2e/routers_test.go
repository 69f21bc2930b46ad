package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// phone is a test transport: the outside world of its transport_name.
// Every outbound message is acked and gets a delivery report; inbound
// messages are published with the transport base, as a real transport
// would. Running phones register in phones by transport_name.
type phoneConfig struct {
	transport.Config `yaml:",inline"`
}

func (c *phoneConfig) Validate() error { return c.ValidateBase() }

type phoneNet struct {
	mu sync.Mutex
	by map[string]*transport.Transport
}

var phones = &phoneNet{by: map[string]*transport.Transport{}}

func (n *phoneNet) set(name string, t *transport.Transport) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t == nil {
		delete(n.by, name)
		return
	}
	n.by[name] = t
}

// send publishes inbound messages on the phone called name.
func (n *phoneNet) send(t *testing.T, name string, msgs ...*schemas.UserMessage) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var tr *transport.Transport
	for tr == nil {
		n.mu.Lock()
		tr = n.by[name]
		n.mu.Unlock()
		if tr == nil {
			if time.Now().After(deadline) {
				t.Fatalf("phone %s not running", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, m := range msgs {
		m.TransportName = schemas.String(name)
		if err := tr.PublishMessage(context.Background(), m); err != nil {
			t.Error(err)
		}
	}
}

func phoneKind() *topology.Kind {
	return &topology.Kind{
		Name: "phone", Role: topology.RoleTransport, Summary: "test transport that acks and reports delivery of everything",
		NewConfig: func() topology.WorkerConfig { return &phoneConfig{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*phoneConfig)
			return topology.WorkerFunc(func(ctx context.Context) error {
				tr, err := transport.New(deps, spec, &cfg.Config)
				if err != nil {
					return err
				}
				defer tr.Close()
				phones.set(cfg.TransportName, tr)
				defer phones.set(cfg.TransportName, nil)
				return tr.Run(ctx, transport.HandlerFunc(func(ctx context.Context, m *schemas.UserMessage) error {
					if err := tr.PublishAck(ctx, m.MessageID, "remote-"+m.MessageID); err != nil {
						return err
					}
					return tr.PublishDeliveryReport(ctx, m.MessageID, schemas.DeliveryDelivered, nil)
				}))
			}), nil
		},
	}
}

const keywordWorkers = `
  - name: sms_phone
    kind: phone
    transport_name: sms
  - name: ussd_phone
    kind: phone
    transport_name: ussd
  - name: keywords
    kind: dispatcher
    router_class: vumi.dispatchers.base.ContentKeywordRouter
    transport_names: [sms, ussd]
    exposed_names: [app_a, app_b]
    keyword_mappings: {app_a: alpha, app_b: beta}
    transport_mappings: {"1234": sms, "*120#": ussd}
    sweep_interval: 1
  - name: app_a
    kind: echo
    transport_name: app_a
  - name: app_b
    kind: reverse
    transport_name: app_b
`

// keywordTraffic is n inbound messages alternating between sms (alpha, to
// app_a) and ussd (beta, to app_b), from 20 users.
func keywordTraffic(n int) (sms, ussd []*schemas.UserMessage) {
	for i := range n {
		m := schemas.NewUserMessage()
		m.FromAddr = schemas.String(fmt.Sprintf("+2782%07d", i%20))
		m.TransportType = schemas.String("sms")
		if i%2 == 0 {
			m.ToAddr, m.Content = schemas.String("1234"), schemas.String(fmt.Sprintf("alpha %d", i))
			sms = append(sms, m)
		} else {
			m.ToAddr, m.Content = schemas.String("*120#"), schemas.String(fmt.Sprintf("beta %d", i))
			ussd = append(ussd, m)
		}
	}
	return sms, ussd
}

// routed checks where the traffic went: every sms message's echo went out
// on sms.outbound and every ussd message's reversal on ussd.outbound, and
// each reply's ack and delivery report reached the application that sent
// it (app_a.event / app_b.event), and nothing reached the other one.
type routed struct {
	replies map[string]*schemas.UserMessage // in_reply_to -> reply
	replyOn map[string]string               // reply id -> transport
	events  map[string]map[string]int       // app -> user_message_id -> count
}

func (c *cluster) collectRouted(t *testing.T, n int, within time.Duration) *routed {
	t.Helper()
	r := &routed{replies: map[string]*schemas.UserMessage{}, replyOn: map[string]string{}, events: map[string]map[string]int{"app_a": {}, "app_b": {}}}
	cl := c.Consumer(t, "sms.outbound", "ussd.outbound", "app_a.event", "app_b.event")
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	done := func() bool {
		if len(r.replies) < n {
			return false
		}
		for id, on := range r.replyOn {
			app := map[string]string{"sms": "app_a", "ussd": "app_b"}[on]
			if r.events[app][id] < 2 {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out after %v: %d of %d replies, events %d/%d", within, len(r.replies), n, len(r.events["app_a"]), len(r.events["app_b"]))
		}
		fs.EachRecord(func(rec *kgo.Record) {
			v, err := c.Any.Decode(ctx, rec.Value)
			if err != nil {
				t.Fatalf("decode %s: %v", rec.Topic, err)
			}
			switch x := v.(type) {
			case *schemas.UserMessage:
				if x.InReplyTo != nil {
					r.replies[*x.InReplyTo] = x
					r.replyOn[x.MessageID] = strings.TrimSuffix(rec.Topic, ".outbound")
				}
			case *schemas.Event:
				r.events[strings.TrimSuffix(rec.Topic, ".event")][x.UserMessageID]++
			}
		})
	}
	return r
}

func (r *routed) check(t *testing.T, sms, ussd []*schemas.UserMessage) {
	t.Helper()
	for _, l := range []struct {
		msgs      []*schemas.UserMessage
		transport string
		app       string
		want      func(string) string
	}{
		{sms, "sms", "app_a", func(s string) string { return s }},
		{ussd, "ussd", "app_b", func(s string) string {
			rs := []rune(s)
			for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
				rs[i], rs[j] = rs[j], rs[i]
			}
			return string(rs)
		}},
	} {
		other := map[string]string{"app_a": "app_b", "app_b": "app_a"}[l.app]
		for _, m := range l.msgs {
			reply, ok := r.replies[m.MessageID]
			if !ok {
				t.Errorf("no reply to %q", m.Text())
				continue
			}
			if on := r.replyOn[reply.MessageID]; on != l.transport || reply.Text() != l.want(m.Text()) || reply.To() != m.From() {
				t.Errorf("reply to %q: %q to %s on %s, want %q to %s on %s", m.Text(), reply.Text(), reply.To(), on, l.want(m.Text()), m.From(), l.transport)
			}
			if n := r.events[l.app][reply.MessageID]; n < 2 {
				t.Errorf("%s got %d events for its reply to %q, want the ack and the delivery report", l.app, n, m.Text())
			}
			if n := r.events[other][reply.MessageID]; n != 0 {
				t.Errorf("%s got %d events for %s's reply to %q", other, n, l.app, m.Text())
			}
		}
	}
}

// TestKeywordDispatcherEndToEnd: SMS and USSD transports, a keyword
// dispatcher and two applications. Inbound messages reach the application
// their keyword names, replies leave through the transport their from_addr
// maps to, and every ack and delivery report finds its way back to the
// application that sent the reply.
func TestKeywordDispatcherEndToEnd(t *testing.T) {
	c := startCluster(t)
	run(t, c, keywordWorkers)
	sms, ussd := keywordTraffic(40)
	phones.send(t, "sms", sms...)
	phones.send(t, "ussd", ussd...)
	c.collectRouted(t, 40, 90*time.Second).check(t, sms, ussd)

	// A message with no keyword and no fallback goes to failures.
	m := inbound("+27829999999", "gamma nothing")
	m.ToAddr = schemas.String("1234")
	phones.send(t, "sms", m)
	fails := c.Collect(t, c.Consumer(t, "sms.failures"), 60*time.Second, func(got []any) bool { return len(got) >= 1 })
	if f := fails[0].(*schemas.Failure); !strings.Contains(f.Reason, `keyword "gamma" matches no rule`) {
		t.Errorf("failure reason %q", f.Reason)
	}
}

// TestKeywordDispatcherRestartLosesNothing stops the keyword dispatcher
// (a separate deployment, as `vumi worker keywords` would be) in the
// middle of the traffic and starts it again: every message still gets
// its reply through the right transport, and every event goes home.
func TestKeywordDispatcherRestartLosesNothing(t *testing.T) {
	c := startCluster(t)
	run(t, c, keywordWorkers, "sms_phone", "ussd_phone", "app_a", "app_b")
	disp := run(t, c, keywordWorkers, "keywords")
	const n = 200
	sms, ussd := keywordTraffic(n)
	phones.send(t, "sms", sms[:n/4]...)
	phones.send(t, "ussd", ussd[:n/4]...)
	// Wait until some replies are out, then stop the dispatcher while the
	// rest of the traffic comes in.
	c.Collect(t, c.Consumer(t, "sms.outbound"), 60*time.Second, func(got []any) bool { return len(got) >= n/8 })
	disp.stop()
	phones.send(t, "sms", sms[n/4:]...)
	phones.send(t, "ussd", ussd[n/4:]...)
	run(t, c, keywordWorkers, "keywords")
	c.collectRouted(t, n, 120*time.Second).check(t, sms, ussd)
}

const groupingWorkers = `
  - name: groups
    kind: dispatcher
    router_class: vumi.dispatchers.base.UserGroupingRouter
    dispatcher_name: groups
    transport_names: [sms]
    exposed_names: [app1, app2]
    group_mappings: {group1: app1, group2: app2}
`

// TestUserGroupsAgreeAcrossDispatchers runs the user-grouping dispatcher
// as two processes' worth of instances against one broker (each with its
// own state directory), through two rebalances: the second instance
// joining, then the first leaving. Every user's messages all reach one
// application, and the round robin over new users is global.
func TestUserGroupsAgreeAcrossDispatchers(t *testing.T) {
	c := startCluster(t)
	c.external = []string{"app1.outbound", "app2.outbound"}
	c2 := *c
	c2.State = t.TempDir()
	const users = 30
	phase := func(p int) []*schemas.UserMessage {
		var out []*schemas.UserMessage
		for u := range users {
			out = append(out, inbound(fmt.Sprintf("+2783%07d", u), fmt.Sprintf("phase %d", p)))
		}
		return out
	}
	a := run(t, c, groupingWorkers)
	c.produceInbound(t, phase(1)...)
	cl := c.Consumer(t, "app1.inbound", "app2.inbound")
	got := c.collectApps(t, cl, users, 60*time.Second, nil)

	c.waitMembers(t, "groups", 1)
	run(t, &c2, groupingWorkers) // a second instance joins: rebalance
	c.waitMembers(t, "groups", 2)
	c.produceInbound(t, phase(2)...)
	got = c.collectApps(t, cl, 2*users, 90*time.Second, got)

	a.stop() // the first instance leaves: the second owns every partition
	c.waitMembers(t, "groups", 1)
	c.produceInbound(t, phase(3)...)
	got = c.collectApps(t, cl, 3*users, 90*time.Second, got)

	perApp := map[string]int{}
	for user, apps := range got {
		if len(apps) != 1 {
			t.Errorf("user %s reached %v, want exactly one application", user, apps)
		}
		for app, n := range apps {
			perApp[app]++
			if n != 3 {
				t.Errorf("user %s: %d messages at %s, want 3", user, n, app)
			}
		}
	}
	// Strict round robin gives 15/15; a redelivered assignment request
	// after a rebalance may skip a slot, so allow a little slack.
	if d := perApp["app1"] - perApp["app2"]; d > 4 || d < -4 {
		t.Errorf("users per application %v: not round robin", perApp)
	}
	t.Logf("users per application: %v", perApp)
}

// waitMembers waits until the consumer group has n members, each with
// partitions assigned.
func (c *cluster) waitMembers(t *testing.T, group string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		groups, err := adm.DescribeGroups(ctx, group)
		cancel()
		if err == nil {
			g := groups[group]
			assigned := 0
			for _, m := range g.Members {
				if ca, ok := m.Assigned.AsConsumer(); ok && len(ca.Topics) > 0 {
					assigned++
				}
			}
			if g.State == "Stable" && len(g.Members) == n && assigned == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer group %s did not settle with %d members: %v", group, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// collectApps adds the inbound messages on app1/app2.inbound to got (user
// -> app -> count) until it holds at least n messages.
func (c *cluster) collectApps(t *testing.T, cl *kgo.Client, n int, within time.Duration, got map[string]map[string]int) map[string]map[string]int {
	t.Helper()
	if got == nil {
		got = map[string]map[string]int{}
	}
	total := func() int {
		s := 0
		for _, apps := range got {
			for _, k := range apps {
				s += k
			}
		}
		return s
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for total() < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out after %v with %d of %d messages", within, total(), n)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			v, err := c.Any.Decode(ctx, rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			m := v.(*schemas.UserMessage)
			if got[m.From()] == nil {
				got[m.From()] = map[string]int{}
			}
			got[m.From()][strings.TrimSuffix(rec.Topic, ".inbound")]++
		})
	}
	return got
}

// BenchmarkDispatcherHop measures one dispatcher hop on the embedded
// broker: b.N inbound messages from 1,000 users are waiting on
// sms.inbound when a keyword dispatcher starts; timed until all b.N are
// on its applications' inbound topics. Reports msgs/s.
func BenchmarkDispatcherHop(b *testing.B) {
	c := startCluster(b)
	c.external = []string{"app_a.outbound", "app_b.outbound"}
	if err := c.produceMany(b.N); err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ConsumeTopics("app_a.inbound", "app_b.inbound"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.ResetTimer()
	start := time.Now()
	run(b, c, `
  - name: keywords
    kind: content_keyword_router
    transport_names: [sms]
    exposed_names: [app_a, app_b]
    keyword_mappings: {app_a: alpha}
    fallback_application: app_b
    transport_mappings: {"1234": sms}
    heartbeat_interval: -1s
`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seen := 0
	for seen < b.N {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("only %d of %d messages routed", seen, b.N)
		}
		seen += fs.NumRecords()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// produceMany puts n inbound messages on sms.inbound (2 partitions),
// alternating between the keywords alpha and beta.
func (c *cluster) produceMany(n int) error {
	ctx := context.Background()
	if err := c.produceInboundErr(); err != nil { // registers the schema, creates the topic
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		m := inbound(fmt.Sprintf("+2784%07d", i%1000), []string{"alpha x", "beta y"}[i%2])
		v, err := c.Codecs.UserMessage.Encode(m)
		if err != nil {
			return err
		}
		cl.Produce(ctx, &kgo.Record{Topic: "sms.inbound", Key: topology.InboundKey(m), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return firstErr
}
