package schemas

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestFlatJSONMatchesEncodingJSON(t *testing.T) {
	cases := []Metadata{
		{"endpoint_name": "default"},
		{"b": "2", "a": "1", "c": ""},
		{"html": "<a href=\"x\">&</a>", "ctl": "\x00\x01\n\r\t\b\f\x1f", "uni": "ünï\u2028\u2029😀", "bad": "\xff\xfe"},
		{"": "empty key"},
	}
	for _, m := range cases {
		got, ok := appendFlatJSON(nil, m)
		if !ok {
			t.Fatalf("fast path refused %v", m)
		}
		want, _ := json.Marshal(map[string]any(m))
		if string(got) != string(want) {
			t.Errorf("fast %s\nwant %s", got, want)
		}
	}
	if _, ok := appendFlatJSON(nil, Metadata{"n": json.Number("1")}); ok {
		t.Error("fast path took a number")
	}
}

func TestFlatJSONParse(t *testing.T) {
	for in, ok := range map[string]bool{
		`{"a":"b"}`:                true,
		` { "a" : "b" , "c":"" } `: true,
		`{}`:                       true,
		`{"a":"b\"c"}`:             false, // escapes: general path
		`{"a":1}`:                  false,
		`{"a":"b",}`:               false,
		`{"a":"b"} x`:              false,
		`{"a":"b","a":"c"}`:        false,
		`["a"]`:                    false,
	} {
		m, got := parseFlatJSON([]byte(in))
		if got != ok {
			t.Errorf("parseFlatJSON(%s) ok = %v, want %v", in, got, ok)
			continue
		}
		if ok {
			var want map[string]any
			if err := json.Unmarshal([]byte(in), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(map[string]any(m), want) {
				t.Errorf("parseFlatJSON(%s) = %v, want %v", in, m, want)
			}
		}
	}
}

// FuzzMetadataText: the fast paths agree with the general ones.
func FuzzMetadataText(f *testing.F) {
	f.Add(`{"a":"b"}`, "k", "v")
	f.Add(`{"a":{"b":1}}`, "<&>", "\u2028\xff")
	f.Fuzz(func(t *testing.T, text, k, v string) {
		if m, ok := parseFlatJSON([]byte(text)); ok {
			var want map[string]any
			if err := json.Unmarshal([]byte(text), &want); err != nil {
				t.Fatalf("fast path accepted invalid JSON %q", text)
			}
			if !reflect.DeepEqual(map[string]any(m), want) {
				t.Fatalf("fast %v, want %v", m, want)
			}
		}
		md := Metadata{k: v}
		got, _ := appendFlatJSON(nil, md)
		want, _ := json.Marshal(map[string]any(md))
		if string(got) != string(want) {
			t.Fatalf("fast %s, want %s", got, want)
		}
	})
}
