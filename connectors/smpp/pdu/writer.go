package pdu

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// Writer writes PDUs to a connection; PDUs written at the same time by
// several goroutines (a window of submit_sm, their responses, receipts)
// go out in one system call. Write returns once its PDU is written, with
// the error of the write that carried it, as an unbuffered write would:
// the first writer yields once to the goroutines ready to run, then
// writes whatever has queued up meanwhile; the others wait for it. After
// an error every Write fails.
type Writer struct {
	conn    net.Conn
	timeout time.Duration

	mu       sync.Mutex
	flushed  sync.Cond // signalled after each write to conn
	pending  []byte    // PDUs of batch next, not written yet
	spare    []byte
	next     uint64 // the batch pending belongs to
	done     uint64 // the last batch written
	flushing bool   // a batch is being written
	err      error  // the first failed write
}

// NewWriter writes to conn, each write with a deadline of timeout.
func NewWriter(conn net.Conn, timeout time.Duration) *Writer {
	w := &Writer{conn: conn, timeout: timeout, next: 1}
	w.flushed.L = &w.mu
	return w
}

// Write writes p.
func (w *Writer) Write(p PDU) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.pending = AppendEncode(w.pending, p)
	mine := w.next
	for {
		switch {
		case w.done >= mine:
			return nil
		case w.err != nil:
			return w.err
		case w.flushing:
			w.flushed.Wait()
			continue
		}
		// Nobody is writing: write the pending batch (ours among it).
		// Before taking it, let the goroutines that are ready to run
		// (other writers, under load) add their PDUs: at saturation a
		// write then carries several PDUs instead of one; with nothing
		// else to run, Gosched returns at once.
		w.flushing = true
		w.mu.Unlock()
		runtime.Gosched()
		w.mu.Lock()
		buf, batch := w.pending, w.next
		w.pending, w.spare = w.spare[:0], nil
		w.next++
		w.mu.Unlock()
		_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
		_, err := w.conn.Write(buf)
		w.mu.Lock()
		w.spare = buf[:0]
		if err != nil {
			w.err = err
		} else {
			w.done = batch
		}
		w.flushing = false
		w.flushed.Broadcast() // its writers return, the next batch's take over
	}
}
