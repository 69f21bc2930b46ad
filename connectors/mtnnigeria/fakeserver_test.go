package mtnnigeria

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vumi-kafka/vumi/connectors/tcpclient/tcptest"
)

// fakeMTN is MTN Nigeria's server side of XML over TCP, written from the
// protocol description: 16 bytes of session id and 16 bytes of total
// length (NUL-padded), then an XML body. It accepts AUTHRequest with the
// right credentials (AUTHResponse) or refuses it (AUTHError 001), answers
// ENQRequest with ENQResponse unless told not to, and records every packet.
type fakeMTN struct {
	*tcptest.Server[got]
	t                       testing.TB
	user, pass, application string

	silentEnquireLinks atomic.Bool
}

type got struct {
	conn      int
	sessionID string
	typ       string
	fields    map[string]string
	order     []string
}

func newFakeMTN(t testing.TB, user, pass, app string) *fakeMTN {
	s := &fakeMTN{t: t, user: user, pass: pass, application: app}
	s.Server = tcptest.New[got](t, "fake MTN server", s.serve)
	return s
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

func (s *fakeMTN) serve(srv *tcptest.Server[got], p *tcptest.Peer) {
	for {
		h := make([]byte, 32)
		if _, err := io.ReadFull(p.C, h); err != nil {
			return
		}
		sid := strings.TrimRight(string(h[:16]), "\x00")
		n, err := strconv.Atoi(strings.TrimRight(string(h[16:]), "\x00"))
		if err != nil || n < 32 {
			s.t.Errorf("fake MTN server: bad header %q", h)
			return
		}
		b := make([]byte, n-32)
		if _, err := io.ReadFull(p.C, b); err != nil {
			return
		}
		g := got{conn: p.Idx, sessionID: sid, fields: map[string]string{}}
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
		srv.Record(g)
		switch g.typ {
		case "AUTHRequest":
			f := g.fields
			if f["userName"] == s.user && f["passWord"] == s.pass && f["applicationId"] == s.application {
				p.LoggedIn.Store(true)
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

func (s *fakeMTN) send(p *tcptest.Peer, sessionID, body string) { p.Write(frame(sessionID, body)) }

// ussd sends a USSDRequest.
func (s *fakeMTN) ussd(p *tcptest.Peer, sessionID, requestID, msisdn, msgtype, eos, userdata string) {
	kv := []string{"requestId", requestID, "msisdn", msisdn, "clientId", "441", "starCode", "123", "msgtype", msgtype,
		"phase", "2", "dcs", "15", "userdata", userdata}
	if eos != "" {
		kv = append(kv, "EndofSession", eos)
	}
	s.send(p, sessionID, body("USSDRequest", kv...))
}

func (s *fakeMTN) packet(match func(got) bool) got {
	s.t.Helper()
	return s.Find("matching packet", match)
}
