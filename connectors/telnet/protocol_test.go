package telnet

import (
	"bytes"
	"io"
	"testing"
)

type recorder struct{ buf bytes.Buffer }

func (r *recorder) write(s string) error { r.buf.WriteString(s); return nil }

// oneByte reads one byte per Read call, to split commands across reads.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }

func TestTelnetReader(t *testing.T) {
	in := []byte{'h', 'i', 255, 253, 1, 255, 251, 31, 255, 250, 31, 0, 80, 255, 240, 255, 255, '!', 255, 241, '\n'}
	for name, src := range map[string]io.Reader{"whole": bytes.NewReader(in), "byte by byte": oneByte{bytes.NewReader(in)}} {
		rec := &recorder{}
		out, err := io.ReadAll(newTelnetReader(src, rec))
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != "hi\xff!\n" {
			t.Errorf("%s: data %q", name, out)
		}
		if got := rec.buf.String(); got != "\xff\xfc\x01\xff\xfe\x1f" { // WONT ECHO, DONT NAWS
			t.Errorf("%s: replies % x", name, got)
		}
	}
}

// FuzzTelnetReader: any input is read without panic, and data bytes that
// are not part of a command come out.
func FuzzTelnetReader(f *testing.F) {
	f.Add([]byte{'a', 255, 253, 1, 'b'})
	f.Add([]byte{255, 250, 1, 2, 255, 240})
	f.Add([]byte{255})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := io.ReadAll(newTelnetReader(bytes.NewReader(b), &recorder{}))
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > len(b) {
			t.Fatalf("more out (%d) than in (%d)", len(out), len(b))
		}
	})
}
