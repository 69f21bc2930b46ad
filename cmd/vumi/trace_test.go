package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/internal/history"
	"github.com/vumi-kafka/vumi/internal/testcluster"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// smsDeployment is an SMSC simulator, the SMPP transport, a keyword router
// and an echo application on an embedded broker: the scripted exchange of
// the trace and replay tests.
type smsDeployment struct {
	b       *broker.Broker
	cfgFile string
	smscURL string
	cl      *kgo.Client
	codecs  *schemas.Codecs
	stop    func()
}

func startSMSDeployment(t *testing.T) *smsDeployment {
	t.Helper()
	tc := testcluster.Start(t)
	b := tc.B
	smppPort, httpPort := freePort(t), freePort(t)
	text := fmt.Sprintf(`cluster:
  kafka: {brokers: [%s]}
  schema_registry: {url: %s}
  partitions: 2
  state_dir: %s
workers:
  - name: smsc
    kind: smsc
    twisted_endpoint: tcp:port=%d:interface=127.0.0.1
    http_endpoint: tcp:port=%d:interface=127.0.0.1
    credentials: {client: secret}
    receipt_delay: 100ms
  - name: smpp_transport
    kind: smpp
    transport_name: sms
    host: 127.0.0.1
    port: %d
    system_id: client
    password: secret
    initial_reconnect_delay: 1
    submit_sm_processor_config:
      registered_delivery:
        delivery_receipt: SMSC_DELIVERY_RECEIPT_REQUESTED
  - name: keywords
    kind: content_keyword_router
    transport_names: [sms]
    exposed_names: [app_a]
    keyword_mappings: {app_a: hi}
    transport_mappings: {"1234": sms}
  - name: app_a
    kind: echo
    transport_name: app_a
  - name: sms_failures
    kind: failure_worker
    transport_name: sms
`, b.KafkaAddr(), b.RegistryURL(), t.TempDir(), smppPort, httpPort, smppPort)
	d := &smsDeployment{b: b, cfgFile: filepath.Join(t.TempDir(), "vumi.yaml"), smscURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort)}
	if err := os.WriteFile(d.cfgFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := topology.LoadFile(d.cfgFile, kinds())
	if err != nil {
		t.Fatal(err)
	}
	d.stop = testcluster.Run(t, cfg, kinds, topology.RunOptions{}, testcluster.RunOptions{ReadyWithin: 90 * time.Second, IgnoreStopError: true}).Stop
	d.cl, err = kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.cl.Close)
	d.codecs = tc.Codecs
	return d
}

