package schemas

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// generic decodes JSON into plain values with numbers kept exact.
func generic(t *testing.T, b []byte) any {
	t.Helper()
	v, err := decodeJSONValue(b)
	if err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return v
}

// TestSeedExamplesRoundTrip: the example messages of the Vumi docs parse,
// and JSON -> Avro -> JSON gives back the same JSON.
func TestSeedExamplesRoundTrip(t *testing.T) {
	for _, name := range []string{"seed_inbound_sms.json", "seed_reply.json"} {
		t.Run(name, func(t *testing.T) {
			in := readFixture(t, name)
			m, err := ParseUserMessage(in)
			if err != nil {
				t.Fatal(err)
			}
			// Every field the example gives survives.
			want := generic(t, in).(map[string]any)
			first, err := m.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			got := generic(t, first).(map[string]any)
			for k, v := range want {
				if reflect.DeepEqual(v, map[string]any{}) {
					if got[k] == nil {
						t.Errorf("field %s: missing", k)
					}
					continue
				}
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("field %s = %v, want %v", k, got[k], v)
				}
			}
			// Vumi's defaults are filled in.
			for _, k := range []string{"message_version", "message_type", "timestamp", "session_event", "group", "provider", "routing_metadata", "helper_metadata"} {
				if _, ok := got[k]; !ok {
					t.Errorf("default field %s missing", k)
				}
			}
			// Through Avro and back: identical JSON.
			_, back := roundTrip(t, m)
			second, err := back.(*UserMessage).MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, second) {
				t.Errorf("JSON changed through Avro:\n%s\n%s", first, second)
			}
		})
	}
}

// TestFullVumiJSONLossless: complete Vumi JSON messages, with nested
// metadata, big integers, floats, unknown top-level fields and both
// timestamp forms, come back out of Avro semantically identical.
func TestFullVumiJSONLossless(t *testing.T) {
	cases := []struct {
		file  string
		parse func([]byte) (any, error)
	}{
		{"vumi_full_user_message.json", func(b []byte) (any, error) { return ParseUserMessage(b) }},
		{"vumi_full_event.json", func(b []byte) (any, error) { return ParseEvent(b) }},
		{"vumi_full_status.json", func(b []byte) (any, error) { return ParseStatus(b) }},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			in := readFixture(t, tc.file)
			v, err := tc.parse(in)
			if err != nil {
				t.Fatal(err)
			}
			_, back := roundTrip(t, v)
			out, err := json.Marshal(back)
			if err != nil {
				t.Fatal(err)
			}
			want := generic(t, in).(map[string]any)
			got := generic(t, out).(map[string]any)
			// Timestamps without microseconds come back with them.
			if ts, ok := want["timestamp"].(string); ok && !strings.Contains(ts, ".") {
				want["timestamp"] = ts + ".000000"
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("not lossless:\n got %s\nwant %s", out, in)
			}
		})
	}
}

