package truteq

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSSMI is the server side of SSMI, written from the protocol
// description: it accepts LOGIN (ACK type 1 for the right credentials,
// NACK otherwise), answers LINK_CHECK with ACK type 2 (unless told not to),
// closes on LOGOUT, and records every request. Tests push USSD commands to
// a chosen connection.
type fakeSSMI struct {
	t          testing.TB
	ln         net.Listener
	user, pass string

	silentLinkChecks atomic.Bool

	mu    sync.Mutex
	conns []*peer
	reqs  []request
	note  chan struct{}
}

type peer struct {
	idx      int
	c        net.Conn
	wmu      sync.Mutex
	loggedIn atomic.Bool
	closed   atomic.Bool
}

type request struct {
	conn   int
	id     string
	fields []string
}

func newFakeSSMI(t testing.TB, user, pass string) *fakeSSMI {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeSSMI{t: t, ln: ln, user: user, pass: pass, note: make(chan struct{}, 1)}
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, p := range s.conns {
			_ = p.c.Close()
		}
		s.mu.Unlock()
	})
	go s.accept()
	return s
}

func (s *fakeSSMI) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *fakeSSMI) poke() {
	select {
	case s.note <- struct{}{}:
	default:
	}
}

func (s *fakeSSMI) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		p := &peer{idx: len(s.conns), c: c}
		s.conns = append(s.conns, p)
		s.mu.Unlock()
		s.poke()
		go s.serve(p)
	}
}

func (s *fakeSSMI) serve(p *peer) {
	defer func() {
		p.closed.Store(true)
		_ = p.c.Close()
		s.poke()
	}()
	r := bufio.NewReader(p.c)
	for {
		line, err := r.ReadString('\r')
		if err != nil {
			return
		}
		parts := strings.Split(strings.TrimSuffix(line, "\r"), ",")
		if len(parts) < 2 || parts[0] != "SSMI" {
			s.t.Errorf("fake SSMI server: bad request line %q", line)
			continue
		}
		req := request{conn: p.idx, id: parts[1], fields: parts[2:]}
		if req.id == "110" && len(parts) > 5 {
			// The message is the last field and may hold commas.
			req.fields = append(parts[2:4:4], strings.Join(parts[4:], ","))
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, req)
		s.mu.Unlock()
		s.poke()
		switch req.id {
		case "1": // LOGIN,username,password
			if len(req.fields) == 2 && req.fields[0] == s.user && req.fields[1] == s.pass {
				p.loggedIn.Store(true)
				s.send(p, "SSMI,101,1")
			} else {
				s.send(p, "SSMI,102,1")
			}
		case "3": // LINK_CHECK
			if !s.silentLinkChecks.Load() {
				s.send(p, "SSMI,101,2")
			}
		case "99": // LOGOUT
			return
		}
	}
}

// send writes one command line (the \r is added).
func (s *fakeSSMI) send(p *peer, line string) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, _ = p.c.Write([]byte(line + "\r"))
}

// sendRaw writes bytes as they are.
func (s *fakeSSMI) sendRaw(p *peer, b string) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, _ = p.c.Write([]byte(b))
}

// ussd sends a USSD_MESSAGE (msisdn, type, phase 0, message).
func (s *fakeSSMI) ussd(p *peer, msisdn, typ, message string) {
	s.send(p, fmt.Sprintf("SSMI,110,%s,%s,0,%s", msisdn, typ, message))
}

func (s *fakeSSMI) wait(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.note:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			s.t.Fatalf("fake SSMI server: no %s within 30s", what)
		}
	}
}

// loggedIn waits for the n-th connection (0-based) to log in.
func (s *fakeSSMI) loggedIn(n int) *peer {
	s.t.Helper()
	var p *peer
	s.wait(fmt.Sprintf("logged-in connection #%d", n), func() bool {
		if len(s.conns) > n && s.conns[n].loggedIn.Load() {
			p = s.conns[n]
			return true
		}
		return false
	})
	return p
}

// connCount returns how many connections were accepted.
func (s *fakeSSMI) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// request waits for a request matching match, after the first skip.
func (s *fakeSSMI) request(match func(request) bool) request {
	s.t.Helper()
	var got request
	s.wait("matching request", func() bool {
		for _, r := range s.reqs {
			if match(r) {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

func (s *fakeSSMI) requests(id string) []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []request
	for _, r := range s.reqs {
		if r.id == id {
			out = append(out, r)
		}
	}
	return out
}
