package sendapi

import (
	"bytes"
	"encoding/json"

	"github.com/vumi-kafka/vumi/schemas"
)

// The status table's values are Record JSON written here by hand, with
// the events array before the status, so that an event (two per message:
// ack and delivery report) is added by splicing bytes instead of decoding
// and re-encoding the record. Records in another layout (older versions
// put status first) take the encoding/json path once and are written in
// this layout.

// newRecordJSON is the record of a message just submitted.
func newRecordJSON(id, transport, to, submitted string) []byte {
	b := make([]byte, 0, 160+len(id)+len(transport)+len(to))
	b = append(b, `{"message_id":`...)
	b = schemas.AppendJSONString(b, id)
	b = append(b, `,"transport_name":`...)
	b = schemas.AppendJSONString(b, transport)
	b = append(b, `,"to_addr":`...)
	b = schemas.AppendJSONString(b, to)
	b = append(b, `,"submitted_at":`...)
	b = schemas.AppendJSONString(b, submitted)
	b = append(b, `,"events":[],"status":"submitted"}`...)
	return b
}

func appendEventJSON(b []byte, er *EventRecord) []byte {
	b = append(b, `{"event_type":`...)
	b = schemas.AppendJSONString(b, er.EventType)
	if er.DeliveryStatus != "" {
		b = append(b, `,"delivery_status":`...)
		b = schemas.AppendJSONString(b, er.DeliveryStatus)
	}
	if er.NackReason != "" {
		b = append(b, `,"nack_reason":`...)
		b = schemas.AppendJSONString(b, er.NackReason)
	}
	if er.SentMessageID != "" {
		b = append(b, `,"sent_message_id":`...)
		b = schemas.AppendJSONString(b, er.SentMessageID)
	}
	b = append(b, `,"timestamp":`...)
	b = schemas.AppendJSONString(b, er.Timestamp)
	return append(b, '}')
}

// statusMarker ends the events array and starts the status. Unescaped
// quotes never occur inside a JSON string, so the last occurrence in a
// record of this layout is the real one.
var statusMarker = []byte(`],"status":"`)

// addEvent returns the record cur with er appended to its events and its
// status folded with e (statusAfter).
func addEvent(cur []byte, er *EventRecord, e *schemas.Event) ([]byte, error) {
	if i := bytes.LastIndex(cur, statusMarker); i > 0 && bytes.HasSuffix(cur, []byte(`"}`)) {
		st := cur[i+len(statusMarker) : len(cur)-2]
		if bytes.IndexByte(st, '"') < 0 && bytes.IndexByte(st, '\\') < 0 {
			b := make([]byte, 0, len(cur)+160)
			b = append(b, cur[:i]...)
			if cur[i-1] != '[' {
				b = append(b, ',')
			}
			b = appendEventJSON(b, er)
			b = append(b, `],"status":`...)
			b = schemas.AppendJSONString(b, statusAfter(string(st), e))
			return append(b, '}'), nil
		}
	}
	var rec Record
	if err := json.Unmarshal(cur, &rec); err != nil {
		return nil, err
	}
	rec.Events = append(rec.Events, *er)
	rec.Status = statusAfter(rec.Status, e)
	return json.Marshal(rec)
}
