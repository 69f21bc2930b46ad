package mtnnigeria

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
)

func TestEncodePacketGolden(t *testing.T) {
	got := encodePacket("1234", "ENQRequest", []param{{"requestId", "42"}, {"enqCmd", "ENQUIRELINK"}})
	body := "<ENQRequest><requestId>42</requestId><enqCmd>ENQUIRELINK</enqCmd></ENQRequest>"
	want := append([]byte("1234\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"+"110\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), body...)
	if len(body)+32 != 110 {
		t.Fatalf("fixture length %d", len(body)+32)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	// Escaping and ISO-8859-1 with character references.
	got = encodePacket("1", "USSDResponse", []param{{"userdata", `a<b>&"é☃`}})
	if !bytes.Contains(got, []byte("<userdata>a&lt;b&gt;&amp;&quot;\xe9&#9731;</userdata>")) {
		t.Errorf("escaped body %q", got[32:])
	}
}

func TestParsePacketRoundTrip(t *testing.T) {
	pkt := encodePacket("6543210987654321", "USSDRequest", []param{{"requestId", "1"}, {"userdata", " *123# "}, {"msisdn", "é&<"}})
	p, err := ParsePacket(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if p.SessionID != "6543210987654321" || p.Type != "USSDRequest" || p.Params["userdata"] != "*123#" || p.Params["msisdn"] != "é&<" || p.Params["requestId"] != "1" {
		t.Errorf("parsed %+v", p)
	}
	// An XML declaration naming the encoding is fine.
	b := []byte(`<?xml version="1.0" encoding="ISO-8859-1"?><AUTHResponse><requestId>1</requestId><authMsg>SUCCESS</authMsg></AUTHResponse>`)
	full := append(padNUL("1", 16), padNUL(strconv.Itoa(len(b)+32), 16)...)
	if p, err := ParsePacket(append(full, b...)); err != nil || p.Params["authMsg"] != "SUCCESS" {
		t.Errorf("with declaration: %+v %v", p, err)
	}
}

func TestParseErrors(t *testing.T) {
	if _, _, err := parseHeader([]byte("1234567890123456abc\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")); !errors.Is(err, ErrFrame) {
		t.Errorf("non-numeric length: %v", err)
	}
	if _, _, err := parseHeader(append(padNUL("1", 16), padNUL("10", 16)...)); !errors.Is(err, ErrFrame) {
		t.Errorf("length below the header: %v", err)
	}
	if _, _, err := parseHeader(append(padNUL("1", 16), padNUL("99999999", 16)...)); !errors.Is(err, ErrFrame) {
		t.Errorf("huge length: %v", err)
	}
	for _, b := range []string{"", "<a>", "<a></b>", "text", "<a/><b/>", "<a><b>1</b></a>trailing"} {
		if _, _, err := parseBody([]byte(b)); !errors.Is(err, ErrBody) {
			t.Errorf("body %q: %v", b, err)
		}
	}
}

func TestFrameReader(t *testing.T) {
	p1 := encodePacket("1", "A", []param{{"x", "1"}})
	p2 := encodePacket("2", "B", nil)
	stream := append(append([]byte(nil), p1...), p2...)
	var r frameReader
	var out [][]byte
	for i := 0; i < len(stream); i += 7 { // arrives in pieces
		r.feed(stream[i:min(i+7, len(stream))])
		for {
			p, ok, err := r.next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			out = append(out, p)
		}
	}
	if len(out) != 2 || !bytes.Equal(out[0], p1) || !bytes.Equal(out[1], p2) {
		t.Errorf("frames %q", out)
	}
}

func FuzzParsePacket(f *testing.F) {
	f.Add(encodePacket("1234567890123456", "USSDRequest", []param{{"requestId", "1"}, {"msisdn", "234"}, {"userdata", "*1#"}}))
	f.Add(encodePacket("1", "ENQRequest", []param{{"requestId", "1"}, {"enqCmd", "ENQUIRELINK"}}))
	f.Add([]byte("1234567890123456garbage-length!!<x/>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			if !errors.Is(err, ErrFrame) && !errors.Is(err, ErrBody) {
				t.Fatalf("error %v is neither ErrFrame nor ErrBody", err)
			}
			return
		}
		if p.Type == "" {
			t.Fatal("packet without a type")
		}
	})
}

func FuzzFrameReader(f *testing.F) {
	f.Add(append(encodePacket("1", "A", nil), encodePacket("2", "B", []param{{"k", "v"}})...), 5)
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		var r frameReader
		for len(b) > 0 {
			n := min(chunk, len(b))
			r.feed(b[:n])
			b = b[n:]
			for {
				p, ok, err := r.next()
				if err != nil {
					if !errors.Is(err, ErrFrame) {
						t.Fatalf("error %v", err)
					}
					return
				}
				if !ok {
					break
				}
				if len(p) < headerSize || len(p) > maxPacket {
					t.Fatalf("frame of %d bytes", len(p))
				}
			}
		}
	})
}
