package xmpp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/chattest"
	"github.com/vumi-kafka/vumi/processors/apps/words"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// prosody is a real prosody server on loopback, with its own config,
// certificate and data in a temporary directory.
type prosody struct {
	t      *testing.T
	bin    string
	dir    string
	config string
	port   int
	caFile string
	proc   *chattest.Process
}

func newProsody(t *testing.T) *prosody {
	t.Helper()
	p := &prosody{
		t:    t,
		bin:  chattest.RequireBinary(t, "prosody", "apt-get install prosody"),
		dir:  t.TempDir(),
		port: chattest.FreePort(t),
	}
	chattest.RequireBinary(t, "prosodyctl", "apt-get install prosody")
	// prosodyctl run as root drops to the prosody user to write accounts.
	if err := os.Chmod(p.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	cert, key := selfSigned(t, "localhost")
	p.caFile = filepath.Join(p.dir, "localhost.crt")
	write(t, p.caFile, cert)
	write(t, filepath.Join(p.dir, "localhost.key"), key)
	runAsRoot := "false"
	if os.Geteuid() == 0 {
		runAsRoot = "true"
	}
	p.config = filepath.Join(p.dir, "prosody.cfg.lua")
	write(t, p.config, []byte(fmt.Sprintf(`run_as_root = %s
pidfile = %[2]q
data_path = %[3]q
certificates = %[3]q
daemonize = false
interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { %[4]d }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "presence" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
c2s_require_encryption = true
allow_registration = false
log = { { levels = { min = "info" }, to = "console" } }
ssl = { key = %[5]q, certificate = %[6]q }
VirtualHost "localhost"
`, runAsRoot, filepath.Join(p.dir, "prosody.pid"), p.dir, p.port, filepath.Join(p.dir, "localhost.key"), p.caFile)))
	return p
}

func write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// selfSigned returns a PEM certificate and key for host.
func selfSigned(t *testing.T, host string) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
}

func (p *prosody) register(user, password string) {
	p.t.Helper()
	out, err := exec.Command(p.bin+"ctl", "--config", p.config, "register", user, "localhost", password).CombinedOutput()
	if err != nil {
		p.t.Fatalf("prosodyctl register %s: %v\n%s", user, err, out)
	}
}

func (p *prosody) start() {
	p.t.Helper()
	p.proc = chattest.StartProcess(p.t, p.port, p.bin, "--config", p.config, "-F")
}

func (p *prosody) dialConfig(user, password string) dialConfig {
	pem, err := os.ReadFile(p.caFile)
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	jid, _ := ParseJID(user + "@localhost/test")
	return dialConfig{
		addr: fmt.Sprintf("127.0.0.1:%d", p.port), jid: jid, password: password,
		tls: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, requireTLS: true,
		log: slog.New(slog.DiscardHandler),
	}
}

// xmppUser is a person with a Jabber client.
type xmppUser struct {
	t        *testing.T
	c        *conn
	stanzas  chan *stanza
	readDone chan struct{}
}

func (p *prosody) login(user, password string) *xmppUser {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dial(ctx, p.dialConfig(user, password))
	if err != nil {
		p.t.Fatalf("%s cannot log in: %v", user, err)
	}
	u := &xmppUser{t: p.t, c: c, stanzas: make(chan *stanza, 1000), readDone: make(chan struct{})}
	p.t.Cleanup(c.close)
	go func() {
		defer close(u.readDone)
		for {
			st, err := c.next()
			if err != nil {
				close(u.stanzas)
				return
			}
			if st.XMLName.Local == "iq" && st.Type == "get" {
				_ = c.send("<iq type='result' id='" + esc(st.ID) + "' to='" + esc(st.From) + "'/>")
				continue
			}
			u.stanzas <- st
		}
	}()
	// An "interested resource" (RFC 6121 §2.1.6) gets subscription states.
	u.send("<iq type='get' id='roster_1'><query xmlns='jabber:iq:roster'/></iq>")
	u.send("<presence/>")
	return u
}

func (u *xmppUser) send(s string) {
	if err := u.c.send(s); err != nil {
		u.t.Errorf("send %q: %v", s, err)
	}
}

func (u *xmppUser) expect(t *testing.T, what string, match func(*stanza) bool) *stanza {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case st, ok := <-u.stanzas:
			if !ok {
				t.Fatalf("stream closed while waiting for %s", what)
			}
			t.Logf("received <%s type=%q from=%q>", st.XMLName.Local, st.Type, st.From)
			if match(st) {
				return st
			}
		case <-deadline:
			t.Fatalf("no %s within 30s", what)
		}
	}
}

func testKinds() *topology.Registry {
	r := topology.NewRegistry()
	r.Add(Kinds()...)
	r.Add(words.Kinds()...)
	return r
}

// TestProsodyLogin logs in to a real prosody with each SASL mechanism it
// offers, over STARTTLS, and fails with a wrong password.
func TestProsodyLogin(t *testing.T) {
	p := newProsody(t)
	p.register("carol", "c4r0l pass")
	p.start()
	cases := []struct {
		mech, password string
		wantErr        error
	}{
		{"", "c4r0l pass", nil},
		{"SCRAM-SHA-1", "c4r0l pass", nil},
		{"PLAIN", "c4r0l pass", nil},
		{"SCRAM-SHA-1", "wrong", errAuth},
		{"PLAIN", "wrong", errAuth},
	}
	for _, tc := range cases {
		t.Run(tc.mech+"/"+tc.password, func(t *testing.T) {
			cfg := p.dialConfig("carol", tc.password)
			cfg.mechanism = tc.mech
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := dial(ctx, cfg)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), tc.password) {
					t.Errorf("the error reveals the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			if !c.tls || !strings.HasPrefix(c.jid, "carol@localhost/") {
				t.Errorf("tls %v jid %q", c.tls, c.jid)
			}
			if tc.mech == "" && !strings.HasPrefix(c.mech, "SCRAM-") {
				t.Errorf("picked %s, want a SCRAM mechanism", c.mech)
			}
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		cfg := p.dialConfig("carol", "c4r0l pass")
		cfg.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := dial(ctx, cfg); err == nil || !strings.Contains(err.Error(), "TLS") {
			t.Fatalf("err = %v, want a TLS error", err)
		}
	})
}

