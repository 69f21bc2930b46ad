package truteq

import (
	"bufio"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vumi-kafka/vumi/connectors/tcpclient/tcptest"
)

// fakeSSMI is the server side of SSMI, written from the protocol
// description: it accepts LOGIN (ACK type 1 for the right credentials,
// NACK otherwise), answers LINK_CHECK with ACK type 2 (unless told not to),
// closes on LOGOUT, and records every request. Tests push USSD commands to
// a chosen connection.
type fakeSSMI struct {
	*tcptest.Server[request]
	t          testing.TB
	user, pass string

	silentLinkChecks atomic.Bool
}

type request struct {
	conn   int
	id     string
	fields []string
}

func newFakeSSMI(t testing.TB, user, pass string) *fakeSSMI {
	s := &fakeSSMI{t: t, user: user, pass: pass}
	s.Server = tcptest.New[request](t, "fake SSMI server", s.serve)
	return s
}

func (s *fakeSSMI) serve(srv *tcptest.Server[request], p *tcptest.Peer) {
	r := bufio.NewReader(p.C)
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
		req := request{conn: p.Idx, id: parts[1], fields: parts[2:]}
		if req.id == "110" && len(parts) > 5 {
			// The message is the last field and may hold commas.
			req.fields = append(parts[2:4:4], strings.Join(parts[4:], ","))
		}
		srv.Record(req)
		switch req.id {
		case "1": // LOGIN,username,password
			if len(req.fields) == 2 && req.fields[0] == s.user && req.fields[1] == s.pass {
				p.LoggedIn.Store(true)
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
func (s *fakeSSMI) send(p *tcptest.Peer, line string) { p.Write([]byte(line + "\r")) }

// ussd sends a USSD_MESSAGE (msisdn, type, phase 0, message).
func (s *fakeSSMI) ussd(p *tcptest.Peer, msisdn, typ, message string) {
	s.send(p, fmt.Sprintf("SSMI,110,%s,%s,0,%s", msisdn, typ, message))
}

// request waits for a request matching match.
func (s *fakeSSMI) request(match func(request) bool) request {
	s.t.Helper()
	return s.Find("matching request", match)
}

func (s *fakeSSMI) requests(id string) []request {
	return s.Filter(func(r request) bool { return r.id == id })
}
