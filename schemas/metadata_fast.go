package schemas

import (
	"sort"
	"unicode/utf8"
)

// Metadata dicts are usually small and flat ({"endpoint_name": "default"},
// {"session_info": "..."}). These fast paths encode and decode such dicts
// without encoding/json's reflection; anything else (nested values,
// numbers, escapes) takes the general path. Tests and a fuzz target check
// that both paths give byte-identical JSON and equal values.

// appendFlatJSON encodes m as encoding/json would when every value is a
// string; ok is false otherwise.
func appendFlatJSON(dst []byte, m Metadata) ([]byte, bool) {
	for _, v := range m {
		if _, ok := v.(string); !ok {
			return dst, false
		}
	}
	var small [8]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, m[k].(string))
	}
	return append(dst, '}'), true
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

// parseFlatJSON decodes a JSON object whose values are all strings without
// escapes; ok is false for anything else (the caller falls back).
func parseFlatJSON(b []byte) (m Metadata, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	m = Metadata{}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, skipWS(b, i+1) == len(b)
	}
	for {
		var k, v string
		if k, i, ok = plainString(b, i); !ok {
			return nil, false
		}
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		if v, i, ok = plainString(b, skipWS(b, i+1)); !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false // let the general decoder decide
		}
		m[k] = v
		i = skipWS(b, i)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return m, skipWS(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
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
