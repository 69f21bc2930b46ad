package truteq

import (
	"errors"
	"strings"
	"testing"
)

func TestParseResponse(t *testing.T) {
	f, err := ParseResponse([]byte("SSMI,110,27831234567,2,1,one, two, three"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "USSD_MESSAGE" || f.Get("msisdn") != "27831234567" || f.Get("type") != "2" || f.Get("phase") != "1" || f.Get("message") != "one, two, three" {
		t.Errorf("parsed %+v", f)
	}
	f, err = ParseResponse([]byte("SSMI,101,1"))
	if err != nil || f.Name != "ACK" || f.Get("ack_type") != "1" {
		t.Errorf("ACK: %+v %v", f, err)
	}
	f, err = ParseResponse([]byte("SSMI,110,1,2,0,\xe9"))
	if err != nil || f.Get("message") != "é" {
		t.Errorf("latin-1: %+v %v", f, err)
	}
	for _, bad := range []string{"", "SSMI", "SSMI,", "ssmi,101,1", "SSMI,1,u,p", "SSMI,111,1,2,3,4", "XSMI,101,1"} {
		if _, err := ParseResponse([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: error %v, want ErrMalformed", bad, err)
		}
	}
}

func TestEncodeRequest(t *testing.T) {
	if got := string(encodeRequest(reqSendUSSD, []byte("2783"), []byte("1"), []byte("a,b"))); got != "SSMI,110,2783,1,a,b\r" {
		t.Errorf("got %q", got)
	}
	if got := string(encodeRequest(reqLinkCheck)); got != "SSMI,3\r" {
		t.Errorf("got %q", got)
	}
	if got := redact(encodeRequest(reqLogin, []byte("user"), []byte("pass,word"))); got != "SSMI,1,user,***" {
		t.Errorf("redacted %q", got)
	}
}

func TestUSSDTextAndLatin1(t *testing.T) {
	cases := map[string]string{"a\r\nb\rc\nd": "a\nb\nc\nd", "x\n": "x", "x\r\n\r\n": "x\n", "": "", "p\u2028q": "p\nq"}
	for in, want := range cases {
		if got := ussdText(in); got != want {
			t.Errorf("ussdText(%q) = %q, want %q", in, got, want)
		}
	}
	if b, err := toLatin1("café"); err != nil || string(b) != "caf\xe9" {
		t.Errorf("toLatin1: %q %v", b, err)
	}
	if _, err := toLatin1("☃"); err == nil {
		t.Error("toLatin1 accepted a snowman")
	}
	if _, err := toLatin1("\xff"); err == nil {
		t.Error("toLatin1 accepted invalid UTF-8")
	}
}

func TestLineReader(t *testing.T) {
	var r lineReader
	r.feed([]byte("SSMI,101,1\rSSMI,1"))
	l, long, ok := r.next()
	if !ok || long || string(l) != "SSMI,101,1" {
		t.Fatalf("first line %q %v %v", l, long, ok)
	}
	if _, _, ok := r.next(); ok {
		t.Fatal("incomplete line returned")
	}
	r.feed([]byte("01,2\r\nSSMI,101,1\r"))
	if l, _, _ := r.next(); string(l) != "SSMI,101,2" {
		t.Fatalf("split line %q", l)
	}
	if l, _, _ := r.next(); string(l) != "SSMI,101,1" {
		t.Fatalf("line after \\r\\n %q", l)
	}
	r.feed([]byte(strings.Repeat("x", maxLine+1)))
	if _, long, ok := r.next(); !ok || !long {
		t.Fatal("over-long line not reported")
	}
	r.feed([]byte("yyy\rSSMI,101,1\r"))
	if l, long, ok := r.next(); !ok || long || string(l) != "SSMI,101,1" {
		t.Fatalf("after discard %q %v %v", l, long, ok)
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{"SSMI,110,27831234567,1,0,*120#", "SSMI,111,2700,1,1,::3,*678#", "SSMI,101,2", "SSMI,102,1", "SSMI,199,127.0.0.1", "SSMI,", "garbage"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseResponse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if _, ok := responses[fr.ID]; !ok || fr.Name == "" {
			t.Fatalf("parsed unknown command %q", fr.ID)
		}
	})
}

func FuzzLineReader(f *testing.F) {
	f.Add([]byte("SSMI,101,1\rSSMI,110,1,1,0,x\r\n"), 3)
	f.Add([]byte(strings.Repeat("a", 100)), 7)
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		var r lineReader
		for len(b) > 0 {
			n := min(chunk, len(b))
			r.feed(b[:n])
			b = b[n:]
			for {
				l, _, ok := r.next()
				if !ok {
					break
				}
				if len(l) > maxLine {
					t.Fatalf("line of %d bytes", len(l))
				}
				if strings.ContainsRune(string(l), delimiter) {
					t.Fatal("line holds a delimiter")
				}
			}
		}
	})
}
