package schemas

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas/schematest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenID is the schema id golden records are written with.
const goldenID = 7

// roundTrip encodes v with a codec of its kind (schema id goldenID) and
// decodes it back into a fresh value of the same type.
func roundTrip(t *testing.T, v any) (wire []byte, back any) {
	t.Helper()
	switch x := v.(type) {
	case *UserMessage:
		return rt(t, UserMessageKind, x)
	case *Event:
		return rt(t, EventKind, x)
	case *Status:
		return rt(t, StatusKind, x)
	case *Failure:
		return rt(t, FailureKind, x)
	case *MetricDatapoint:
		return rt(t, MetricDatapointKind, x)
	case *MetricAggregate:
		return rt(t, MetricAggregateKind, x)
	case *Heartbeat:
		return rt(t, HeartbeatKind, x)
	}
	t.Fatalf("no codec for %T", v)
	return nil, nil
}

func rt[T any](t *testing.T, kind *Kind, v *T) ([]byte, any) {
	t.Helper()
	c := NewCodec[T](kind, nil)
	c.SetID(goldenID)
	b, err := c.Encode(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	out := new(T)
	if err := c.Decode(b, out); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return b, out
}

func TestGoldenBytes(t *testing.T) {
	fixtures := golden()
	names := make([]string, 0, len(fixtures))
	for n := range fixtures {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			v := fixtures[name]
			wire, back := roundTrip(t, v)
			path := filepath.Join("testdata", name+".hex")
			if *update {
				if err := os.WriteFile(path, []byte(hex.EncodeToString(wire)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run go test ./schemas -update to create it): %v", err)
			}
			if got := hex.EncodeToString(wire); got != strings.TrimSpace(string(want)) {
				t.Errorf("wire bytes changed:\n got %s\nwant %s", got, strings.TrimSpace(string(want)))
			}
			if wire[0] != 0 || !bytes.Equal(wire[1:5], []byte{0, 0, 0, goldenID}) {
				t.Errorf("header = % x, want 00 00 00 00 %02x", wire[:5], goldenID)
			}
			if !reflect.DeepEqual(v, back) {
				t.Errorf("decoded value differs:\n got %#v\nwant %#v", back, v)
			}
		})
	}
}

