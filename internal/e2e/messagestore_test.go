package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// storeAPI talks to a message_store worker's HTTP API.
type storeAPI struct {
	t    testing.TB
	base string
}

func (a storeAPI) do(method, path string, body any, out any) int {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if s, ok := out.(*string); ok {
			*s = string(b)
		} else if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// waitReady waits until the store's API answers its health check.
func (a storeAPI) waitReady() storeAPI {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(a.base + "/health/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return a
			}
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("message store API at %s not ready: %v", a.base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type statusView struct {
	Counts map[string]int64 `json:"counts"`
	Latest map[string]int64 `json:"latest"`
}

// waitStatus polls a batch's status until want holds for every key of
// counts ("latest.x" keys check latest).
func (a storeAPI) waitStatus(batch string, want map[string]int64) statusView {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var st statusView
	for {
		a.do("GET", "/batches/"+batch+"/status", nil, &st)
		ok := true
		for k, v := range want {
			got := st.Counts[k]
			if name, isLatest := strings.CutPrefix(k, "latest."); isLatest {
				got = st.Latest[name]
			}
			ok = ok && got == v
		}
		if ok {
			return st
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("batch %s status %+v, want %v", batch, st, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a storeAPI) createBatch(tags ...[2]string) string {
	a.t.Helper()
	var b struct {
		ID string `json:"batch_id"`
	}
	if code := a.do("POST", "/batches", map[string]any{"tags": tags, "metadata": map[string]any{"campaign": "test"}}, &b); code != 201 {
		a.t.Fatalf("create batch: %d", code)
	}
	return b.ID
}

// jsonLines returns the message ids of a JSON-lines batch resource.
func (a storeAPI) jsonLines(path, idField string) []string {
	a.t.Helper()
	var body string
	if code := a.do("GET", path, nil, &body); code != 200 {
		a.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			a.t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		ids = append(ids, fmt.Sprint(m[idField]))
	}
	return ids
}

// produceTo publishes user messages or events to a topic as a producer
// outside the deployment would.
func (c *cluster) produceTo(t *testing.T, topic string, vals ...any) {
	t.Helper()
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, topic); err != nil && !isExists(err) {
		t.Fatal(err)
	}
	for _, v := range vals {
		var b, key []byte
		switch x := v.(type) {
		case *schemas.UserMessage:
			if err := c.Codecs.UserMessage.Register(ctx, topic); err != nil {
				t.Fatal(err)
			}
			b, err = c.Codecs.UserMessage.Encode(x)
			key = topology.UserMessageKey(topic, x)
		case *schemas.Event:
			if err := c.Codecs.Event.Register(ctx, topic); err != nil {
				t.Fatal(err)
			}
			b, err = c.Codecs.Event.Encode(x)
			key = topology.EventKey(x)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: key, Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTaggedMessagesLandInTheirBatch: an application with TaggingMiddleware
// and StoringMiddleware behind a devnull transport; inbound messages to the
// batch's short code, the replies and their acks and delivery reports are
// all in the batch; others are not.
func TestTaggedMessagesLandInTheirBatch(t *testing.T) {
	c := startCluster(t)
	port := freePort(t)
	run(t, c, fmt.Sprintf(`
  - name: devnull
    kind: devnull
    transport_name: dn
    ack_rate: 1.0
    failure_rate: 0.0
    reply_rate: 0.0
  - name: echo
    kind: failing
    transport_name: dn
    middleware:
      - tagger: vumi.middleware.tagger.TaggingMiddleware
      - store: vumi.middleware.message_storing.StoringMiddleware
    tagger:
      incoming:
        addr_pattern: '^(\d+)$'
        tagpool_template: shortcode
        tagname_template: 'sc-\1'
      outgoing:
        tagname_pattern: '^sc-(\d+)$'
        msg_template:
          from_addr: '\1'
    store:
      store_prefix: history
  - name: store
    kind: message_store
    connectors: [history]
    twisted_endpoint: tcp:port=%d:interface=127.0.0.1
`, port))
	api := storeAPI{t, fmt.Sprintf("http://127.0.0.1:%d", port)}.waitReady()
	batch := api.createBatch([2]string{"shortcode", "sc-1234"})
	var in []*schemas.UserMessage
	for i := range 3 {
		m := inbound(fmt.Sprintf("+2776000000%d", i), "hello")
		m.ToAddr = schemas.String("1234")
		in = append(in, m)
	}
	other := inbound("+27760000009", "elsewhere")
	other.ToAddr = schemas.String("5678")
	c.produceTo(t, "dn.inbound", in[0], in[1], other, in[2])

	api.waitStatus(batch, map[string]int64{"inbound": 3, "sent": 3, "acked": 3, "delivered": 3, "latest.delivered": 3, "latest.sent": 0})
	inIDs := api.jsonLines("/batches/"+batch+"/inbound.json", "message_id")
	if len(inIDs) != 3 {
		t.Errorf("inbound of the batch: %v", inIDs)
	}
	for _, id := range inIDs {
		if id == other.MessageID {
			t.Errorf("message to another short code is in the batch")
		}
	}
	outIDs := api.jsonLines("/"+batch+"/outbound.json", "message_id") // Vumi's path
	if len(outIDs) != 3 {
		t.Fatalf("outbound of the batch: %v", outIDs)
	}
	if evs := api.jsonLines("/batches/"+batch+"/events.json", "event_id"); len(evs) != 6 {
		t.Errorf("events of the batch: %v", evs)
	}
	var mv struct {
		Message        map[string]any `json:"message"`
		DeliveryStatus struct {
			Status string `json:"status"`
		} `json:"delivery_status"`
		Events []any `json:"events"`
	}
	api.do("GET", "/messages/"+outIDs[0], nil, &mv)
	if mv.DeliveryStatus.Status != "delivered" || len(mv.Events) != 2 || mv.Message["from_addr"] != "1234" {
		t.Errorf("outbound message view: %+v", mv)
	}
	var csv string
	api.do("GET", "/batches/"+batch+"/events.csv", nil, &csv)
	if !strings.HasPrefix(csv, "timestamp,event_id,status,user_message_id,nack_reason\n") || strings.Count(csv, "delivery_report.delivered") != 3 {
		t.Errorf("events.csv:\n%s", csv)
	}
}

// TestStoreStatusCountsAndRestart: counts follow acks and delivery reports
// as they arrive; batches, statuses and tag pools answer the same after
// the store restarts, and after its local index is lost.
func TestStoreStatusCountsAndRestart(t *testing.T) {
	c := startCluster(t)
	port := freePort(t)
	workers := fmt.Sprintf(`
  - name: store
    kind: message_store
    connectors: [sms]
    twisted_endpoint: tcp:port=%d:interface=127.0.0.1
    username: ops
    password: s3cret
`, port)
	d := run(t, c, workers)
	api := storeAPI{t, fmt.Sprintf("http://ops:s3cret@127.0.0.1:%d", port)}.waitReady()
	if code := (storeAPI{t, fmt.Sprintf("http://127.0.0.1:%d", port)}).do("GET", "/batches", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d", code)
	}
	batch := api.createBatch([2]string{"pool", "t1"})
	var out []*schemas.UserMessage
	for i := range 4 {
		m := inbound("1234", "out")
		m.ToAddr = schemas.String(fmt.Sprintf("+2782000000%d", i))
		middleware.SetTag(m, middleware.Tag{Pool: "pool", Name: "t1"})
		out = append(out, m)
	}
	c.produceTo(t, "sms.outbound", out[0], out[1], out[2], out[3])
	api.waitStatus(batch, map[string]int64{"sent": 4, "latest.sent": 4})

	ev := func(typ schemas.EventType, msg string, st schemas.DeliveryStatus) *schemas.Event {
		e := &schemas.Event{EventID: schemas.GenerateID(), EventType: typ, UserMessageID: msg, Timestamp: schemas.Now()}
		switch typ {
		case schemas.EventAck:
			e.SentMessageID = schemas.String("smsc-" + msg)
		case schemas.EventNack:
			e.NackReason = schemas.String("throttled")
		default:
			e.DeliveryStatus = &st
		}
		return e
	}
	c.produceTo(t, "sms.event", ev(schemas.EventAck, out[0].MessageID, ""), ev(schemas.EventAck, out[1].MessageID, ""))
	api.waitStatus(batch, map[string]int64{"acked": 2, "latest.acked": 2, "latest.sent": 2})
	c.produceTo(t, "sms.event", ev(schemas.EventNack, out[2].MessageID, ""),
		ev(schemas.EventDeliveryReport, out[0].MessageID, schemas.DeliveryDelivered),
		ev(schemas.EventDeliveryReport, out[1].MessageID, schemas.DeliveryPending))
	api.waitStatus(batch, map[string]int64{"nacked": 1, "delivered": 1, "pending": 1, "latest.acked": 0, "latest.nacked": 1, "latest.delivered": 1, "latest.pending": 1, "latest.sent": 1})
	c.produceTo(t, "sms.event", ev(schemas.EventDeliveryReport, out[1].MessageID, schemas.DeliveryFailed))
	want := map[string]int64{"sent": 4, "acked": 2, "nacked": 1, "delivered": 1, "pending": 1, "failed": 1,
		"latest.sent": 1, "latest.nacked": 1, "latest.delivered": 1, "latest.failed": 1, "latest.pending": 0}
	before := api.waitStatus(batch, want)

	// Tag pools.
	api.do("POST", "/tagpools/pool/declare", map[string]any{"tags": []string{"t1", "t2"}}, nil)
	var acq struct {
		Tag []string `json:"tag"`
	}
	if code := api.do("POST", "/tagpools/pool/acquire", map[string]any{"owner": "alice"}, &acq); code != 200 || fmt.Sprint(acq.Tag) != "[pool t1]" {
		t.Fatalf("acquire: %d %v", code, acq.Tag)
	}
	var pool map[string]any
	api.do("GET", "/tagpools/pool", nil, &pool)
	wantPool := fmt.Sprint(pool)

	answers := func() string {
		var b, s, m string
		api.do("GET", "/batches/"+batch, nil, &b)
		api.do("GET", "/batches/"+batch+"/outbound.json", nil, &s)
		api.do("GET", "/messages/"+out[1].MessageID, nil, &m)
		return b + s + m
	}
	wantAnswers := answers()
	d.stop()
	d = run(t, c, workers)
	api.waitReady()
	if got := api.waitStatus(batch, want); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("status after restart %v, before %v", got, before)
	}
	if got := answers(); got != wantAnswers {
		t.Errorf("answers after restart:\n%s\nbefore:\n%s", got, wantAnswers)
	}
	api.do("GET", "/tagpools/pool", nil, &pool)
	if fmt.Sprint(pool) != wantPool {
		t.Errorf("pool after restart %v, before %s", pool, wantPool)
	}
	// The topics are the store: without its local index it rebuilds the
	// same answers.
	d.stop()
	if err := os.RemoveAll(filepath.Join(c.State, "store")); err != nil {
		t.Fatal(err)
	}
	run(t, c, workers)
	api.waitReady()
	if got := api.waitStatus(batch, want); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("status after rebuild %v, before %v", got, before)
	}
	if got := answers(); got != wantAnswers {
		t.Errorf("answers after rebuild:\n%s\nbefore:\n%s", got, wantAnswers)
	}
	var owned struct {
		Tags [][]string `json:"tags"`
	}
	api.do("GET", "/owned_tags?owner=alice", nil, &owned)
	if fmt.Sprint(owned.Tags) != "[[pool t1]]" {
		t.Errorf("owned by alice: %v", owned.Tags)
	}
}
