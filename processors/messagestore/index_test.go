package messagestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/processors/messagestore"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/processors/tagpool"
	"github.com/vumi-kafka/vumi/schemas"
)

type feed struct {
	t      testing.TB
	codecs *schemas.Codecs
	off    map[messagestore.Source]int64
}

func newFeed(t testing.TB) *feed {
	c := schemas.NewCodecs(nil)
	c.UserMessage.SetID(1)
	c.Event.SetID(2)
	return &feed{t: t, codecs: c, off: map[messagestore.Source]int64{}}
}

func (f *feed) rec(src messagestore.Source, v []byte) messagestore.Record {
	o := f.off[src]
	f.off[src]++
	return messagestore.Record{Source: src, Topic: fmt.Sprint("t", int(src)), Offset: o, Value: v}
}

func (f *feed) msg(src messagestore.Source, m *schemas.UserMessage) messagestore.Record {
	v, err := f.codecs.UserMessage.Encode(m)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.rec(src, v)
}

func (f *feed) event(e *schemas.Event) messagestore.Record {
	v, err := f.codecs.Event.Encode(e)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.rec(messagestore.SourceEvent, v)
}

func (f *feed) batch(b *messagestore.Batch) messagestore.Record {
	v, _ := json.Marshal(b)
	return f.rec(messagestore.SourceBatches, v)
}

func tagged(id string, ts time.Time, pool, tag string) *schemas.UserMessage {
	m := &schemas.UserMessage{MessageID: id, Timestamp: ts, ToAddr: schemas.String("+2776"), FromAddr: schemas.String("1234")}
	if pool != "" {
		middleware.SetTag(m, middleware.Tag{Pool: pool, Name: tag})
	}
	return m
}

func ev(id, msg string, ts time.Time, typ schemas.EventType, status schemas.DeliveryStatus) *schemas.Event {
	e := &schemas.Event{EventID: id, UserMessageID: msg, EventType: typ, Timestamp: ts}
	switch typ {
	case schemas.EventAck:
		e.SentMessageID = schemas.String("s-" + msg)
	case schemas.EventNack:
		e.NackReason = schemas.String("no")
	default:
		e.DeliveryStatus = &status
	}
	return e
}

