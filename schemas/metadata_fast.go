package schemas

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Metadata dicts are small: {"endpoint_name": "default"}, {"session_info":
// "..."}, a transport's protocol record ({"smpp_submit_sm_resp": [{"seq": 2,
// ...}]}). These fast paths encode and decode them without encoding/json's
// reflection (it was ~4 % of the end-to-end benchmark's CPU); anything
// else (floats, escapes in strings, other Go types) takes the general path. Tests and a fuzz target check
// that both paths give byte-identical JSON and equal values.

// appendMetadataJSON encodes m as encoding/json would when every value,
// at any depth, is a string, json.Number, bool, nil, integer, map[string]any
// (or Metadata) or []any; ok is false otherwise (floats, other types, an
// invalid json.Number, nesting deeper than maxFastDepth), and the caller
// takes encoding/json's path.
func appendMetadataJSON(dst []byte, m Metadata) ([]byte, bool) {
	return appendObjectJSON(dst, m, 0)
}

const maxFastDepth = 32

func appendObjectJSON(dst []byte, m map[string]any, depth int) ([]byte, bool) {
	var small [8]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	if len(keys) > 12 {
		sort.Strings(keys)
	} else {
		// Small maps: an insertion sort, without sort's overhead.
		for i := 1; i < len(keys); i++ {
			for j := i; j > 0 && keys[j-1] > keys[j]; j-- {
				keys[j-1], keys[j] = keys[j], keys[j-1]
			}
		}
	}
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		var ok bool
		if dst, ok = appendValueJSON(dst, m[k], depth+1); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

func appendValueJSON(dst []byte, v any, depth int) ([]byte, bool) {
	if depth > maxFastDepth {
		return dst, false
	}
	switch x := v.(type) {
	case string:
		return appendJSONString(dst, x), true
	case json.Number:
		if _, end, ok := scanNumber([]byte(x), 0); !ok || end != len(x) {
			return dst, false // encoding/json reports the error
		}
		return append(dst, x...), true
	case bool:
		return strconv.AppendBool(dst, x), true
	case nil:
		return append(dst, "null"...), true
	case int:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int64:
		return strconv.AppendInt(dst, x, 10), true
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), true
	case uint64:
		return strconv.AppendUint(dst, x, 10), true
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), true
		}
		return appendObjectJSON(dst, x, depth)
	case []any:
		if x == nil {
			return append(dst, "null"...), true
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendValueJSON(dst, e, depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	}
	return dst, false
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s exactly as encoding/json does (HTML-safe,
// invalid UTF-8 replaced, U+2028 and U+2029 escaped).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// parseMetadataJSON decodes a JSON object as decodeJSONValue does
// (numbers as json.Number) when it holds only strings without escapes,
// numbers, booleans, nulls, objects and arrays, nested at most
// maxFastDepth deep, with no duplicate keys; ok is false for anything else
// (the caller falls back to encoding/json, which also reports errors).
func parseMetadataJSON(b []byte) (m Metadata, ok bool) {
	obj, ok := ParseJSONObject(b)
	return Metadata(obj), ok
}

func parseValue(b []byte, i, depth int) (any, int, bool) {
	if depth > maxFastDepth || i >= len(b) {
		return nil, i, false
	}
	switch c := b[i]; {
	case c == '"':
		s, j, ok := plainString(b, i)
		return s, j, ok
	case c == '{':
		m := map[string]any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return m, i + 1, true
		}
		for {
			k, j, ok := plainString(b, i)
			if !ok {
				return nil, i, false
			}
			i = skipWS(b, j)
			if i >= len(b) || b[i] != ':' {
				return nil, i, false
			}
			var v any
			if v, i, ok = parseValue(b, skipWS(b, i+1), depth+1); !ok {
				return nil, i, false
			}
			if _, dup := m[k]; dup {
				return nil, i, false // let the general decoder decide
			}
			m[k] = v
			i = skipWS(b, i)
			if i >= len(b) {
				return nil, i, false
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case '}':
				return m, i + 1, true
			default:
				return nil, i, false
			}
		}
	case c == '[':
		a := []any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return a, i + 1, true
		}
		for {
			v, j, ok := parseValue(b, i, depth+1)
			if !ok {
				return nil, j, false
			}
			a = append(a, v)
			i = skipWS(b, j)
			if i >= len(b) {
				return nil, i, false
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case ']':
				return a, i + 1, true
			default:
				return nil, i, false
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		start, end, ok := scanNumber(b, i)
		if !ok {
			return nil, i, false
		}
		return json.Number(b[start:end]), end, true
	case bytes.HasPrefix(b[i:], []byte("true")):
		return true, i + 4, true
	case bytes.HasPrefix(b[i:], []byte("false")):
		return false, i + 5, true
	case bytes.HasPrefix(b[i:], []byte("null")):
		return nil, i + 4, true
	}
	return nil, i, false
}

// scanNumber reads a JSON number (RFC 8259 grammar) starting at b[i].
func scanNumber(b []byte, i int) (start, end int, ok bool) {
	start = i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return start, i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return start, i, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return start, i, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return start, i, true
}

// plainString reads a JSON string with no escapes and valid UTF-8 starting
// at b[i].
func plainString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", i, false
	}
	start := i + 1
	for j := start; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[start:j]
			if !utf8.Valid(s) {
				return "", i, false
			}
			return string(s), j + 1, true
		case c == '\\' || c < 0x20:
			return "", i, false
		}
	}
	return "", i, false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// AppendJSONString appends s as a JSON string, quoted and escaped exactly
// as encoding/json does.
func AppendJSONString(dst []byte, s string) []byte { return appendJSONString(dst, s) }