func TestDecodeFromGoldenFile(t *testing.T) {
	// The golden files must decode on their own, independent of Encode.
	raw, err := os.ReadFile(filepath.Join("testdata", "user_message_typical.hex"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	c := NewCodec[UserMessage](UserMessageKind, nil)
	c.SetID(goldenID)
	var m UserMessage
	if err := c.Decode(b, &m); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&m, typicalSMS()) {
		t.Errorf("decoded %#v", m)
	}
}

func TestTypicalSMSSize(t *testing.T) {
	if n := len(content160); n != 160 {
		t.Fatalf("fixture content is %d characters", n)
	}
	wire, _ := roundTrip(t, typicalSMS())
	js, err := typicalSMS().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("typical SMS: %d bytes Avro (wire format), %d bytes Vumi JSON", len(wire), len(js))
	if len(wire) > 260 {
		t.Errorf("typical SMS is %d bytes on the wire, target is <= 260", len(wire))
	}
	if len(wire)*2 > len(js) {
		t.Errorf("Avro (%d bytes) should be under half of Vumi JSON (%d bytes)", len(wire), len(js))
	}
}

func TestDecodeErrors(t *testing.T) {
	c := NewCodec[UserMessage](UserMessageKind, nil)
	c.SetID(goldenID)
	good, err := c.Encode(typicalSMS())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "shorter than the 5-byte"},
		{"short", []byte{0, 0, 0}, "shorter than the 5-byte"},
		{"bad magic", append([]byte{1}, good[1:]...), "magic byte"},
		{"unknown id", append([]byte{0, 0, 0, 0, 99}, good[5:]...), "schema id 99"},
		{"truncated", good[:len(good)-10], "truncated"},
		{"trailing", append(append([]byte{}, good...), 1, 2, 3), "trailing bytes"},
		{"bad union index", append(append([]byte{}, good[:5+1+32+8]...), 0x7f), "decode user_message"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m UserMessage
			err := c.Decode(tc.in, &m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestEncodeUnregistered(t *testing.T) {
	c := NewCodec[UserMessage](UserMessageKind, nil)
	if _, err := c.Encode(typicalSMS()); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("err = %v, want ErrNotRegistered", err)
	}
}

func TestRegisterAndSchemaEvolution(t *testing.T) {
	ctx := context.Background()
	reg := schematest.New()
	codecs := NewCodecs(reg)
	if err := codecs.UserMessage.Register(ctx, "sms.inbound", "sms.outbound"); err != nil {
		t.Fatal(err)
	}
	if got := reg.Subjects("sms.inbound-value"); len(got) != 1 || got[0] != int(codecs.UserMessage.ID()) {
		t.Fatalf("subject sms.inbound-value ids = %v, codec id %d", got, codecs.UserMessage.ID())
	}
	if got := reg.Subjects("sms.outbound-value"); len(got) != 1 || got[0] != int(codecs.UserMessage.ID()) {
		t.Fatalf("same schema on two subjects must share one id, got %v", got)
	}

	// An older writer schema without the extra and provider fields: records
	// written with it must decode with defaults under the current schema.
	old := schemaWithout(t, UserMessageKind.Text, "extra", "provider")
	oldKind := &Kind{Name: "user_message_v0", Text: old}
	oldKind.Schema = mustParseForTest(t, old)
	oldCodec := NewCodec[UserMessage](oldKind, reg)
	if err := oldCodec.Register(ctx, "legacy.inbound"); err != nil {
		t.Fatal(err)
	}
	if oldCodec.ID() == codecs.UserMessage.ID() {
		t.Fatal("different schemas got the same id")
	}
	msg := richSMS() // provider set
	msg.Extra = Metadata{"legacy": "x"}
	b, err := oldCodec.Encode(msg)
	if err != nil {
		t.Fatal(err)
	}
	var got UserMessage
	if err := codecs.UserMessage.Decode(b, &got); err != nil {
		t.Fatalf("decode old-schema record: %v", err)
	}
	want := *msg
	want.Provider = nil // not in the old schema: defaults to null
	want.Extra = nil    // likewise: defaults to the empty string, an empty dict
	if !reflect.DeepEqual(&got, &want) {
		t.Errorf("decoded %#v\nwant %#v", got, want)
	}

	// Hot path: once the writer schema is known, no registry calls.
	calls := reg.Calls
	for i := 0; i < 100; i++ {
		if err := codecs.UserMessage.Decode(b, &got); err != nil {
			t.Fatal(err)
		}
		if _, err := codecs.UserMessage.Encode(msg); err != nil {
			t.Fatal(err)
		}
	}
	if reg.Calls != calls {
		t.Errorf("hot path made %d registry calls", reg.Calls-calls)
	}
}

func TestHotPathAllocs(t *testing.T) {
	c := NewCodec[UserMessage](UserMessageKind, nil)
	c.SetID(goldenID)
	b, err := c.Encode(typicalSMS())
	if err != nil {
		t.Fatal(err)
	}
	// Looking up the schema for a record's id must not allocate.
	allocs := testing.AllocsPerRun(1000, func() {
		id, _ := SchemaID(b)
		if _, ok := (*c.readers.Load())[id]; !ok {
			t.Fatal("missing reader")
		}
	})
	if allocs != 0 {
		t.Errorf("schema-id lookup allocates %.1f times per record", allocs)
	}
}

// A metric datapoint written before the count field existed decodes with
// count 1 (one value), its schema default.
func TestMetricDatapointCountDefault(t *testing.T) {
	ctx := context.Background()
	reg := schematest.New()
	codecs := NewCodecs(reg)
	if err := codecs.MetricDatapoint.Register(ctx, "vumi.metrics"); err != nil {
		t.Fatal(err)
	}
	oldText := schemaWithout(t, MetricDatapointKind.Text, "count")
	oldKind := &Kind{Name: "metric_datapoint_v1", Text: oldText}
	oldKind.Schema = mustParseForTest(t, oldText)
	oldCodec := NewCodec[MetricDatapoint](oldKind, reg)
	if err := oldCodec.Register(ctx, "legacy.metrics"); err != nil {
		t.Fatal(err)
	}
	b, err := oldCodec.Encode(&MetricDatapoint{Name: "vumi.w.t", Aggregators: []string{"avg"}, Timestamp: time.Unix(1700000000, 0).UTC(), Value: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	var got MetricDatapoint
	if err := codecs.MetricDatapoint.Decode(b, &got); err != nil {
		t.Fatalf("decode old-schema datapoint: %v", err)
	}
	if got.Count != 1 || got.Value != 0.25 || got.Name != "vumi.w.t" {
		t.Errorf("decoded %+v, want count 1", got)
	}
}

// schemaWithout is a record schema's text without the named fields: an
// older writer's schema.
func schemaWithout(t *testing.T, text string, fields ...string) string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	var kept []any
	for _, f := range doc["fields"].([]any) {
		if !slices.Contains(fields, f.(map[string]any)["name"].(string)) {
			kept = append(kept, f)
		}
	}
	if len(kept) != len(doc["fields"].([]any))-len(fields) {
		t.Fatalf("schema edit did not remove %v", fields)
	}
	doc["fields"] = kept
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