// TestProsody runs the XMPP transport with the echo application against a
// real prosody: subscription, presence, messages both ways, and reconnect
// after the server restarts.
func TestProsody(t *testing.T) {
	p := newProsody(t)
	p.register("bot", "b0t secret")
	p.register("alice", "alice pass")
	p.start()

	env := chattest.Start(t, testKinds(), "xmpp", fmt.Sprintf(`
  - name: xmpp_transport
    kind: vumi.transports.xmpp.XMPPTransport
    transport_name: xmpp
    publish_status: true
    host: 127.0.0.1
    port: %d
    username: bot@localhost
    password: "b0t secret"
    status: chat
    status_message: "Echoing your messages"
    presence_interval: 60
    ping_interval: 1
    debug: true
    tls_ca_file: %s
    reconnect_delay: 200ms
    reconnect_max_delay: 1s
  - name: echo
    kind: echo
    transport_name: xmpp
`, p.port, p.caFile))
	first := env.WaitStatus(func(s *schemas.Status) bool { return s.Type == "connected" && s.Status == schemas.StatusOK }, 30*time.Second)
	if jid, _ := first.Details["jid"].(string); !strings.HasPrefix(jid, "bot@localhost/") {
		t.Errorf("connected status details %v", first.Details)
	}

	alice := p.login("alice", "alice pass")
	t.Run("subscription is accepted", func(t *testing.T) {
		alice.send("<presence type='subscribe' to='bot@localhost'/>")
		alice.expect(t, "subscribed from bot", func(st *stanza) bool {
			return st.XMLName.Local == "presence" && st.Type == "subscribed" && bareOf(st.From) == "bot@localhost"
		})
		alice.expect(t, "subscription request from bot", func(st *stanza) bool {
			return st.XMLName.Local == "presence" && st.Type == "subscribe" && bareOf(st.From) == "bot@localhost"
		})
		alice.send("<presence type='subscribed' to='bot@localhost'/>")
	})
	t.Run("presence", func(t *testing.T) {
		st := alice.expect(t, "bot's presence", func(st *stanza) bool {
			return st.XMLName.Local == "presence" && st.Type == "" && bareOf(st.From) == "bot@localhost"
		})
		if st.Show != "chat" {
			t.Errorf("show %q, want chat", st.Show)
		}
	})

	roundTrip := func(t *testing.T, text string) {
		t.Helper()
		alice.send("<message to='bot@localhost' type='chat' id='m-" + esc(text) + "'><body>  " + esc(text) + " </body></message>")
		in := env.WaitInbound(func(m *schemas.UserMessage) bool { return m.Text() == text }, 30*time.Second)
		if in.From() != "alice@localhost" || in.To() != "bot@localhost" || in.Transport() != "xmpp" ||
			in.TransportType == nil || *in.TransportType != "xmpp" || in.TransportMetadata["xmpp_id"] != "m-"+text {
			t.Errorf("inbound: from %q to %q transport %q metadata %v", in.From(), in.To(), in.Transport(), in.TransportMetadata)
		}
		reply := alice.expect(t, "echo of "+text, func(st *stanza) bool {
			return st.XMLName.Local == "message" && st.Body != nil && *st.Body == text
		})
		if bareOf(reply.From) != "bot@localhost" || reply.Type != "chat" {
			t.Errorf("reply from %q type %q", reply.From, reply.Type)
		}
		out := env.WaitOutbound(func(m *schemas.UserMessage) bool { return m.InReplyTo != nil && *m.InReplyTo == in.MessageID }, 10*time.Second)
		env.WaitEvent(func(e *schemas.Event) bool {
			return e.EventType == schemas.EventAck && e.UserMessageID == out.MessageID
		}, 10*time.Second)
	}
	t.Run("message both ways", func(t *testing.T) { roundTrip(t, "hello <bot> & friends") })

	t.Run("outbound to a JID with a resource", func(t *testing.T) {
		m := schemas.NewUserMessage()
		m.ToAddr, m.Content, m.TransportName = schemas.String("alice@localhost/whatever"), schemas.String("unprompted"), schemas.String("xmpp")
		env.SendOutbound(m)
		alice.expect(t, "unprompted message", func(st *stanza) bool { return st.Body != nil && *st.Body == "unprompted" })
		env.WaitEvent(func(e *schemas.Event) bool { return e.EventType == schemas.EventAck && e.UserMessageID == m.MessageID }, 10*time.Second)
	})

	t.Run("reconnect after server restart", func(t *testing.T) {
		p.proc.Stop()
		down := env.WaitStatus(func(s *schemas.Status) bool { return s.Type == "disconnected" && s.Status == schemas.StatusDown }, 30*time.Second)
		p.start()
		env.WaitStatus(func(s *schemas.Status) bool {
			return s.Type == "connected" && s.Timestamp.After(down.Timestamp)
		}, 30*time.Second)
		alice = p.login("alice", "alice pass")
		alice.expect(t, "bot's presence after restart", func(st *stanza) bool {
			return st.XMLName.Local == "presence" && st.Type == "" && bareOf(st.From) == "bot@localhost"
		})
		roundTrip(t, "back again")
	})
}
