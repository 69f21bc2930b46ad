// Package tcptest is the plumbing of the fake protocol peers that the TCP
// client transports' tests run against: a listener on 127.0.0.1:0, one
// Peer per accepted connection, a record of what the peers received, and
// waits (polling, with a generous deadline) for conditions on them. The
// protocol itself (framing, answers) is the test's serve function.
package tcptest

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Deadline bounds every wait.
const Deadline = 30 * time.Second

// Server accepts connections and serves each with its serve function,
// which records what arrives (of type R) with Record.
type Server[R any] struct {
	t    testing.TB
	name string
	ln   net.Listener
	note chan struct{}

	// Mu guards Conns and Recs; Wait's conditions run with it held.
	Mu    sync.Mutex
	Conns []*Peer
	Recs  []R
}

// Peer is one accepted connection.
type Peer struct {
	Idx int
	C   net.Conn
	wmu sync.Mutex
	// LoggedIn is set by the serve function once the client logged in.
	LoggedIn atomic.Bool
	// Closed is set once serve has returned (and the connection closed).
	Closed atomic.Bool
}

// Write writes b as it is (writes of different goroutines do not mix).
func (p *Peer) Write(b []byte) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, _ = p.C.Write(b)
}

// New listens on 127.0.0.1:0 and serves each connection with serve (given
// this server, to record with) until the test ends (then the listener and
// every connection are closed). name says which server failed a wait.
func New[R any](t testing.TB, name string, serve func(*Server[R], *Peer)) *Server[R] {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server[R]{t: t, name: name, ln: ln, note: make(chan struct{}, 1)}
	t.Cleanup(func() {
		_ = ln.Close()
		s.Mu.Lock()
		for _, p := range s.Conns {
			_ = p.C.Close()
		}
		s.Mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.Mu.Lock()
			p := &Peer{Idx: len(s.Conns), C: c}
			s.Conns = append(s.Conns, p)
			s.Mu.Unlock()
			s.poke()
			go func() {
				defer func() {
					p.Closed.Store(true)
					_ = p.C.Close()
					s.poke()
				}()
				serve(s, p)
			}()
		}
	}()
	return s
}

// Port is the listener's port.
func (s *Server[R]) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *Server[R]) poke() {
	select {
	case s.note <- struct{}{}:
	default:
	}
}

// Record keeps r and wakes the waits.
func (s *Server[R]) Record(r R) {
	s.Mu.Lock()
	s.Recs = append(s.Recs, r)
	s.Mu.Unlock()
	s.poke()
}

// Wait waits until cond (run with Mu held) holds, failing the test after
// Deadline.
func (s *Server[R]) Wait(what string, cond func() bool) {
	s.t.Helper()
	Poll(s.t, Deadline, s.name+": no "+what, &s.Mu, s.note, cond)
}

// Poll waits until cond (run with mu held) holds, checking it whenever
// note signals and every 20 ms; after within it fails the test with
// "<failure> within <within>".
func Poll(t testing.TB, within time.Duration, failure string, mu *sync.Mutex, note <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		mu.Lock()
		ok := cond()
		mu.Unlock()
		if ok {
			return
		}
		select {
		case <-note:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s within %v", failure, within)
		}
	}
}

// LoggedInPeer waits for the n-th connection (0-based) to log in.
func (s *Server[R]) LoggedInPeer(n int) *Peer {
	s.t.Helper()
	var p *Peer
	s.Wait(fmt.Sprintf("logged-in connection #%d", n), func() bool {
		if len(s.Conns) > n && s.Conns[n].LoggedIn.Load() {
			p = s.Conns[n]
			return true
		}
		return false
	})
	return p
}

// ConnCount returns how many connections were accepted.
func (s *Server[R]) ConnCount() int {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return len(s.Conns)
}

// Find waits for a record matching match (what names it in a failure).
func (s *Server[R]) Find(what string, match func(R) bool) R {
	s.t.Helper()
	var got R
	s.Wait(what, func() bool {
		for _, r := range s.Recs {
			if match(r) {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

// Filter returns the records so far that match.
func (s *Server[R]) Filter(match func(R) bool) []R {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	var out []R
	for _, r := range s.Recs {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}
