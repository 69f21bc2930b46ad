package smpp

import (
	"regexp"
	"strings"
	"testing"
)

var defaultDRRe = regexp.MustCompile(`^(?:` + DefaultDRRegex + `)`)

// regexDR is what the transport did before parseDefaultDR: the regex on
// the Latin-1 text.
func regexDR(b []byte) (id, stat string, ok bool) {
	m := defaultDRRe.FindStringSubmatch(latin1(b))
	if m == nil {
		return "", "", false
	}
	return m[defaultDRRe.SubexpIndex("id")], m[defaultDRRe.SubexpIndex("stat")], true
}

var drSamples = []string{
	"id:0123456789 sub:001 dlvrd:001 submit date:2611221030 done date:2611221031 stat:DELIVRD err:000 text:benchmark message",
	"id:abc stat:UNDELIV text:",
	"id:abc stat:UNDELIV Text:x",
	"id:abc  sub:1   dlvrd:1 stat:EXPIRED  err:1 text:",
	"id: stat:DELIVRD text:",
	"id:abc stat:DELIV text:",    // 5 letters
	"id:abc stat:DELI text:",     // 4: no match
	"id:abc stat:DELIVRDX text:", // 8: no match
	"id:abc stat:DELIVRD,err:0 text:",
	"id:abc submit date:26-11 stat:DELIVRD text:", // non-digit date: no match
	"id:abc submit date: done date: stat:DELIVRD text:",
	"id:abc sub: stat:DELIVRD text:", // empty sub: no match
	"id:abc err:1 stat:DELIVRD text:",
	"id:abc stat:DELIVRD err: text:",
	"id:abc stat:DELIVRD text",
	"id:abc stat:DELIVRD\ttext:",
	"ID:abc stat:DELIVRD text:",
	"id:" + strings.Repeat("x", 65) + " stat:DELIVRD text:",
	"id:" + strings.Repeat("x", 66) + " stat:DELIVRD text:",
	"id:\xe9t\xe9 stat:DELIVRD text:\xff",
	"id:a\nb stat:DELIVRD text:\n",
	"hello world",
	"",
}

func TestParseDefaultDRMatchesTheRegex(t *testing.T) {
	matched := 0
	for _, s := range drSamples {
		id, stat, ok := parseDefaultDR([]byte(s))
		wid, wstat, wok := regexDR([]byte(s))
		if id != wid || stat != wstat || ok != wok {
			t.Errorf("%q: parsed (%q, %q, %v), regex (%q, %q, %v)", s, id, stat, ok, wid, wstat, wok)
		}
		if ok {
			matched++
		}
	}
	if matched < 8 {
		t.Errorf("only %d samples matched: the samples do not exercise the parser", matched)
	}
}

// The parser stands in for the regex only when the configured regex is
// the default one; another regex is matched by the regexp engine.
func TestMatchDRUsesTheConfiguredRegex(t *testing.T) {
	text := []byte("id:abc stat:DELIVRD text:")
	for _, tc := range []struct {
		extra    string
		parser   bool
		id, stat string
	}{
		{"", true, "abc", "DELIVRD"},
		{"dr_processor_config:\n  regex: 'id:(?P<id>\\S+) stat:(?P<stat>\\S{3})'\n", false, "abc", "DEL"},
	} {
		c, err := validConfig(tc.extra)
		if err != nil {
			t.Fatal(err)
		}
		if c.defaultDRRegex != tc.parser {
			t.Errorf("%q: parser used %v, want %v", tc.extra, c.defaultDRRegex, tc.parser)
		}
		if id, stat, ok := c.matchDR(text); !ok || id != tc.id || stat != tc.stat {
			t.Errorf("%q: matchDR = (%q, %q, %v), want (%q, %q)", tc.extra, id, stat, ok, tc.id, tc.stat)
		}
	}
}

func FuzzParseDefaultDR(f *testing.F) {
	for _, s := range drSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, stat, ok := parseDefaultDR(b)
		wid, wstat, wok := regexDR(b)
		if id != wid || stat != wstat || ok != wok {
			t.Fatalf("%q: parsed (%q, %q, %v), regex (%q, %q, %v)", b, id, stat, ok, wid, wstat, wok)
		}
	})
}

func BenchmarkDeliveryReceiptMatch(b *testing.B) {
	text := []byte(drSamples[0])
	b.Run("parser", func(b *testing.B) {
		for b.Loop() {
			if _, _, ok := parseDefaultDR(text); !ok {
				b.Fatal("no match")
			}
		}
	})
	b.Run("regex", func(b *testing.B) {
		for b.Loop() {
			if _, _, ok := regexDR(text); !ok {
				b.Fatal("no match")
			}
		}
	})
}
