package schemas

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestMetadataJSONMatchesEncodingJSON(t *testing.T) {
	cases := []Metadata{
		{"endpoint_name": "default"},
		{"b": "2", "a": "1", "c": ""},
		{"html": "<a href=\"x\">&</a>", "ctl": "\x00\x01\n\r\t\b\f\x1f", "uni": "ünï\u2028\u2029😀", "bad": "\xff\xfe"},
		{"": "empty key"},
		{"smpp_submit_sm_resp": []any{map[string]any{"message_id": "4e6b", "seq": json.Number("2"), "status": "ESME_ROK"}}},
		{"n": json.Number("-1.5e+10"), "t": true, "f": false, "z": nil, "i": 42, "i64": int64(-7), "u": uint64(9), "u32": uint32(7), "i16": int16(-3), "u8": uint8(255), "ui": uint(1), "e": []any{}, "o": map[string]any{}},
		{"nested": map[string]any{"deeper": map[string]any{"list": []any{"x", json.Number("0"), nil, []any{true}}}}},
	}
	for _, m := range cases {
		got, ok := appendMetadataJSON(nil, m)
		if !ok {
			t.Fatalf("fast path refused %v", m)
		}
		want, _ := json.Marshal(map[string]any(m))
		if string(got) != string(want) {
			t.Errorf("fast %s\nwant %s", got, want)
		}
	}
	for _, m := range []Metadata{
		{"f": 1.5},                       // floats: encoding/json's formatting
		{"n": json.Number("01")},         // invalid number: encoding/json's error
		{"s": struct{ A int }{1}},        // other types
		{"deep": nest(maxFastDepth + 2)}, // too deep
		{"m": Metadata{"a": "b"}},        // encoding/json uses its MarshalText
	} {
		if _, ok := appendMetadataJSON(nil, m); ok {
			t.Errorf("fast path took %v", m)
		}
	}
}

func nest(n int) any {
	if n == 0 {
		return "leaf"
	}
	return map[string]any{"x": nest(n - 1)}
}

func TestMetadataJSONParse(t *testing.T) {
	for in, ok := range map[string]bool{
		`{"a":"b"}`:                true,
		` { "a" : "b" , "c":"" } `: true,
		`{}`:                       true,
		`{"a":1}`:                  true,
		`{"a":[{"seq":2,"ok":true},null,-0.5e3,[]],"b":{}}`: true,
		`{"a":"b\"c"}`:      false, // escapes: general path
		`{"a":"b",}`:        false,
		`{"a":"b"} x`:       false,
		`{"a":"b","a":"c"}`: false,
		`["a"]`:             false,
		`{"a":01}`:          false,
		`{"a":1.}`:          false,
		`{"a":tru}`:         false,
		`{"a":[1,]}`:        false,
	} {
		m, got := parseMetadataJSON([]byte(in))
		if got != ok {
			t.Errorf("parseMetadataJSON(%s) ok = %v, want %v", in, got, ok)
			continue
		}
		if ok {
			want, err := decodeJSONSlow([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(map[string]any(m), want) {
				t.Errorf("parseMetadataJSON(%s) = %v, want %v", in, m, want)
			}
		}
	}
}

// FuzzMetadataText: the fast paths agree with the general ones.
func FuzzMetadataText(f *testing.F) {
	f.Add(`{"a":"b"}`, "k", "v")
	f.Add(`{"a":{"b":1}}`, "<&>", "\u2028\xff")
	f.Add(`{"a":[{"seq":2,"x":null},true,-1e5]}`, "n", "1")
	f.Fuzz(func(t *testing.T, text, k, v string) {
		if m, ok := parseMetadataJSON([]byte(text)); ok {
			want, err := decodeJSONSlow([]byte(text))
			if err != nil {
				t.Fatalf("fast path accepted invalid JSON %q", text)
			}
			if !reflect.DeepEqual(map[string]any(m), want) {
				t.Fatalf("fast %v, want %v", m, want)
			}
			// and encodes back as encoding/json does
			got, ok := appendMetadataJSON(nil, m)
			enc, _ := json.Marshal(map[string]any(m))
			if ok && string(got) != string(enc) {
				t.Fatalf("fast %s, want %s", got, enc)
			}
		}
		for _, md := range []Metadata{{k: v}, {k: json.Number(v)}, {k: []any{v, map[string]any{v: k}}}} {
			got, ok := appendMetadataJSON(nil, md)
			want, err := json.Marshal(map[string]any(md))
			if ok && (err != nil || string(got) != string(want)) {
				t.Fatalf("fast %s, want %s (%v)", got, want, err)
			}
		}
	})
}

// FuzzDecodeJSONValue: with its fast path, decodeJSONValue accepts and
// returns exactly what encoding/json does.
func FuzzDecodeJSONValue(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `[1,"x",null]`, `"s"`, `-0.5e3`, `{"a":"\u00e9"}`, `{"a":1,"a":2}`, `{} x`, `tru`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got, err1 := decodeJSONValue([]byte(text))
		want, err2 := decodeJSONSlow([]byte(text))
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("%q: errors differ: %v / %v", text, err1, err2)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast %#v, want %#v", text, got, want)
		}
	})
}