func TestIndexBatchesAndCounts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := newFeed(t)
	ix, err := messagestore.OpenIndex(dir, f.codecs)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	done := at(100)
	apply := func(recs ...messagestore.Record) {
		t.Helper()
		if _, skipped, err := ix.Apply(ctx, recs); err != nil || skipped != 0 {
			t.Fatalf("apply: %v (skipped %d)", err, skipped)
		}
	}
	apply(
		f.batch(&messagestore.Batch{ID: "b1", Tags: []tagpool.Tag{{Pool: "pool", Name: "t1"}}, CreatedAt: at(0), DoneAt: &done}),
		f.batch(&messagestore.Batch{ID: "b2", Tags: []tagpool.Tag{{Pool: "pool", Name: "t1"}}, CreatedAt: at(100)}),
		f.batch(&messagestore.Batch{ID: "b3", CreatedAt: at(0)}),
	)
	explicit := tagged("m5", at(5), "", "")
	explicit.HelperMetadata = schemas.Metadata{"batch_id": "b3"}
	apply(
		f.msg(messagestore.SourceOutbound, tagged("m1", at(10), "pool", "t1")),
		f.msg(messagestore.SourceOutbound, tagged("m1", at(10), "pool", "t1")), // duplicate
		f.msg(messagestore.SourceInbound, tagged("m2", at(20), "pool", "t1")),
		f.msg(messagestore.SourceOutbound, tagged("m3", at(150), "pool", "t1")), // after b1 is done: b2
		f.msg(messagestore.SourceOutbound, tagged("m4", at(30), "pool", "other")),
		f.msg(messagestore.SourceOutbound, explicit),
		f.event(ev("e1", "m1", at(11), schemas.EventAck, "")),
		f.event(ev("e1", "m1", at(11), schemas.EventAck, "")), // duplicate
		f.event(ev("e2", "m1", at(12), schemas.EventDeliveryReport, schemas.DeliveryDelivered)),
		f.event(ev("e3", "m3", at(151), schemas.EventNack, "")),
	)
	// An event before its message: counted once the message arrives.
	apply(f.event(ev("e4", "m6", at(41), schemas.EventDeliveryReport, schemas.DeliveryFailed)))
	apply(f.msg(messagestore.SourceOutbound, tagged("m6", at(40), "pool", "t1")))
	// An older event arriving late does not replace the latest status.
	apply(f.event(ev("e5", "m6", at(40), schemas.EventAck, "")))

	check := func(ix *messagestore.Index) {
		t.Helper()
		for _, c := range []struct {
			batch string
			want  map[string]int64
		}{
			{"b1", map[string]int64{"sent": 2, "inbound": 1, "ack": 2, "delivery_report": 2, "delivery_report.delivered": 1, "delivery_report.failed": 1, "latest.delivered": 1, "latest.failed": 1}},
			{"b2", map[string]int64{"sent": 1, "nack": 1, "latest.nacked": 1}},
			{"b3", map[string]int64{"sent": 1, "latest.sent": 1}},
		} {
			got, err := ix.Counts(c.batch)
			if err != nil {
				t.Fatal(err)
			}
			for k := range got {
				if got[k] == 0 {
					delete(got, k)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("%s counts = %v, want %v", c.batch, got, c.want)
			}
		}
		keys := func(batch, idx string, start, end time.Time) []string {
			var out []string
			if err := ix.BatchKeys(batch, idx, start, end, func(id string) bool { out = append(out, id); return true }); err != nil {
				t.Fatal(err)
			}
			return out
		}
		for _, c := range []struct {
			batch, idx string
			start, end time.Time
			want       string
		}{
			{"b1", "o", time.Time{}, time.Time{}, "[m1 m6]"},
			{"b1", "i", time.Time{}, time.Time{}, "[m2]"},
			{"b1", "e", time.Time{}, time.Time{}, "[e1 e2 e5 e4]"},
			{"b1", "o", at(20), time.Time{}, "[m6]"},
			{"b1", "o", time.Time{}, at(20), "[m1]"},
			{"b2", "o", time.Time{}, time.Time{}, "[m3]"},
		} {
			if got := fmt.Sprint(keys(c.batch, c.idx, c.start, c.end)); got != c.want {
				t.Errorf("%s/%s [%v,%v) = %s, want %s", c.batch, c.idx, c.start, c.end, got, c.want)
			}
		}
		st, ok, err := ix.Status("m1")
		if err != nil || !ok || st.Status != "delivered" || st.EventID != "e2" {
			t.Errorf("status m1 = %+v %v %v", st, ok, err)
		}
		if st, _, _ := ix.Status("m6"); st.Status != "failed" {
			t.Errorf("status m6 = %+v", st)
		}
		if evs, _ := ix.MessageEvents("m1"); fmt.Sprint(evs) != "[e1 e2]" {
			t.Errorf("events of m1 = %v", evs)
		}
		if m, ok, _ := ix.Message("m4"); !ok || len(m.Batches) != 0 || m.Direction != "outbound" {
			t.Errorf("m4 = %+v %v", m, ok)
		}
		if cur, ok := ix.CurrentBatch(tagpool.Tag{Pool: "pool", Name: "t1"}, at(200)); !ok || cur != "b2" {
			t.Errorf("current batch = %q %v", cur, ok)
		}
	}
	check(ix)
	offs, _ := ix.Offsets()
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	// The same answers after a restart, and the offsets to resume from.
	ix, err = messagestore.OpenIndex(dir, f.codecs)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	check(ix)
	if offs2, _ := ix.Offsets(); fmt.Sprint(offs2) != fmt.Sprint(offs) || offs["t3"][0] != 6 {
		t.Errorf("offsets after restart %v, before %v", offs2, offs)
	}
	// Undecodable records are skipped, not fatal.
	if _, skipped, err := ix.Apply(ctx, []messagestore.Record{f.rec(messagestore.SourceInbound, []byte("junk")), f.rec(messagestore.SourceBatches, []byte("{"))}); err != nil || skipped != 2 {
		t.Errorf("junk: skipped %d, %v", skipped, err)
	}
}

func TestIndexTagpool(t *testing.T) {
	f := newFeed(t)
	ix, err := messagestore.OpenIndex(t.TempDir(), f.codecs)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	cmd := func(c tagpool.Command) messagestore.Record {
		b, _ := json.Marshal(c)
		return f.rec(messagestore.SourceTagpool, b)
	}
	res, _, err := ix.Apply(context.Background(), []messagestore.Record{
		cmd(tagpool.Command{ID: "1", Op: tagpool.OpDeclare, Pool: "p", Tags: []string{"a", "b"}}),
		cmd(tagpool.Command{ID: "2", Op: tagpool.OpAcquire, Pool: "p"}),
		cmd(tagpool.Command{ID: "3", Op: tagpool.OpAcquire, Pool: "p"}),
		cmd(tagpool.Command{ID: "4", Op: tagpool.OpAcquire, Pool: "p"}),
		cmd(tagpool.Command{ID: "5", Op: tagpool.OpRelease, Pool: "p", Tag: "a"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res["2"].Tag == nil || res["2"].Tag.Name != "a" || res["3"].Tag.Name != "b" || res["4"].Tag != nil {
		t.Errorf("results %+v", res)
	}
	p, ok, err := ix.Pool("p")
	if err != nil || !ok || fmt.Sprint(p.Free) != "[a]" || len(p.InUse) != 1 {
		t.Errorf("pool %+v %v %v", p, ok, err)
	}
}
