package schemas

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecodeWire feeds arbitrary bytes to the wire-format decoders: they
// must return an error or a value, never panic.
func FuzzDecodeWire(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.hex"))
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 0, goldenID, 0xff, 0xff, 0xff, 0xff, 0x0f})
	codecs := NewCodecs(nil)
	for _, id := range []func(uint32){codecs.UserMessage.SetID, codecs.Event.SetID, codecs.Status.SetID, codecs.Failure.SetID, codecs.MetricDatapoint.SetID, codecs.MetricAggregate.SetID} {
		id(goldenID)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m UserMessage
		if err := codecs.UserMessage.Decode(b, &m); err == nil {
			if _, err := m.MarshalJSON(); err != nil {
				t.Errorf("decoded message does not marshal: %v", err)
			}
		}
		_ = codecs.Event.Decode(b, new(Event))
		_ = codecs.Status.Decode(b, new(Status))
		_ = codecs.Failure.Decode(b, new(Failure))
		_ = codecs.MetricDatapoint.Decode(b, new(MetricDatapoint))
		_ = codecs.MetricAggregate.Decode(b, new(MetricAggregate))
	})
}

// FuzzParseJSON feeds arbitrary text to the JSON message parsers. Whatever
// parses must survive JSON -> Avro -> JSON unchanged.
func FuzzParseJSON(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"content": "\u0000\ud800", "helper_metadata": {"a": [1e400]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := ParseUserMessage(b); err == nil {
			first, err := m.MarshalJSON()
			if err != nil {
				return // e.g. metadata with values JSON cannot re-encode
			}
			_, back := roundTrip(t, m)
			second, err := back.(*UserMessage).MarshalJSON()
			if err != nil || string(first) != string(second) {
				t.Fatalf("round trip changed the message:\n%s\n%s (%v)", first, second, err)
			}
		}
		_, _ = ParseEvent(b)
		_, _ = ParseStatus(b)
	})
}
