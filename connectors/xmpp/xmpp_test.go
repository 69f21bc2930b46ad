package xmpp

import (
	"bytes"
	"encoding/xml"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func TestParseJID(t *testing.T) {
	cases := []struct {
		in, bare, resource string
		wantErr            bool
	}{
		{in: "bot@Example.org", bare: "bot@example.org"},
		{in: "bot@example.org/vumi", bare: "bot@example.org", resource: "vumi"},
		{in: "example.org", bare: "example.org"},
		{in: "a@b/c/d", bare: "a@b", resource: "c/d"},
		{in: "@example.org", wantErr: true},
		{in: "bot@", wantErr: true},
		{in: "bot@example.org/", wantErr: true},
		{in: "b'ot@example.org", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			j, err := ParseJID(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", j)
				}
				return
			}
			if err != nil || j.Bare() != tc.bare || j.Resource != tc.resource {
				t.Errorf("got %+v %v", j, err)
			}
		})
	}
}

// TestSCRAMSHA1 replays the exchange of RFC 5802 §5.
func TestSCRAMSHA1(t *testing.T) {
	m, _ := newMechanism("SCRAM-SHA-1", "user", "pencil")
	s := m.(*scram)
	s.nonce = "fyko+d2lbbFgONRv9qkxdawL"
	s.clientFirst = "n=user,r=" + s.nonce
	resp, err := s.Next([]byte("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="; string(resp) != want {
		t.Errorf("client-final %q, want %q", resp, want)
	}
	if err := s.Verify([]byte("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")); err != nil {
		t.Errorf("server signature: %v", err)
	}
	if err := s.Verify([]byte("v=AAAApqV8S7suAoZWja4dJRkFsKQ=")); err == nil {
		t.Error("a wrong server signature verified")
	}
}

// TestSCRAMSHA256 replays the exchange of RFC 7677 §3.
func TestSCRAMSHA256(t *testing.T) {
	m, _ := newMechanism("SCRAM-SHA-256", "user", "pencil")
	s := m.(*scram)
	s.nonce = "rOprNGfwEbeRWgbNEkqO"
	s.clientFirst = "n=user,r=" + s.nonce
	resp, err := s.Next([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="; string(resp) != want {
		t.Errorf("client-final %q, want %q", resp, want)
	}
	if err := s.Verify([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); err != nil {
		t.Errorf("server signature: %v", err)
	}
}

func TestSCRAMRejects(t *testing.T) {
	cases := map[string]string{
		"foreign nonce":  "r=other,s=QSXCR+Q6sek8bf92,i=4096",
		"same nonce":     "r=NONCE,s=QSXCR+Q6sek8bf92,i=4096",
		"bad salt":       "r=NONCEx,s=!!,i=4096",
		"bad iterations": "r=NONCEx,s=QSXCR+Q6sek8bf92,i=0",
		"server error":   "e=other-error",
	}
	for name, challenge := range cases {
		t.Run(name, func(t *testing.T) {
			m, _ := newMechanism("SCRAM-SHA-256", "u", "p")
			s := m.(*scram)
			s.nonce, s.clientFirst = "NONCE", "n=u,r=NONCE"
			if _, err := s.Next([]byte(challenge)); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	cases := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"60", time.Minute, false},
		{"0.5", 500 * time.Millisecond, false},
		{"2m", 2 * time.Minute, false},
		{"\"30\"", 0, true},
		{"soon", 0, true},
		{"[1]", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			var s Seconds
			err := yaml.Unmarshal([]byte(tc.in), &s)
			if (err != nil) != tc.wantErr || (!tc.wantErr && s.D() != tc.want) {
				t.Errorf("got %v, %v", s.D(), err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := Config{Host: "talk.example.org", Username: "bot@example.org", Password: "secret"}
		c.TransportName = "xmpp"
		return c
	}
	cases := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{name: "defaults", mod: func(*Config) {}},
		{name: "no host", mod: func(c *Config) { c.Host = "" }, wantErr: "key host: is required"},
		{name: "bad port", mod: func(c *Config) { c.Port = 70000 }, wantErr: "key port"},
		{name: "no username", mod: func(c *Config) { c.Username = "" }, wantErr: "key username: is required"},
		{name: "domain only", mod: func(c *Config) { c.Username = "example.org" }, wantErr: "key username"},
		{name: "no password", mod: func(c *Config) { c.Password = "" }, wantErr: "key password: is required"},
		{name: "bad status", mod: func(c *Config) { c.Status = "busy\r" }, wantErr: "key status"},
		{name: "negative ping", mod: func(c *Config) { c.PingInterval = -1 }, wantErr: "key ping_interval"},
		{name: "bad mechanism", mod: func(c *Config) { c.SASLMechanism = "DIGEST-MD5" }, wantErr: "key sasl_mechanism"},
		{name: "missing CA file", mod: func(c *Config) { c.TLSCAFile = "/nonexistent.pem" }, wantErr: "key tls_ca_file"},
		{name: "delays", mod: func(c *Config) { c.ReconnectDelay = time.Hour }, wantErr: "key reconnect_max_delay"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error reveals the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Port != 5222 || c.PingInterval.D() != time.Minute || c.PresenceInterval.D() != time.Minute || !*c.RequireTLS || c.TransportType != "xmpp" {
				t.Errorf("defaults: %+v", c)
			}
		})
	}
}

func decodeStanza(t testing.TB, s string) *stanza {
	var st stanza
	if err := xml.Unmarshal([]byte(s), &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func TestPresenceStanza(t *testing.T) {
	cases := []struct{ status, message, want string }{
		{"", "", "<presence></presence>"},
		{"chat", "", "<presence><show>chat</show></presence>"},
		{"dnd", "Busy & away", "<presence><show>dnd</show><status>Busy &amp; away</status></presence>"},
		{"Playing with Vumi.", "", "<presence><status>Playing with Vumi.</status></presence>"},
		{"Playing", "Echoing", "<presence><status>Echoing</status></presence>"},
	}
	for _, tc := range cases {
		if got := presenceStanza(tc.status, tc.message); got != tc.want {
			t.Errorf("presenceStanza(%q, %q) = %q, want %q", tc.status, tc.message, got, tc.want)
		}
	}
}

func TestInboundMessage(t *testing.T) {
	cases := []struct {
		name, xml, from, content string
		id                       any
	}{
		{"chat", `<message from='alice@example.org/phone' to='bot@example.org' type='chat' id='m1'><body> hi there </body></message>`, "alice@example.org", "hi there", "m1"},
		{"normal without id", `<message from='alice@example.org'><body>x</body></message>`, "alice@example.org", "x", nil},
		{"escaped", `<message from='a@b' type='chat'><body>&lt;3 &amp; more</body></message>`, "a@b", "<3 & more", nil},
		{"no body (chat state)", `<message from='a@b' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, "", "", nil},
		{"error", `<message from='a@b' type='error'><body>x</body></message>`, "", "", nil},
		{"groupchat", `<message from='room@muc/a' type='groupchat'><body>x</body></message>`, "", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := inboundMessage(decodeStanza(t, tc.xml), "bot@example.org", "xmpp_tn", "xmpp")
			if tc.from == "" {
				if m != nil {
					t.Fatalf("want no message, got %+v", m)
				}
				return
			}
			if m.From() != tc.from || m.To() != "bot@example.org" || m.Text() != tc.content || m.Transport() != "xmpp_tn" || m.TransportMetadata["xmpp_id"] != tc.id {
				t.Errorf("got from %q to %q content %q metadata %v", m.From(), m.To(), m.Text(), m.TransportMetadata)
			}
		})
	}
}

func TestOutboundStanza(t *testing.T) {
	cases := []struct {
		name    string
		to      *string
		content string
		want    string
		wantErr bool
	}{
		{"bare", schemas.String("alice@example.org"), "hi", "<message to='alice@example.org' type='chat' id='x1'><body>hi</body></message>", false},
		{"resource dropped", schemas.String("alice@example.org/phone"), "a<b & 'c'", "<message to='alice@example.org' type='chat' id='x1'><body>a&lt;b &amp; &#39;c&#39;</body></message>", false},
		{"no to_addr", nil, "hi", "", true},
		{"bad JID", schemas.String("alice@"), "hi", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := outboundStanza(&schemas.UserMessage{ToAddr: tc.to, Content: &tc.content}, "x1")
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %q, %v", got, err)
			}
		})
	}
}

// TestDebugRedactsSASL: with debug on, traffic is logged but never the
// SASL data that carries the password.
func TestDebugRedactsSASL(t *testing.T) {
	var logs bytes.Buffer
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = bytes.NewBuffer(nil).ReadFrom(b) }()
	c := &conn{raw: a, debug: true, log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	m, _ := newMechanism("PLAIN", "bot", "hunter2")
	first, _ := m.Start()
	if err := c.sendSecret("<auth>" + b64(first) + "</auth>"); err != nil {
		t.Fatal(err)
	}
	if err := c.send("<presence/>"); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, b64(first)) || strings.Contains(out, "hunter2") || !strings.Contains(out, "redacted") || !strings.Contains(out, "presence") {
		t.Errorf("debug log:\n%s", out)
	}
}

func FuzzStanza(f *testing.F) {
	f.Add(`<message from='a@b/c' type='chat' id='1'><body>x</body></message>`)
	f.Add(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
	f.Fuzz(func(t *testing.T, s string) {
		var st stanza
		if xml.Unmarshal([]byte(s), &st) != nil {
			return
		}
		_ = inboundMessage(&st, "bot@b", "x", "xmpp")
		_ = errorCondition(&st)
		_ = streamErrorText(st)
	})
}

// TestLoadConfig decodes worker sections as a config file would: Vumi's
// numeric intervals, and unknown keys refused with the key named.
func TestLoadConfig(t *testing.T) {
	r := topology.NewRegistry()
	r.Add(Kinds()...)
	head := "cluster:\n  partitions: 1\nworkers:\n  - name: x\n    kind: vumi.transports.xmpp.XMPPTransport\n    transport_name: xmpp\n    host: talk.example.org\n    username: bot@example.org\n    password: pw\n"
	cases := []struct {
		name, extra, wantErr string
		ping                 time.Duration
	}{
		{name: "seconds", extra: "    ping_interval: 30\n", ping: 30 * time.Second},
		{name: "duration", extra: "    ping_interval: 1m30s\n", ping: 90 * time.Second},
		{name: "typo", extra: "    ping_intervl: 30\n", wantErr: "ping_intervl"},
		{name: "wrong type", extra: "    debug: very\n", wantErr: "debug"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := topology.Load("test.yaml", []byte(head+tc.extra), r, func(string) (string, bool) { return "", false })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.Workers[0].Config.(*Config)
			if c.PingInterval.D() != tc.ping {
				t.Errorf("ping_interval %v, want %v", c.PingInterval.D(), tc.ping)
			}
		})
	}
}