func TestUserMessageJSONDefaults(t *testing.T) {
	m, err := ParseUserMessage([]byte(`{"to_addr": "+2776", "content": "hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.MessageID) != 32 {
		t.Errorf("generated message_id %q is not 32 hex characters", m.MessageID)
	}
	if m.Timestamp.IsZero() {
		t.Error("timestamp not defaulted")
	}
	if m.FromAddr != nil || m.SessionEvent != nil || m.Extra != nil {
		t.Errorf("unexpected defaults: %#v", m)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name  string
		parse func([]byte) error
		in    string
		want  string
	}{
		{"not json", um, `{"to_addr":`, "invalid JSON"},
		{"not object", um, `[1,2]`, "not a JSON object"},
		{"trailing", um, `{} {}`, "trailing data"},
		{"content number", um, `{"content": 5}`, "field content: must be a string or null, got number"},
		{"bad session event", um, `{"session_event": "continue"}`, `field session_event: invalid session event "continue"`},
		{"bad version", um, `{"message_version": "1"}`, "field message_version: unsupported version 1"},
		{"wrong type", um, `{"message_type": "event"}`, "field message_type: is event, want user_message"},
		{"bad timestamp", um, `{"timestamp": "yesterday"}`, `field timestamp: invalid Vumi timestamp "yesterday"`},
		{"metadata not object", um, `{"helper_metadata": [1]}`, "field helper_metadata: must be an object, got array"},
		{"event no user_message_id", ev, `{"event_type": "ack", "sent_message_id": "x"}`, "field user_message_id: is required"},
		{"ack without sent id", ev, `{"event_type": "ack", "user_message_id": "m"}`, "field sent_message_id: is required for an ack"},
		{"nack without reason", ev, `{"event_type": "nack", "user_message_id": "m"}`, "field nack_reason: is required for a nack"},
		{"bad delivery status", ev, `{"event_type": "delivery_report", "user_message_id": "m", "delivery_status": "sent"}`, "field delivery_status"},
		{"unknown event type", ev, `{"event_type": "read", "user_message_id": "m"}`, `field event_type: unknown event type "read"`},
		{"status level", st, `{"component": "c", "status": "broken", "type": "t", "message": "m"}`, `field status: invalid status "broken"`},
		{"status reasons", st, `{"component": "c", "status": "ok", "type": "t", "message": "m", "reasons": [1]}`, "field reasons[0]: must be a string"},
		{"status missing component", st, `{"status": "ok", "type": "t", "message": "m"}`, "field component: is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func um(b []byte) error { _, err := ParseUserMessage(b); return err }
func ev(b []byte) error { _, err := ParseEvent(b); return err }
func st(b []byte) error { _, err := ParseStatus(b); return err }

func TestReply(t *testing.T) {
	in, err := ParseUserMessage(readFixture(t, "vumi_full_user_message.json"))
	if err != nil {
		t.Fatal(err)
	}
	in.SetEndpoint("ussd")
	r := in.Reply("bye", false)
	if r.To() != in.From() || r.From() != in.To() {
		t.Errorf("addresses not swapped: %q -> %q", r.From(), r.To())
	}
	if r.InReplyTo == nil || *r.InReplyTo != in.MessageID {
		t.Errorf("in_reply_to = %v", r.InReplyTo)
	}
	if r.Session() != SessionClose || r.Endpoint() != "ussd" || r.Transport() != in.Transport() {
		t.Errorf("reply session %q endpoint %q transport %q", r.Session(), r.Endpoint(), r.Transport())
	}
	if r.MessageID == in.MessageID {
		t.Error("reply reuses the message id")
	}
	// The reply's metadata is a copy: changing it leaves the original alone.
	r.TransportMetadata["session_info"] = "changed"
	if in.TransportMetadata["session_info"] == "changed" {
		t.Error("reply shares transport_metadata with the original")
	}
	g := in.ReplyGroup("all", true)
	if g.Session() != "" || g.ToAddr == nil {
		t.Errorf("group reply without a group: to %v session %q", g.ToAddr, g.Session())
	}
	in.Group = String("#chan")
	if g := in.ReplyGroup("all", true); g.ToAddr != nil {
		t.Errorf("group reply to %q, want null", *g.ToAddr)
	}
}

func TestEventStatus(t *testing.T) {
	e, err := ParseEvent(readFixture(t, "vumi_full_event.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Status(); got != "delivery_report.failed" {
		t.Errorf("Status() = %q", got)
	}
}

func TestFailureAndHeartbeatJSON(t *testing.T) {
	f := &Failure{FailureID: "f", Timestamp: ts, Reason: "r", Key: []byte("+2776"), Raw: []byte{0xff, 0x00, 0x01}}
	b, err := f.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	got := generic(t, b).(map[string]any)
	if got["key"] != "+2776" || got["raw_base64"] != "/wAB" || got["raw"] != nil {
		t.Errorf("failure JSON %s", b)
	}
	hb := &Heartbeat{Version: HeartbeatVersion, WorkerName: "w", Timestamp: ts}
	b, err = hb.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if got := generic(t, b).(map[string]any); got["timestamp"] != "2026-11-22 10:30:15.123456" || got["message_type"] != "heartbeat" {
		t.Errorf("heartbeat JSON %s", b)
	}
}

// The JSON of a message's metadata is encoding/json's, whether the fast
// path writes it or (floats, other types) encoding/json does.
func TestMetadataJSONAsEncodingJSON(t *testing.T) {
	for _, m := range []Metadata{
		nil,
		{},
		{"endpoint_name": "default", "n": 3, "ok": true, "none": nil},
		{"smpp_submit_sm_resp": []any{map[string]any{"seq": 2, "status": "ESME_ROK", "message_id": "abc"}}},
		{"html": "<a href=\"x\">&</a>", "unicode": "caf\u00e9 \u2028", "ctl": "a\tb\x01"},
		{"float": 1.5, "nested": map[string]any{"z": 1, "a": []any{2.25, "x"}}},
		{"num": json.Number("12.50")},
	} {
		w := newJSONWriter()
		w.meta("m", m)
		got := w.buf.String()
		want, err := json.Marshal(map[string]any{"m": map[string]any(m)})
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			want = []byte(`{"m":{}}`)
		}
		// The writer separates key and value with ": ".
		if got[1:] != strings.Replace(string(want[1:len(want)-1]), `"m":`, `"m": `, 1) {
			t.Errorf("metadata %v: wrote %s, encoding/json %s", m, got[1:], want[1:len(want)-1])
		}
	}
}
