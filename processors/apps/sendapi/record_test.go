package sendapi

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/vumi-kafka/vumi/schemas"
)

// slowAdd is the record update by encoding/json: the reference addEvent's
// splicing must agree with.
func slowAdd(t testing.TB, cur []byte, er EventRecord, e *schemas.Event) Record {
	t.Helper()
	var rec Record
	if err := json.Unmarshal(cur, &rec); err != nil {
		t.Fatalf("record %s: %v", cur, err)
	}
	rec.Events = append(rec.Events, er)
	rec.Status = statusAfter(rec.Status, e)
	// As JSON holds it (invalid UTF-8 replaced).
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var out Record
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func event(typ schemas.EventType, status schemas.DeliveryStatus, reason string) (*schemas.Event, EventRecord) {
	e := &schemas.Event{EventType: typ}
	er := EventRecord{EventType: string(typ), Timestamp: "2026-11-22 09:00:00.000000"}
	if status != "" {
		e.DeliveryStatus = &status
		er.DeliveryStatus = string(status)
	}
	if reason != "" {
		e.NackReason = &reason
		er.NackReason = reason
	}
	return e, er
}

func checkAdd(t testing.TB, cur []byte, er EventRecord, e *schemas.Event) []byte {
	t.Helper()
	want := slowAdd(t, cur, er, e)
	got, err := addEvent(cur, &er, e)
	if err != nil {
		t.Fatalf("addEvent(%s): %v", cur, err)
	}
	var rec Record
	if err := json.Unmarshal(got, &rec); err != nil {
		t.Fatalf("addEvent(%s) = %s: not JSON: %v", cur, got, err)
	}
	if !reflect.DeepEqual(rec, want) {
		t.Fatalf("addEvent(%s) = %+v, want %+v", cur, rec, want)
	}
	return got
}

func TestRecordEvents(t *testing.T) {
	cur := newRecordJSON("id-1", "smpp", `+27"76\1<2>`, "2026-11-22 09:00:00.000000")
	var rec Record
	if err := json.Unmarshal(cur, &rec); err != nil {
		t.Fatalf("new record %s: %v", cur, err)
	}
	if want := (Record{MessageID: "id-1", TransportName: "smpp", ToAddr: `+27"76\1<2>`, Submitted: "2026-11-22 09:00:00.000000", Events: []EventRecord{}, Status: "submitted"}); !reflect.DeepEqual(rec, want) {
		t.Fatalf("new record = %+v, want %+v", rec, want)
	}
	ack, ackR := event(schemas.EventAck, "", "")
	cur = checkAdd(t, cur, ackR, ack)
	// A nack reason that looks like the status marker, quotes and all.
	nack, nackR := event(schemas.EventNack, "", `x],"status":"delivered"}`)
	cur = checkAdd(t, cur, nackR, nack)
	dr, drR := event(schemas.EventDeliveryReport, schemas.DeliveryStatus("delivered"), "")
	cur = checkAdd(t, cur, drR, dr)
	if err := json.Unmarshal(cur, &rec); err != nil || rec.Status != "delivered" || len(rec.Events) != 3 {
		t.Fatalf("after ack, nack and report: %s (%v)", cur, err)
	}

	// The layout of older versions (status before events) is read with
	// encoding/json and written back in the new one.
	old := []byte(`{"message_id":"id-2","transport_name":"smpp","to_addr":"+1","submitted_at":"2026-11-22 09:00:00.000000","status":"submitted","events":[]}`)
	got := checkAdd(t, old, ackR, ack)
	checkAdd(t, got, drR, dr)

	if _, err := addEvent([]byte(`{"status":`), &ackR, ack); err == nil {
		t.Fatal("addEvent of a corrupt record: no error")
	}
}

// FuzzRecordEvents adds events with arbitrary texts to records with
// arbitrary fields; the spliced JSON must decode to what encoding/json
// makes of the same update.
func FuzzRecordEvents(f *testing.F) {
	f.Add("id", "+27761234567", "reason", "delivered", "sent-1")
	f.Add(`"`, `\`, `],"status":"x"}`, "failed", "\u2028<&>")
	f.Add("", "", "", "", "")
	f.Fuzz(func(t *testing.T, id, to, reason, status, sent string) {
		cur := newRecordJSON(id, "smpp", to, "2026-11-22 09:00:00.000000")
		e, er := event(schemas.EventNack, "", reason)
		cur = checkAdd(t, cur, er, e)
		e, er = event(schemas.EventDeliveryReport, schemas.DeliveryStatus(status), "")
		er.SentMessageID = sent
		checkAdd(t, cur, er, e)
	})
}
