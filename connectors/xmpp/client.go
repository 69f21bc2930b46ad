package xmpp

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// XML namespaces of the protocol (RFC 6120, RFC 6121, XEP-0199).
const (
	nsStream  = "http://etherx.jabber.org/streams"
	nsClient  = "jabber:client"
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsRoster  = "jabber:iq:roster"
	nsPing    = "urn:xmpp:ping"
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// JID is a Jabber ID: local@domain/resource.
type JID struct{ Local, Domain, Resource string }

// ParseJID parses "local@domain[/resource]" (the local part is optional).
func ParseJID(s string) (JID, error) {
	var j JID
	rest, res, hasRes := strings.Cut(s, "/")
	if hasRes {
		if res == "" {
			return j, fmt.Errorf("JID %q: empty resource", s)
		}
		j.Resource = res
	}
	if local, domain, ok := strings.Cut(rest, "@"); ok {
		if local == "" {
			return j, fmt.Errorf("JID %q: empty local part", s)
		}
		j.Local, j.Domain = local, domain
	} else {
		j.Domain = rest
	}
	if j.Domain == "" || strings.ContainsAny(j.Domain, " @\"'<>&") || strings.ContainsAny(j.Local, " \"&'/:<>") {
		return j, fmt.Errorf("JID %q: not a valid JID", s)
	}
	j.Domain = strings.ToLower(j.Domain)
	return j, nil
}

// Bare is local@domain.
func (j JID) Bare() string {
	if j.Local == "" {
		return j.Domain
	}
	return j.Local + "@" + j.Domain
}

// bareOf returns the bare part of a JID string ("user@host/res" ->
// "user@host"), as Vumi's partition('/').
func bareOf(s string) string {
	b, _, _ := strings.Cut(s, "/")
	return b
}

// dialConfig is what one connection needs.
type dialConfig struct {
	addr       string
	jid        JID
	password   string
	tls        *tls.Config // ServerName is set to the JID's domain
	requireTLS bool
	mechanism  string // "" picks the best offered
	log        *slog.Logger
	debug      bool
}

// conn is one negotiated XMPP client stream.
type conn struct {
	raw   net.Conn
	dec   *xml.Decoder
	log   *slog.Logger
	debug bool
	wmu   sync.Mutex
	jid   string // the full JID the server bound
	tls   bool
	mech  string
}

type features struct {
	StartTLS *struct {
		Required *struct{} `xml:"required"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms []string  `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
	Bind       *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Session    *struct {
		Optional *struct{} `xml:"optional"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-session session"`
}

// stanza is any top-level element of the stream, with the parts this
// client reads.
type stanza struct {
	XMLName xml.Name
	From    string    `xml:"from,attr"`
	To      string    `xml:"to,attr"`
	ID      string    `xml:"id,attr"`
	Type    string    `xml:"type,attr"`
	Body    *string   `xml:"body"`
	Ping    *struct{} `xml:"urn:xmpp:ping ping"`
	Roster  *struct{} `xml:"jabber:iq:roster query"`
	Bind    *struct {
		JID string `xml:"jid"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Error *struct {
		Inner string `xml:",innerxml"`
	} `xml:"error"`
	Text  string `xml:"text"`      // stream errors, SASL failures
	Inner []byte `xml:",innerxml"` // SASL challenge / success data
	Show  string `xml:"show"`
}

// errAuth marks authentication failures: retrying with the same
// credentials will not help, but the transport keeps trying (the account
// may be created later), more slowly.
var errAuth = errors.New("authentication failed")

// dial connects, negotiates TLS, authenticates and binds a resource.
func dial(ctx context.Context, cfg dialConfig) (*conn, error) {
	d := net.Dialer{Timeout: 15 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.addr, err)
	}
	c := &conn{raw: raw, log: cfg.log, debug: cfg.debug}
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.negotiate(ctx, cfg); err != nil {
		_ = c.raw.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = c.raw.SetDeadline(time.Time{})
	return c, nil
}

func (c *conn) negotiate(ctx context.Context, cfg dialConfig) error {
	domain := cfg.jid.Domain
	f, err := c.openStream(domain)
	if err != nil {
		return err
	}
	if f.StartTLS != nil && cfg.tls != nil {
		if err := c.send("<starttls xmlns='" + nsTLS + "'/>"); err != nil {
			return err
		}
		st, err := c.next()
		if err != nil {
			return err
		}
		if st.XMLName.Local != "proceed" {
			return fmt.Errorf("STARTTLS refused by the server (%s)", st.XMLName.Local)
		}
		tc := cfg.tls.Clone()
		if tc.ServerName == "" {
			tc.ServerName = domain
		}
		tlsConn := tls.Client(c.raw, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		c.raw, c.tls = tlsConn, true
		if f, err = c.openStream(domain); err != nil {
			return err
		}
	} else if cfg.requireTLS {
		return errors.New("the server does not offer STARTTLS and require_tls is true: refusing to send credentials in the clear")
	}
	if err := c.authenticate(cfg, f.Mechanisms); err != nil {
		return err
	}
	if f, err = c.openStream(domain); err != nil {
		return err
	}
	if f.Bind == nil {
		return errors.New("the server offers no resource binding")
	}
	bind := "<bind xmlns='" + nsBind + "'/>"
	if cfg.jid.Resource != "" {
		bind = "<bind xmlns='" + nsBind + "'><resource>" + esc(cfg.jid.Resource) + "</resource></bind>"
	}
	res, err := c.iqSync("set", "", "bind_1", bind)
	if err != nil {
		return fmt.Errorf("resource binding: %w", err)
	}
	if res.Bind == nil || res.Bind.JID == "" {
		return errors.New("resource binding: no JID in the answer")
	}
	c.jid = res.Bind.JID
	// RFC 3921 session establishment, for older servers that require it.
	if f.Session != nil && f.Session.Optional == nil {
		if _, err := c.iqSync("set", "", "sess_1", "<session xmlns='"+nsSession+"'/>"); err != nil {
			return fmt.Errorf("session: %w", err)
		}
	}
	return nil
}

// authenticate runs SASL with the configured or the best offered
// mechanism.
func (c *conn) authenticate(cfg dialConfig, offered []string) error {
	name := cfg.mechanism
	if name == "" {
		for _, m := range supportedMechanisms {
			if slices.Contains(offered, m) {
				name = m
				break
			}
		}
		if name == "" {
			return fmt.Errorf("no supported SASL mechanism offered (server offers %v, we support %v)", offered, supportedMechanisms)
		}
	} else if !slices.Contains(offered, name) {
		return fmt.Errorf("the server does not offer SASL mechanism %s (it offers %v)", name, offered)
	}
	if name == "PLAIN" && !c.tls && cfg.requireTLS {
		return errors.New("refusing SASL PLAIN without TLS")
	}
	m, err := newMechanism(name, cfg.jid.Local, cfg.password)
	if err != nil {
		return err
	}
	first, err := m.Start()
	if err != nil {
		return err
	}
	if err := c.sendSecret("<auth xmlns='" + nsSASL + "' mechanism='" + name + "'>" + b64(first) + "</auth>"); err != nil {
		return err
	}
	for {
		st, err := c.next()
		if err != nil {
			return err
		}
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(st.Inner)))
		switch st.XMLName.Local {
		case "challenge":
			if err != nil {
				return fmt.Errorf("SASL %s: bad challenge: %w", name, err)
			}
			resp, err := m.Next(data)
			if err != nil {
				return err
			}
			if err := c.sendSecret("<response xmlns='" + nsSASL + "'>" + b64(resp) + "</response>"); err != nil {
				return err
			}
		case "success":
			if err != nil {
				data = nil
			}
			if err := m.Verify(data); err != nil {
				return err
			}
			c.mech = name
			return nil
		case "failure":
			cond := "unknown"
			if i := bytes.IndexByte(st.Inner, '<'); i >= 0 {
				var x struct{ XMLName xml.Name }
				if xml.Unmarshal(st.Inner[i:], &x) == nil {
					cond = x.XMLName.Local
				}
			}
			return fmt.Errorf("%w: SASL %s: %s", errAuth, name, cond)
		default:
			return fmt.Errorf("SASL %s: unexpected <%s>", name, st.XMLName.Local)
		}
	}
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// openStream sends a stream header and reads the server's header and
// features.
func (c *conn) openStream(domain string) (*features, error) {
	var r io.Reader = c.raw
	if c.debug {
		r = io.TeeReader(c.raw, logWriter{c.log, "recv"})
	}
	c.dec = xml.NewDecoder(r)
	c.dec.Strict = true
	if err := c.send("<?xml version='1.0'?><stream:stream to='" + esc(domain) + "' xmlns='" + nsClient + "' xmlns:stream='" + nsStream + "' version='1.0'>"); err != nil {
		return nil, err
	}
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading the stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space != nsStream || se.Name.Local != "stream" {
				return nil, fmt.Errorf("expected a stream header, got <%s>", se.Name.Local)
			}
			break
		}
	}
	se, err := c.nextStart()
	if err != nil {
		return nil, err
	}
	if se.Name.Space == nsStream && se.Name.Local == "error" {
		var st stanza
		_ = c.dec.DecodeElement(&st, &se)
		return nil, fmt.Errorf("stream error: %s", streamErrorText(st))
	}
	if se.Name.Space != nsStream || se.Name.Local != "features" {
		return nil, fmt.Errorf("expected stream features, got <%s>", se.Name.Local)
	}
	var f features
	if err := c.dec.DecodeElement(&f, &se); err != nil {
		return nil, fmt.Errorf("stream features: %w", err)
	}
	return &f, nil
}

func streamErrorText(st stanza) string {
	cond := ""
	inner := st.Inner
	for len(inner) > 0 {
		i := bytes.IndexByte(inner, '<')
		if i < 0 {
			break
		}
		var x struct{ XMLName xml.Name }
		if xml.Unmarshal(inner[i:], &x) == nil && x.XMLName.Local != "" && x.XMLName.Local != "text" {
			cond = x.XMLName.Local
			break
		}
		inner = inner[i+1:]
	}
	if st.Text != "" {
		return cond + ": " + st.Text
	}
	return cond
}

// nextStart returns the next top-level start element; the end of the
// stream is io.EOF.
func (c *conn) nextStart() (xml.StartElement, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, io.EOF // </stream:stream>
		}
	}
}

// next reads the next stanza (or nonza). A stream error is returned as an
// error.
func (c *conn) next() (*stanza, error) {
	se, err := c.nextStart()
	if err != nil {
		return nil, err
	}
	var st stanza
	if err := c.dec.DecodeElement(&st, &se); err != nil {
		return nil, fmt.Errorf("reading <%s>: %w", se.Name.Local, err)
	}
	if se.Name.Space == nsStream && se.Name.Local == "error" {
		return nil, fmt.Errorf("stream error: %s", streamErrorText(st))
	}
	return &st, nil
}

// iqSync sends an iq during negotiation and reads its answer.
func (c *conn) iqSync(typ, to, id, payload string) (*stanza, error) {
	if err := c.send(iq(typ, to, id, payload)); err != nil {
		return nil, err
	}
	for {
		st, err := c.next()
		if err != nil {
			return nil, err
		}
		if st.XMLName.Local != "iq" || st.ID != id {
			continue
		}
		if st.Type == "error" {
			return nil, fmt.Errorf("the server answered with an error: %s", errorCondition(st))
		}
		return st, nil
	}
}

func errorCondition(st *stanza) string {
	if st.Error == nil {
		return "unknown"
	}
	var x struct {
		Inner []struct{ XMLName xml.Name } `xml:",any"`
	}
	_ = xml.Unmarshal([]byte("<e>"+st.Error.Inner+"</e>"), &x)
	for _, e := range x.Inner {
		if e.XMLName.Local != "text" {
			return e.XMLName.Local
		}
	}
	return "unknown"
}

func iq(typ, to, id, payload string) string {
	s := "<iq type='" + typ + "' id='" + esc(id) + "'"
	if to != "" {
		s += " to='" + esc(to) + "'"
	}
	return s + ">" + payload + "</iq>"
}

// send writes raw XML.
func (c *conn) send(s string) error {
	if c.debug {
		c.log.Debug("xmpp send", "xml", s)
	}
	return c.write(s)
}

// sendSecret writes XML that carries credentials: never logged.
func (c *conn) sendSecret(s string) error {
	if c.debug {
		c.log.Debug("xmpp send", "xml", "[SASL data redacted]")
	}
	return c.write(s)
}

func (c *conn) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.raw.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := io.WriteString(c.raw, s)
	return err
}

// close ends the stream politely and closes the connection.
func (c *conn) close() {
	c.wmu.Lock()
	_ = c.raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.WriteString(c.raw, "</stream:stream>")
	c.wmu.Unlock()
	_ = c.raw.Close()
}

// esc escapes text for XML character data and attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// logWriter logs received traffic in debug mode. The server never sends
// the password (SCRAM challenges carry only salts and nonces).
type logWriter struct {
	log *slog.Logger
	dir string
}

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Debug("xmpp "+w.dir, "xml", string(p))
	return len(p), nil
}
