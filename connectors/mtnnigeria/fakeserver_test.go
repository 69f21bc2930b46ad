package mtnnigeria

import (
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMTN is MTN Nigeria's server side of XML over TCP, written from the
// protocol description: 16 bytes of session id and 16 bytes of total
// length (NUL-padded), then an XML body. It accepts AUTHRequest with the
// right credentials (AUTHResponse) or refuses it (AUTHError 001), answers
// ENQRequest with ENQResponse unless told not to, and records every packet.
type fakeMTN struct {
	t                       testing.TB
	ln                      net.Listener
	user, pass, application string

	silentEnquireLinks atomic.Bool

	mu    sync.Mutex
	conns []*mtnPeer
	pkts  []got
	note  chan struct{}
}

type mtnPeer struct {
	idx      int
	c        net.Conn
	wmu      sync.Mutex
	loggedIn atomic.Bool
}

type got struct {
	conn      int
	sessionID string
	typ       string
	fields    map[string]string
	order     []string
}

func newFakeMTN(t testing.TB, user, pass, app string) *fakeMTN {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeMTN{t: t, ln: ln, user: user, pass: pass, application: app, note: make(chan struct{}, 1)}
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

func (s *fakeMTN) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *fakeMTN) poke() {
	select {
	case s.note <- struct{}{}:
	default:
	}
}

func (s *fakeMTN) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		p := &mtnPeer{idx: len(s.conns), c: c}
		s.conns = append(s.conns, p)
		s.mu.Unlock()
		s.poke()
		go s.serve(p)
	}
}

// frame builds a packet as the server sends it.
func frame(sessionID, body string) []byte {
	h := make([]byte, 32)
	copy(h, sessionID)
	copy(h[16:], strconv.Itoa(32+len(body)))
	return append(h, body...)
}

// body builds <typ><k>v</k>...</typ> from name/value pairs.
func body(typ string, kv ...string) string {
	var b strings.Builder
	b.WriteString("<" + typ + ">")
	for i := 0; i+1 < len(kv); i += 2 {
		var esc strings.Builder
		_ = xml.EscapeText(&esc, []byte(kv[i+1]))
		fmt.Fprintf(&b, "<%s>%s</%s>", kv[i], esc.String(), kv[i])
	}
	b.WriteString("</" + typ + ">")
	return b.String()
}

func (s *fakeMTN) serve(p *mtnPeer) {
	defer func() {
		_ = p.c.Close()
		s.poke()
	}()
	for {
		h := make([]byte, 32)
		if _, err := io.ReadFull(p.c, h); err != nil {
			return
		}
		sid := strings.TrimRight(string(h[:16]), "\x00")
		n, err := strconv.Atoi(strings.TrimRight(string(h[16:]), "\x00"))
		if err != nil || n < 32 {
			s.t.Errorf("fake MTN server: bad header %q", h)
			return
		}
		b := make([]byte, n-32)
		if _, err := io.ReadFull(p.c, b); err != nil {
			return
		}
		g := got{conn: p.idx, sessionID: sid, fields: map[string]string{}}
		// The body: one root element of simple child elements.
		// ISO-8859-1: each byte is one character.
		var text strings.Builder
		for _, c := range b {
			text.WriteRune(rune(c))
		}
		d := xml.NewDecoder(strings.NewReader(text.String()))
		d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
		var cur string
		for {
			tok, err := d.Token()
			if err != nil {
				break
			}
			switch t := tok.(type) {
			case xml.StartElement:
				if g.typ == "" {
					g.typ = t.Name.Local
				} else {
					cur = t.Name.Local
					g.fields[cur] = ""
					g.order = append(g.order, cur)
				}
			case xml.CharData:
				if cur != "" {
					g.fields[cur] += string(t)
				}
			case xml.EndElement:
				cur = ""
			}
		}
		s.mu.Lock()
		s.pkts = append(s.pkts, g)
		s.mu.Unlock()
		s.poke()
		switch g.typ {
		case "AUTHRequest":
			f := g.fields
			if f["userName"] == s.user && f["passWord"] == s.pass && f["applicationId"] == s.application {
				p.loggedIn.Store(true)
				s.send(p, sid, body("AUTHResponse", "requestId", f["requestId"], "authMsg", "SUCCESS"))
			} else {
				s.send(p, sid, body("AUTHError", "requestId", f["requestId"], "authMsg", "FAILURE", "errorCode", "001"))
			}
		case "ENQRequest":
			if !s.silentEnquireLinks.Load() {
				s.send(p, sid, body("ENQResponse", "requestId", g.fields["requestId"], "enqCmd", "ENQUIRELINKRSP"))
			}
		}
	}
}

func (s *fakeMTN) send(p *mtnPeer, sessionID, body string) {
	s.sendRaw(p, frame(sessionID, body))
}

func (s *fakeMTN) sendRaw(p *mtnPeer, b []byte) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, _ = p.c.Write(b)
}

// ussd sends a USSDRequest.
func (s *fakeMTN) ussd(p *mtnPeer, sessionID, requestID, msisdn, msgtype, eos, userdata string) {
	kv := []string{"requestId", requestID, "msisdn", msisdn, "clientId", "441", "starCode", "123", "msgtype", msgtype,
		"phase", "2", "dcs", "15", "userdata", userdata}
	if eos != "" {
		kv = append(kv, "EndofSession", eos)
	}
	s.send(p, sessionID, body("USSDRequest", kv...))
}

func (s *fakeMTN) wait(what string, cond func() bool) {
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
			s.t.Fatalf("fake MTN server: no %s within 30s", what)
		}
	}
}

func (s *fakeMTN) loggedIn(n int) *mtnPeer {
	s.t.Helper()
	var p *mtnPeer
	s.wait(fmt.Sprintf("logged-in connection #%d", n), func() bool {
		if len(s.conns) > n && s.conns[n].loggedIn.Load() {
			p = s.conns[n]
			return true
		}
		return false
	})
	return p
}

func (s *fakeMTN) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *fakeMTN) packet(match func(got) bool) got {
	s.t.Helper()
	var g got
	s.wait("matching packet", func() bool {
		for _, p := range s.pkts {
			if match(p) {
				g = p
				return true
			}
		}
		return false
	})
	return g
}
