package schemas

import "testing"

func benchCodec(b *testing.B) *Codec[UserMessage] {
	c := NewCodec[UserMessage](UserMessageKind, nil)
	c.SetID(goldenID)
	return c
}

// BenchmarkTypicalSMSRoundTrip is the target: encode + decode of a
// typical SMS user message in the Confluent wire format.
func BenchmarkTypicalSMSRoundTrip(b *testing.B) {
	c := benchCodec(b)
	msg := typicalSMS()
	buf := make([]byte, 0, 512)
	var out UserMessage
	b.ReportAllocs()
	var n int
	for b.Loop() {
		wire, err := c.AppendEncode(buf[:0], msg)
		if err != nil {
			b.Fatal(err)
		}
		n = len(wire)
		if err := c.Decode(wire, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "wire-bytes")
}

// BenchmarkRichSMSRoundTrip is the same with every field and small metadata
// dicts set (metadata costs a JSON encode and decode each).
func BenchmarkRichSMSRoundTrip(b *testing.B) {
	c := benchCodec(b)
	msg := richSMS()
	buf := make([]byte, 0, 512)
	var out UserMessage
	b.ReportAllocs()
	var n int
	for b.Loop() {
		wire, err := c.AppendEncode(buf[:0], msg)
		if err != nil {
			b.Fatal(err)
		}
		n = len(wire)
		if err := c.Decode(wire, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "wire-bytes")
}

func BenchmarkTypicalSMSEncode(b *testing.B) {
	c := benchCodec(b)
	msg := typicalSMS()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.AppendEncode(buf[:0], msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTypicalSMSDecode(b *testing.B) {
	c := benchCodec(b)
	wire, err := c.Encode(typicalSMS())
	if err != nil {
		b.Fatal(err)
	}
	var out UserMessage
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Decode(wire, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTypicalSMSVumiJSON is Vumi's own format for comparison.
func BenchmarkTypicalSMSVumiJSON(b *testing.B) {
	msg := typicalSMS()
	b.ReportAllocs()
	var n int
	for b.Loop() {
		js, err := msg.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		n = len(js)
		if _, err := ParseUserMessage(js); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "json-bytes")
}

// BenchmarkSchemaIDLookup is the hot-path lookup of the schema to decode a
// record with: zero allocations, no registry call.
func BenchmarkSchemaIDLookup(b *testing.B) {
	c := benchCodec(b)
	wire, err := c.Encode(typicalSMS())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		id, err := SchemaID(wire)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := (*c.readers.Load())[id]; !ok {
			b.Fatal("schema not cached")
		}
	}
}
