package pdu

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// gateConn is a net.Conn whose writes wait for the gate and are recorded.
type gateConn struct {
	net.Conn
	gate   chan struct{}
	mu     sync.Mutex
	writes [][]byte
	fail   error
}

func (c *gateConn) Write(b []byte) (int, error) {
	<-c.gate
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, append([]byte(nil), b...))
	return len(b), nil
}

func (c *gateConn) SetWriteDeadline(time.Time) error { return nil }

func enquire(seq uint32) PDU { return &Empty{Header: Header{ID: EnquireLink, Seq: seq}} }

// TestWriterCoalesces: while one write is on the wire, the PDUs written
// meanwhile queue up and go out together in the next write, each writer
// returning only once its PDU is written; every PDU arrives once, whole.
func TestWriterCoalesces(t *testing.T) {
	c := &gateConn{gate: make(chan struct{})}
	w := NewWriter(c, time.Second)
	first := make(chan error, 1)
	go func() { first <- w.Write(enquire(1)) }()
	waitFor(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.flushing })

	const queued = 10
	var wg sync.WaitGroup
	var returned sync.Map
	for i := range queued {
		wg.Go(func() {
			if err := w.Write(enquire(uint32(2 + i))); err != nil {
				t.Errorf("write %d: %v", 2+i, err)
			}
			returned.Store(i, true)
		})
	}
	waitFor(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.pending) == queued*HeaderLen })
	n := 0
	returned.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d writers returned before their PDUs were written", n)
	}
	close(c.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(c.writes) != 2 {
		t.Fatalf("%d writes to the connection, want 2 (the first PDU, then the %d queued behind it)", len(c.writes), queued)
	}
	seen := map[uint32]int{}
	for _, b := range c.writes {
		for len(b) > 0 {
			p, err := Decode(b[:HeaderLen])
			if err != nil {
				t.Fatalf("written bytes do not decode: %v", err)
			}
			seen[p.Head().Seq]++
			b = b[HeaderLen:]
		}
	}
	for seq := uint32(1); seq <= queued+1; seq++ {
		if seen[seq] != 1 {
			t.Fatalf("PDU %d written %d times (all: %v)", seq, seen[seq], seen)
		}
	}
}

// TestWriterError: the writers of a failed write get its error, and so
// does every later one.
func TestWriterError(t *testing.T) {
	boom := errors.New("connection reset")
	c := &gateConn{gate: make(chan struct{}), fail: boom}
	close(c.gate)
	w := NewWriter(c, time.Second)
	if err := w.Write(enquire(1)); !errors.Is(err, boom) {
		t.Fatalf("write: %v, want %v", err, boom)
	}
	c.fail = nil
	if err := w.Write(enquire(2)); !errors.Is(err, boom) {
		t.Fatalf("write after a failure: %v, want %v", err, boom)
	}
	if len(c.writes) != 0 {
		t.Fatalf("%d writes after the failure", len(c.writes))
	}
}

// TestWriterReaderLoopback: many goroutines write through a Writer over
// TCP; a Reader gets every PDU exactly once.
func TestWriterReaderLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const writers, each = 16, 300
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		w := NewWriter(c, 10*time.Second)
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				for i := range each {
					if err := w.Write(enquire(uint32(g*each + i))); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	r := NewReader(c, 0)
	seen := make([]bool, writers*each)
	for range writers * each {
		p, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		seq := p.Head().Seq
		if seq >= uint32(len(seen)) || seen[seq] {
			t.Fatalf("PDU %d out of range or seen twice", seq)
		}
		seen[seq] = true
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
