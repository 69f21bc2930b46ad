package coding

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestGSM(t *testing.T) {
	cases := []struct {
		text string
		hex  string
	}{
		{"@£$¥", "00010203"},
		{"Hello", "48656c6c6f"},
		{"ΔΦΓΛΩΠΨΣΘΞ", "1012131415161718191a"},
		{"ÄÖÑÜ§¿äöñüà", "5b5c5d5e5f607b7c7d7e7f"},
		{"€", "1b65"},
		{"{}[]~\\|^", "1b281b291b3c1b3e1b3d1b2f1b401b14"},
		{"\f", "1b0a"},
		{"a\nb\r", "610a620d"},
	}
	for _, c := range cases {
		t.Run(c.text, func(t *testing.T) {
			want, _ := hex.DecodeString(c.hex)
			got, err := GSM{}.Encode(c.text)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("encode = %x, %v; want %x", got, err, want)
			}
			back, err := GSM{}.Decode(want)
			if err != nil || back != c.text {
				t.Fatalf("decode = %q, %v", back, err)
			}
		})
	}
	if _, err := (GSM{}).Encode("日本"); !errors.Is(err, ErrUnencodable) {
		t.Fatalf("unencodable: %v", err)
	}
	// An unknown escape gives a space and the basic character; a
	// trailing escape a space.
	if s, _ := (GSM{}).Decode([]byte{0x1b, 0x41, 0x1b}); s != " A " {
		t.Fatalf("lenient decode %q", s)
	}
}

func TestCodecs(t *testing.T) {
	cases := []struct {
		dc   byte
		text string
		hex  string
	}{
		{IA5ASCII, "hi!", "686921"},
		{Latin1, "café", "636166e9"},
		{Cyrillic, "Привет", "bfe0d8d2d5e2"},
		{LatinHebrew, "שלום", "f9ece5ed"},
		{UCS2, "hé€", "006800e920ac"},
		{UCS2, "😀", "d83dde00"},
		{JIS, "日本", "1b2442467c4b5c1b2842"},
	}
	for _, c := range cases {
		t.Run(Default(c.dc).Name()+"/"+c.text, func(t *testing.T) {
			want, _ := hex.DecodeString(c.hex)
			got, err := Default(c.dc).Encode(c.text)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("encode = %x, %v; want %x", got, err, want)
			}
			back, err := Default(c.dc).Decode(want)
			if err != nil || back != c.text {
				t.Fatalf("decode = %q, %v", back, err)
			}
		})
	}
	if _, err := Default(IA5ASCII).Decode([]byte{0xe9}); err == nil {
		t.Fatal("ascii accepted 0xe9")
	}
	if _, err := Default(UCS2).Decode([]byte{0}); err == nil {
		t.Fatal("odd ucs2 accepted")
	}
}

func TestTableOverrides(t *testing.T) {
	tb, err := NewTable(map[int]string{0: "latin1", 4: "utf-8"})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := tb.Decode(0, []byte{0xe9}); s != "é" {
		t.Fatalf("override 0: %q", s)
	}
	if s, _ := tb.Decode(4, []byte("é")); s != "é" {
		t.Fatalf("override 4: %q", s)
	}
	if s, _ := tb.Decode(2, []byte{0xe9}); s != "é" {
		t.Fatalf("octet unspecified as latin1: %q", s)
	}
	if _, err := NewTable(map[int]string{0: "klingon"}); err == nil {
		t.Fatal("unknown codec accepted")
	}
}

func TestParseDataCoding(t *testing.T) {
	for in, want := range map[string]byte{"SMSC_DEFAULT_ALPHABET": 0, "ucs2": 8, "LATIN_1": 3, "8": 8, "0x08": 8, "IA5_ASCII": 1} {
		if got, err := ParseDataCoding(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	if _, err := ParseDataCoding("NOPE"); err == nil {
		t.Error("NOPE accepted")
	}
}

func TestSplit(t *testing.T) {
	cases := []struct {
		name  string
		c     Codec
		text  string
		size  int
		parts []int // octets per part
	}{
		{"gsm fits", GSM{}, strings.Repeat("a", 160), 160, []int{160}},
		{"gsm 2 parts", GSM{}, strings.Repeat("a", 200), 153, []int{153, 47}},
		{"gsm escape not cut", GSM{}, strings.Repeat("a", 152) + "€b", 153, []int{152, 3}},
		{"ucs2 67 per part", ucs2{}, strings.Repeat("é", 100), 134, []int{134, 66}},
		{"ucs2 surrogate not cut", ucs2{}, strings.Repeat("é", 66) + "😀", 134, []int{132, 4}},
		{"latin1 134", Default(Latin1), strings.Repeat("x", 300), 134, []int{134, 134, 32}},
		{"jis stateful", Default(JIS), strings.Repeat("日", 80), 134, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parts, err := Split(c.c, c.text, c.size)
			if err != nil {
				t.Fatal(err)
			}
			var joined strings.Builder
			for i, p := range parts {
				if len(p) > c.size {
					t.Fatalf("part %d has %d octets > %d", i, len(p), c.size)
				}
				s, err := c.c.Decode(p)
				if err != nil {
					t.Fatalf("part %d does not decode alone: %v", i, err)
				}
				joined.WriteString(s)
				if c.parts != nil && len(p) != c.parts[i] {
					t.Errorf("part %d: %d octets, want %d", i, len(p), c.parts[i])
				}
			}
			if c.parts != nil && len(parts) != len(c.parts) {
				t.Errorf("%d parts, want %d", len(parts), len(c.parts))
			}
			if joined.String() != c.text {
				t.Fatal("parts do not join to the text")
			}
		})
	}
}

func TestUDH(t *testing.T) {
	cases := []struct {
		name string
		c    Concat
		hex  string
	}{
		{"8-bit", Concat{Ref: 0x2a, Total: 3, Seq: 2}, "0500032a0302"},
		{"16-bit", Concat{Ref: 0x1234, Total: 3, Seq: 3, Ref16: true}, "060804123403" + "03"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := AppendUDH(nil, c.c)
			if hex.EncodeToString(b) != c.hex {
				t.Fatalf("udh %x want %s", b, c.hex)
			}
			got, rest, err := ParseUDH(append(b, 'x'))
			if err != nil || *got != c.c || string(rest) != "x" {
				t.Fatalf("parse = %+v %q %v", got, rest, err)
			}
		})
	}
	// Other IEs are skipped; a header without concatenation gives nil.
	c, rest, err := ParseUDH([]byte{0x09, 0x04, 0x02, 0x01, 0x02, 0x00, 0x03, 0x01, 0x02, 0x01, 'h'})
	if err != nil || c == nil || c.Total != 2 || c.Seq != 1 || string(rest) != "h" {
		t.Fatalf("mixed IEs: %+v %q %v", c, rest, err)
	}
	if c, _, err := ParseUDH([]byte{0x03, 0x04, 0x01, 0x00, 'h'}); err != nil || c != nil {
		t.Fatalf("no concat IE: %+v %v", c, err)
	}
	for _, bad := range [][]byte{{}, {0x05, 0x00}, {0x05, 0x00, 0x03, 1, 0, 1}, {0x05, 0x00, 0x03, 1, 2, 3}, {0x02, 0x00, 0x05}} {
		if _, _, err := ParseUDH(bad); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}