// mo injects a message from a handset, retrying until the transport is
// bound.
func (d *smsDeployment) mo(t *testing.T, from, content string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"from": from, "to": "1234", "content": content})
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Post(d.smscURL+"/mo", "application/json", bytes.NewReader(body))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("SMSC would not deliver an MO within 90s (last: %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// inbound returns the messages on a topic so far, by content.
func (d *smsDeployment) messages(t *testing.T, topic string) map[string]*schemas.UserMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spans, err := history.Spans(ctx, kadm.NewClient(d.cl), []string{topic}, history.Range{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*schemas.UserMessage{}
	err = history.Read(ctx, d.cl, spans, history.ReadOptions{}, func(r *kgo.Record) error {
		var m schemas.UserMessage
		if err := d.codecs.UserMessage.DecodeContext(ctx, r.Value, &m); err != nil {
			return err
		}
		out[m.Text()] = &m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// count returns the number of records on a topic.
func (d *smsDeployment) count(t *testing.T, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spans, err := history.Spans(ctx, kadm.NewClient(d.cl), []string{topic}, history.Range{})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range spans {
		n += s.Len()
	}
	return n
}

// longCLI runs the command line with a generous deadline.
func longCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code = runMain(ctx, args, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb})
	return out.String(), errb.String(), code
}

// TestTraceSMSExchange: an MO through the SMPP transport, the keyword
// router and the echo app, the reply back out through the router and the
// transport, its ack and delivery report routed back: `vumi trace` shows
// every step in order, in text and JSON, and an unknown id is an error.
func TestTraceSMSExchange(t *testing.T) {
	d := startSMSDeployment(t)
	d.mo(t, "27761230001", "hi there")
	d.mo(t, "27761230002", "nomatch at all")
	var in *schemas.UserMessage
	testcluster.WaitFor(t, 60*time.Second, "the MO on sms.inbound", func() bool {
		in = d.messages(t, "sms.inbound")["hi there"]
		return in != nil
	})
	type step struct{ typ, step, topic string }
	want := []step{
		{"inbound", "received", "sms.inbound"},
		{"inbound", "routed", "app_a.inbound"},
		{"outbound", "reply", "app_a.outbound"},
		{"outbound", "routed", "sms.outbound"},
		{"event", "ack", "sms.event"},
		{"event", "ack", "app_a.event"},
		{"event", "delivery_report", "sms.event"},
		{"event", "delivery_report", "app_a.event"},
	}
	var tl history.Timeline
	var out, stderr string
	var code int
	testcluster.WaitFor(t, 90*time.Second, "the delivery report to reach app_a.event", func() bool {
		out, stderr, code = longCLI(t, "trace", "-c", d.cfgFile, "-json", in.MessageID)
		if code != 0 {
			t.Logf("trace: %d %s", code, stderr)
			return false
		}
		tl = history.Timeline{}
		if err := json.Unmarshal([]byte(out), &tl); err != nil {
			t.Fatalf("trace -json does not parse: %v\n%s", err, out)
		}
		return len(tl.Steps) >= len(want)
	})
	var got []step
	for _, s := range tl.Steps {
		got = append(got, step{s.Type, s.Step, s.Topic})
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("steps:\n got %v\nwant %v\n%s", got, want, out)
	}
	reply := tl.Steps[2]
	if reply.Generation != 1 || reply.MessageID == in.MessageID || !strings.Contains(reply.Detail, "in reply to "+in.MessageID) {
		t.Errorf("reply step %+v", reply)
	}
	if tl.Steps[0].Generation != 0 || tl.Steps[0].MessageID != in.MessageID || !strings.Contains(tl.Steps[0].Detail, `"hi there"`) {
		t.Errorf("first step %+v", tl.Steps[0])
	}
	if w := tl.Steps[0].WrittenBy; len(w) != 1 || w[0] != "smpp_transport" {
		t.Errorf("sms.inbound written by %v", w)
	}
	if w := tl.Steps[1].WrittenBy; len(w) != 1 || w[0] != "keywords" {
		t.Errorf("app_a.inbound written by %v", w)
	}
	// The transport's record of the SMPP exchange rides on the ack and
	// the delivery report.
	ack, dr := tl.Steps[4], tl.Steps[6]
	resps, _ := ack.Protocol["smpp_submit_sm_resp"].([]any)
	if len(resps) != 1 {
		t.Fatalf("ack protocol record %v", ack.Protocol)
	}
	first, _ := resps[0].(map[string]any)
	var ackEvent schemas.Event
	if err := json.Unmarshal(ack.Value, &ackEvent); err != nil {
		t.Fatal(err)
	}
	if first["status"] != "ESME_ROK" || first["message_id"] != *ackEvent.SentMessageID || first["seq"] == nil {
		t.Errorf("submit_sm_resp record %v (ack %v)", first, *ackEvent.SentMessageID)
	}
	if dr.Protocol["smpp_delivery_status"] != "DELIVRD" || dr.Protocol["smpp_message_id"] != *ackEvent.SentMessageID || !strings.Contains(dr.Detail, "delivered") {
		t.Errorf("delivery report step %+v", dr)
	}
	for i := 1; i < len(tl.Steps); i++ {
		if tl.Steps[i].ElapsedMS < 0 {
			t.Errorf("step %d elapsed %v", i, tl.Steps[i].ElapsedMS)
		}
	}

	// Which consumer groups have handled each record: eventually every
	// step is consumed by the worker reading its topic.
	wantGroups := []string{"keywords", "app_a", "keywords", "transport.sms", "keywords", "app_a", "keywords", "app_a"}
	testcluster.WaitFor(t, 60*time.Second, "every step to be consumed", func() bool {
		out, _, code = longCLI(t, "trace", "-c", d.cfgFile, "-json", in.MessageID)
		var ct history.Timeline
		if code != 0 || json.Unmarshal([]byte(out), &ct) != nil || len(ct.Steps) != len(wantGroups) {
			t.Fatalf("trace: %d\n%s", code, out)
		}
		for i, s := range ct.Steps {
			if !reflect.DeepEqual(s.ConsumedBy, []string{wantGroups[i]}) || len(s.PendingFor) != 0 {
				return false
			}
		}
		return true
	})

	// The same as text for people.
	out, stderr, code = longCLI(t, "trace", "-c", d.cfgFile, in.MessageID)
	if code != 0 {
		t.Fatalf("trace: %d %s", code, stderr)
	}
	t.Logf("vumi trace %s:\n%s", in.MessageID, out)
	lines := strings.Split(out, "\n")
	order := []string{"inbound received", "inbound routed", "outbound reply", "outbound routed", "ack", "ack", "delivery report", "delivery report"}
	i := 0
	for _, l := range lines {
		if i < len(order) && strings.Contains(l, " "+order[i]+" ") {
			i++
		}
	}
	if i != len(order) || !strings.Contains(out, "(the traced message)") || !strings.Contains(out, "(a reply)") || !strings.Contains(out, `transport: {"smpp_submit_sm_resp"`) {
		t.Errorf("text timeline (matched %d of %d steps in order):\n%s", i, len(order), out)
	}

	// Tracing the reply shows the inbound it answers first.
	out, _, code = longCLI(t, "trace", "-c", d.cfgFile, "-json", reply.MessageID)
	var rt history.Timeline
	if code != 0 || json.Unmarshal([]byte(out), &rt) != nil || len(rt.Steps) != len(want) || rt.Steps[0].Generation != -1 || rt.Steps[0].MessageID != in.MessageID {
		t.Errorf("trace of the reply: %d\n%s", code, out)
	}

	// A message no rule matches: received, the router's failure, and the
	// failure worker parking it as a dead letter.
	var lost *schemas.UserMessage
	testcluster.WaitFor(t, 60*time.Second, "the unroutable MO", func() bool {
		lost = d.messages(t, "sms.inbound")["nomatch at all"]
		return lost != nil
	})
	testcluster.WaitFor(t, 60*time.Second, "the router's failure and the dead letter in the trace", func() bool {
		out, _, code = longCLI(t, "trace", "-c", d.cfgFile, "-json", lost.MessageID)
		var lt history.Timeline
		if code != 0 || json.Unmarshal([]byte(out), &lt) != nil || len(lt.Steps) < 3 {
			return false
		}
		f, dl := lt.Steps[1], lt.Steps[2]
		if len(lt.Steps) != 3 || lt.Steps[0].Step != "received" || f.Type != history.TypeFailure || f.Topic != "sms.failures" || !strings.Contains(f.Detail, "matches no rule") ||
			dl.Type != history.TypeDeadLetter || dl.Topic != "sms.dead-letters" || dl.MessageID != lost.MessageID {
			t.Fatalf("unroutable trace:\n%s", out)
		}
		return true
	})

	// The SMSC refuses the next reply: a nack carrying the refused
	// submit_sm_resp.
	resp, err := http.Post(d.smscURL+"/control", "application/json", strings.NewReader(`{"submit_status": "ESME_RINVDSTADR"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d.mo(t, "27761230003", "hi refuse me")
	var refused *schemas.UserMessage
	testcluster.WaitFor(t, 60*time.Second, "the refused MO", func() bool {
		refused = d.messages(t, "sms.inbound")["hi refuse me"]
		return refused != nil
	})
	testcluster.WaitFor(t, 60*time.Second, "the nack routed to app_a.event", func() bool {
		out, _, code = longCLI(t, "trace", "-c", d.cfgFile, "-json", refused.MessageID)
		var nt history.Timeline
		if code != 0 || json.Unmarshal([]byte(out), &nt) != nil || len(nt.Steps) < 6 {
			return false
		}
		nack := nt.Steps[4]
		resps, _ := nack.Protocol["smpp_submit_sm_resp"].([]any)
		if nack.Step != "nack" || nack.Topic != "sms.event" || !strings.Contains(nack.Detail, "ESME_RINVDSTADR") || len(resps) != 1 ||
			resps[0].(map[string]any)["status"] != "ESME_RINVDSTADR" || nt.Steps[5].Step != "nack" || nt.Steps[5].Topic != "app_a.event" {
			t.Fatalf("nack trace:\n%s", out)
		}
		return true
	})

	// Without -c: the cluster's message topics, and the same steps.
	out, _, code = longCLI(t, "trace", "-brokers", d.b.KafkaAddr(), "-registry", d.b.RegistryURL(), "-json", in.MessageID)
	var bare history.Timeline
	if code != 0 || json.Unmarshal([]byte(out), &bare) != nil || len(bare.Steps) != len(want) {
		t.Errorf("trace without -c: %d\n%s", code, out)
	}

	// Unknown ids and ranges that miss the message are errors.
	_, stderr, code = longCLI(t, "trace", "-c", d.cfgFile, "no-such-message-id")
	if code != 1 || !strings.Contains(stderr, "message not found: no record of no-such-message-id") {
		t.Errorf("unknown id: %d %q", code, stderr)
	}
	_, stderr, code = longCLI(t, "trace", "-c", d.cfgFile, "-since", "2000-01-01T00:00:00Z", "-until", "2000-01-02T00:00:00Z", in.MessageID)
	if code != 1 || !strings.Contains(stderr, "message not found") || !strings.Contains(stderr, "2000-01-01T00:00:00Z") {
		t.Errorf("range before the message: %d %q", code, stderr)
	}
	_, stderr, code = longCLI(t, "trace", "-c", d.cfgFile)
	if code != 2 || !strings.Contains(stderr, "exactly one message id") {
		t.Errorf("no id: %d %q", code, stderr)
	}
	_, stderr, code = longCLI(t, "trace", "-c", d.cfgFile, "-topics", "nope.inbound", in.MessageID)
	if code != 1 || !strings.Contains(stderr, "nope.inbound") {
		t.Errorf("missing topic: %d %q", code, stderr)
	}
}

// liveOffsets returns the committed offsets of every consumer group whose
// name does not start with one of skip.
func (d *smsDeployment) liveOffsets(t *testing.T, skip ...string) map[string]map[string]map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(d.cl)
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]map[int32]int64{}
	for _, g := range groups.Groups() {
		shadow := false
		for _, s := range skip {
			shadow = shadow || strings.HasPrefix(g, s)
		}
		if shadow {
			continue
		}
		offs, err := adm.FetchOffsets(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]map[int32]int64{}
		offs.Each(func(o kadm.OffsetResponse) {
			if m[o.Topic] == nil {
				m[o.Topic] = map[int32]int64{}
			}
			m[o.Topic][o.Partition] = o.At
		})
		out[g] = m
	}
	return out
}

// caughtUp reports whether group has committed the end of topic.
func (d *smsDeployment) caughtUp(t *testing.T, group, topic string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(d.cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	ok := true
	ends.Each(func(e kadm.ListedOffset) {
		if e.Offset == 0 {
			return
		}
		c, found := offs.Lookup(topic, e.Partition)
		ok = ok && found && c.At >= e.Offset
	})
	return ok
}

// TestReplay: a time range of sms.inbound replayed into a shadow keyword
// router lands on the shadow's side topics (and only that range), the live
// consumer groups' offsets are untouched; copies to a topic respect the
// range; copying onto a topic a transport reads, and shadowing a transport,
// are refused without their flags.
func TestReplay(t *testing.T) {
	d := startSMSDeployment(t)
	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	d.mo(t, "27761230011", "hi a1")
	d.mo(t, "27761230012", "hi a2")
	testcluster.WaitFor(t, 60*time.Second, "batch A on sms.inbound", func() bool { return len(d.messages(t, "sms.inbound")) == 2 })
	boundary := time.Now().Add(5 * time.Millisecond)
	time.Sleep(20 * time.Millisecond) // past the boundary, at millisecond resolution
	d.mo(t, "27761230013", "hi b1")
	d.mo(t, "27761230014", "hi b2")
	var inbound map[string]*schemas.UserMessage
	testcluster.WaitFor(t, 60*time.Second, "batch B on sms.inbound", func() bool {
		inbound = d.messages(t, "sms.inbound")
		return len(inbound) == 4
	})
	testcluster.WaitFor(t, 90*time.Second, "the live workers to commit everything, delivery reports included", func() bool {
		return d.count(t, "app_a.event") == 8 &&
			d.caughtUp(t, "keywords", "sms.inbound") && d.caughtUp(t, "app_a", "app_a.inbound") &&
			d.caughtUp(t, "transport.sms", "sms.outbound") && d.caughtUp(t, "keywords", "app_a.outbound") &&
			d.caughtUp(t, "keywords", "sms.event") && d.caughtUp(t, "app_a", "app_a.event")
	})
	before := d.liveOffsets(t, "shadow")
	to := boundary.UTC().Format(time.RFC3339Nano)

	// A shadow keyword router over batch A.
	out, stderr, code := longCLI(t, "replay", "-c", d.cfgFile, "-transport", "sms", "-kind", "inbound", "-from", start, "-to", to, "-into-worker", "keywords", "-output-prefix", "shadow.")
	if code != 0 {
		t.Fatalf("replay into keywords: %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("replay output:\n%s\nstderr (tail): %s", out, tail(stderr, 600))
	if !strings.Contains(out, "replayed 2 records") || !strings.Contains(out, "shadow.app_a.inbound") || !strings.Contains(stderr, "processing [") {
		t.Errorf("replay output:\n%s\n%s", out, stderr)
	}
	shadowIn := d.messages(t, "shadow.app_a.inbound")
	if len(shadowIn) != 2 || shadowIn["hi a1"] == nil || shadowIn["hi a2"] == nil {
		t.Fatalf("shadow.app_a.inbound holds %v, want batch A only", keys(shadowIn))
	}
	if shadowIn["hi a1"].MessageID != inbound["hi a1"].MessageID {
		t.Errorf("the shadow routed a different message: %s vs %s", shadowIn["hi a1"].MessageID, inbound["hi a1"].MessageID)
	}
	if copied := d.messages(t, "shadow.sms.inbound"); len(copied) != 2 {
		t.Errorf("shadow.sms.inbound holds %v", keys(copied))
	}
	after := d.liveOffsets(t, "shadow")
	if !reflect.DeepEqual(before, after) {
		t.Errorf("live consumer groups moved:\nbefore %v\nafter  %v", before, after)
	}
	if len(d.messages(t, "app_a.inbound")) != 4 {
		t.Error("the live app_a.inbound changed")
	}
	all := d.liveOffsets(t)
	if _, ok := all["shadow.keywords"]; !ok {
		t.Errorf("no shadow.keywords group among %v", keys(all))
	}

	// The same prefix again: refused, the shadow topics hold records.
	_, stderr, code = longCLI(t, "replay", "-c", d.cfgFile, "-topic", "sms.inbound", "-from", start, "-into-worker", "keywords")
	if code != 1 || !strings.Contains(stderr, "shadow.sms.inbound already holds 2 records") {
		t.Errorf("second replay into the same prefix: %d %q", code, tail(stderr, 400))
	}

	// A shadow echo application over all of app_a's inputs replies to
	// all four messages on its side topic.
	out, stderr, code = longCLI(t, "replay", "-c", d.cfgFile, "-from", start, "-into-worker", "app_a", "-output-prefix", "shadow2.", "-quiet")
	if code != 0 || !strings.Contains(out, "replayed 12 records") {
		t.Fatalf("replay into app_a: %d\n%s\n%s", code, out, tail(stderr, 2000))
	}
	replies := d.messages(t, "shadow2.app_a.outbound")
	for _, c := range []string{"hi a1", "hi a2", "hi b1", "hi b2"} {
		r := replies[c]
		if r == nil || r.InReplyTo == nil || *r.InReplyTo != inbound[c].MessageID {
			t.Errorf("shadow reply to %q: %+v", c, r)
		}
	}
	if !reflect.DeepEqual(before, d.liveOffsets(t, "shadow")) {
		t.Error("live consumer groups moved after the second replay")
	}

	// A plain copy of batch B.
	out, stderr, code = longCLI(t, "replay", "-c", d.cfgFile, "-topic", "sms.inbound", "-from", to, "-to-topic", "copy.sms.inbound")
	if code != 0 || !strings.Contains(out, "copied 2 records of sms.inbound") {
		t.Fatalf("copy: %d %q %q", code, out, stderr)
	}
	copied := d.messages(t, "copy.sms.inbound")
	if len(copied) != 2 || copied["hi b1"] == nil || copied["hi b2"] == nil {
		t.Errorf("copy.sms.inbound holds %v, want batch B", keys(copied))
	}
	// Each copy names its original and carries its time.
	{
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		orig := map[string]*kgo.Record{}
		spans, err := history.Spans(ctx, kadm.NewClient(d.cl), []string{"sms.inbound", "copy.sms.inbound"}, history.Range{})
		if err != nil {
			t.Fatal(err)
		}
		var copies []*kgo.Record
		if err := history.Read(ctx, d.cl, spans, history.ReadOptions{}, func(r *kgo.Record) error {
			if r.Topic == "sms.inbound" {
				orig[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = r
			} else {
				copies = append(copies, r)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, c := range copies {
			h := map[string]string{}
			for _, kv := range c.Headers {
				h[kv.Key] = string(kv.Value)
			}
			o := orig[h["vumi.replay.source"]]
			if o == nil || !bytes.Equal(o.Value, c.Value) || string(o.Key) != string(c.Key) || h["vumi.replay.timestamp"] != o.Timestamp.UTC().Format(time.RFC3339Nano) {
				t.Errorf("copy at %d with headers %v does not match its original %v", c.Offset, h, o)
			}
		}
	}
	out, _, code = longCLI(t, "tail", "-c", d.cfgFile, "-topic", "copy.sms.inbound", "-from-beginning", "-meta")
	if code != 0 || strings.Count(out, "\n") != 2 {
		t.Errorf("tail of the copy: %d %q", code, out)
	}

	// Refusals.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-topic", "sms.outbound", "-to-topic", "sms.outbound"}, 1, "onto itself"},
		{[]string{"-topic", "app_a.outbound", "-to-topic", "sms.outbound"}, 1, "consumed by smpp_transport"},
		{[]string{"-transport", "sms", "-kind", "outbound", "-into-worker", "smpp_transport"}, 1, "pass -allow-side-effects"},
		{[]string{"-topic", "sms.event", "-into-worker", "app_a"}, 1, "does not consume sms.event"},
		{[]string{"-topic", "sms.inbound", "-into-worker", "nobody"}, 1, `no worker named "nobody"`},
		{[]string{"-topic", "sms.inbound"}, 2, "give one of -into-worker"},
		{[]string{"-transport", "sms", "-kind", "sideways", "-to-topic", "x"}, 2, "-kind must be"},
	} {
		args := append([]string{"replay", "-c", d.cfgFile, "-from", start}, tc.args...)
		_, stderr, code := longCLI(t, args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("vumi %v: %d %q; want %d mentioning %q", tc.args, code, tail(stderr, 400), tc.code, tc.want)
		}
	}
	// Without -c the consumer groups' offsets tell which topics are live.
	_, stderr, code = longCLI(t, "replay", "-brokers", d.b.KafkaAddr(), "-registry", d.b.RegistryURL(), "-from", start, "-topic", "app_a.outbound", "-to-topic", "sms.outbound")
	if code != 1 || !strings.Contains(stderr, "sms.outbound is read by the consumer group(s) transport.sms") {
		t.Errorf("copy into a live topic without -c: %d %q", code, tail(stderr, 400))
	}
	_, stderr, code = longCLI(t, "replay", "-c", d.cfgFile, "-topic", "sms.inbound", "-to-topic", "x")
	if code != 2 || !strings.Contains(stderr, "-from is required") {
		t.Errorf("no -from: %d %q", code, stderr)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
