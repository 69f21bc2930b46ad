package irc_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/chattest"
	"github.com/vumi-kafka/vumi/connectors/irc"
	"github.com/vumi-kafka/vumi/processors/apps/words"
	"github.com/vumi-kafka/vumi/processors/routers"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// startNgircd runs a real ngircd on 127.0.0.1:port with a temporary config.
func startNgircd(t *testing.T, port int) *chattest.Process {
	t.Helper()
	bin := chattest.RequireBinary(t, "ngircd", "apt-get install ngircd")
	dir := t.TempDir()
	// ngircd drops root privileges to nobody: let it write its pid file.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "ngircd.conf")
	text := fmt.Sprintf(`[Global]
	Name = irc.vumi.test
	Info = vumi test server
	AdminInfo1 = vumi tests
	AdminInfo2 = loopback
	AdminEMail = nobody@localhost
	Listen = 127.0.0.1
	Ports = %d
	MotdPhrase = "vumi test server"
	PidFile = %s/ngircd.pid
[Limits]
	MaxNickLength = 30
	PingTimeout = 120
	PongTimeout = 20
	MaxConnectionsIP = 0
[Options]
	PAM = no
	Ident = no
	DNS = no
`, port, dir)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return chattest.StartProcess(t, port, bin, "-n", "-f", conf)
}

// ircUser is a person on IRC, typing raw protocol lines.
type ircUser struct {
	t     *testing.T
	nick  string
	conn  net.Conn
	lines chan irc.Line
}

func connectUser(t *testing.T, port int, nick string) *ircUser {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	u := &ircUser{t: t, nick: nick, conn: conn, lines: make(chan irc.Line, 1000)}
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		defer close(u.lines)
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			l := irc.ParseLine(sc.Text())
			if l.Command == "PING" {
				u.send("PONG :" + l.Param(0))
				continue
			}
			u.lines <- l
		}
	}()
	u.send("NICK " + nick)
	u.send("USER " + nick + " 0 * :test user")
	u.expect("welcome", 10*time.Second, func(l irc.Line) bool { return l.Command == "001" })
	return u
}

func (u *ircUser) send(line string) {
	_ = u.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := u.conn.Write([]byte(line + "\r\n")); err != nil {
		u.t.Errorf("%s: send %q: %v", u.nick, line, err)
	}
}

func (u *ircUser) expect(what string, within time.Duration, match func(irc.Line) bool) irc.Line {
	u.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-u.lines:
			if !ok {
				u.t.Fatalf("%s: connection closed while waiting for %s", u.nick, what)
			}
			if match(l) {
				return l
			}
		case <-deadline:
			u.t.Fatalf("%s: no %s within %v", u.nick, what, within)
		}
	}
}

func (u *ircUser) join(ch string) {
	u.t.Helper()
	u.send("JOIN " + ch)
	u.expect("join "+ch, 10*time.Second, func(l irc.Line) bool {
		return l.Command == "JOIN" && l.Nick() == u.nick && strings.EqualFold(l.Param(0), ch)
	})
}

// waitMember asks the server for a channel's names until nick is there.
func (u *ircUser) waitMember(ch, nick string, within time.Duration) {
	u.t.Helper()
	deadline := time.Now().Add(within)
	for {
		u.send("NAMES " + ch)
		found := false
		u.expect("end of names", 10*time.Second, func(l irc.Line) bool {
			if l.Command == "353" {
				for _, n := range strings.Fields(l.Param(len(l.Params) - 1)) {
					if strings.TrimLeft(n, "@+") == nick {
						found = true
					}
				}
			}
			return l.Command == "366"
		})
		if found {
			return
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("%s never joined %s", nick, ch)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (u *ircUser) expectFrom(from, command, target, text string) {
	u.t.Helper()
	u.expect(fmt.Sprintf("%s %s :%s from %s", command, target, text, from), 20*time.Second, func(l irc.Line) bool {
		return l.Command == command && l.Nick() == from && strings.EqualFold(l.Param(0), target) && l.Param(1) == text
	})
}

func testKinds() *topology.Registry {
	r := topology.NewRegistry()
	r.Add(irc.Kinds()...)
	r.Add(words.Kinds()...)
	return r
}

func ircMeta(m *schemas.UserMessage) map[string]any {
	v, _ := m.HelperMetadata["irc"].(map[string]any)
	return v
}

// TestNgircd runs the IRC transport and the echo application against a
// real ngircd: nickname collision, joining channels, private and channel
// messages, actions and notices both ways, and reconnecting after the
// server restarts.
func TestNgircd(t *testing.T) {
	port := chattest.FreePort(t)
	server := startNgircd(t, port)

	alice := connectUser(t, port, "alice")
	alice.join("#vumi")
	// Someone already has the bot's nickname: the bot becomes "vumibot^".
	squatter := connectUser(t, port, "vumibot")

	env := chattest.Start(t, testKinds(), "irc", fmt.Sprintf(`
  - name: irc_transport
    kind: vumi.transports.irc.IrcTransport
    transport_name: irc
    publish_status: true
    twisted_endpoint: tcp:host=127.0.0.1:port=%d
    nickname: vumibot
    channels: ["#vumi", "#other"]
    reconnect_delay: 200ms
    reconnect_max_delay: 1s
  - name: echo
    kind: echo
    transport_name: irc
`, port))

	const bot = "vumibot^"
	alice.expect("bot joining #vumi", 30*time.Second, func(l irc.Line) bool {
		return l.Command == "JOIN" && l.Nick() == bot && l.Param(0) == "#vumi"
	})
	env.WaitStatus(func(s *schemas.Status) bool {
		return s.Status == schemas.StatusOK && s.Type == "connected" && s.Details["nickname"] == bot
	}, 10*time.Second)
	_ = squatter

	cases := []struct {
		name      string
		send      string
		wantIn    func(t *testing.T, m *schemas.UserMessage)
		wantReply func(u *ircUser)
	}{
		{
			name: "private message",
			send: "PRIVMSG " + bot + " :hello bot",
			wantIn: func(t *testing.T, m *schemas.UserMessage) {
				if m.To() != bot || m.Group != nil || ircMeta(m)["irc_command"] != "PRIVMSG" || ircMeta(m)["addressed_to_transport"] != true {
					t.Errorf("inbound: to %q group %v meta %v", m.To(), m.Group, m.HelperMetadata)
				}
			},
			wantReply: func(u *ircUser) { u.expectFrom(bot, "PRIVMSG", "alice", "hello bot") },
		},
		{
			name: "addressed channel message",
			send: "PRIVMSG #vumi :VumiBot^: how are you",
			wantIn: func(t *testing.T, m *schemas.UserMessage) {
				if m.To() != bot || m.Group == nil || *m.Group != "#vumi" || m.Text() != "how are you" {
					t.Errorf("inbound: to %q group %v content %q", m.To(), m.Group, m.Text())
				}
				if m.TransportMetadata["irc_channel"] != "#vumi" || ircMeta(m)["irc_server"] == "" {
					t.Errorf("metadata: %v %v", m.TransportMetadata, m.HelperMetadata)
				}
			},
			wantReply: func(u *ircUser) { u.expectFrom(bot, "PRIVMSG", "#vumi", "alice: how are you") },
		},
		{
			name: "channel chatter",
			send: "PRIVMSG #vumi :just chatting",
			wantIn: func(t *testing.T, m *schemas.UserMessage) {
				if m.ToAddr != nil || *m.Group != "#vumi" || ircMeta(m)["addressed_to_transport"] != false {
					t.Errorf("inbound: to %v group %v meta %v", m.ToAddr, m.Group, m.HelperMetadata)
				}
			},
			// The echo application answers every message, in the channel.
			wantReply: func(u *ircUser) { u.expectFrom(bot, "PRIVMSG", "#vumi", "alice: just chatting") },
		},
		{
			name: "action",
			send: "PRIVMSG " + bot + " :\x01ACTION waves\x01",
			wantIn: func(t *testing.T, m *schemas.UserMessage) {
				if m.Text() != "waves" || ircMeta(m)["irc_command"] != "ACTION" {
					t.Errorf("inbound: %q %v", m.Text(), m.HelperMetadata)
				}
			},
			wantReply: func(u *ircUser) { u.expectFrom(bot, "PRIVMSG", "alice", "\x01ACTION waves\x01") },
		},
		{
			name: "notice",
			send: "NOTICE " + bot + " :a notice",
			wantIn: func(t *testing.T, m *schemas.UserMessage) {
				if m.Text() != "a notice" || ircMeta(m)["irc_command"] != "NOTICE" {
					t.Errorf("inbound: %q %v", m.Text(), m.HelperMetadata)
				}
			},
			wantReply: func(u *ircUser) { u.expectFrom(bot, "NOTICE", "alice", "a notice") },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			alice.send(tc.send)
			text := tc.send[strings.Index(tc.send, " :")+2:]
			in := env.WaitInbound(func(m *schemas.UserMessage) bool {
				return m.From() == "alice" && strings.HasSuffix(strings.Trim(text, "\x01"), m.Text())
			}, 20*time.Second)
			if in.TransportType == nil || *in.TransportType != "irc" || in.Transport() != "irc" {
				t.Errorf("transport fields: %v %v", in.TransportType, in.TransportName)
			}
			tc.wantIn(t, in)
			tc.wantReply(alice)
			reply := env.WaitOutbound(func(m *schemas.UserMessage) bool { return m.InReplyTo != nil && *m.InReplyTo == in.MessageID }, 10*time.Second)
			env.WaitEvent(func(e *schemas.Event) bool {
				return e.EventType == schemas.EventAck && e.UserMessageID == reply.MessageID
			}, 10*time.Second)
		})
	}

	t.Run("outbound to a nickname", func(t *testing.T) {
		m := schemas.NewUserMessage()
		m.ToAddr, m.Content, m.TransportName = schemas.String("alice"), schemas.String("line one\nline two"), schemas.String("irc")
		env.SendOutbound(m)
		alice.expectFrom(bot, "PRIVMSG", "alice", "line one")
		alice.expectFrom(bot, "PRIVMSG", "alice", "line two")
		env.WaitEvent(func(e *schemas.Event) bool {
			return e.EventType == schemas.EventAck && e.UserMessageID == m.MessageID && e.SentMessageID != nil && *e.SentMessageID == m.MessageID
		}, 10*time.Second)
	})

	t.Run("reconnect after server restart", func(t *testing.T) {
		server.Stop()
		env.WaitStatus(func(s *schemas.Status) bool { return s.Status == schemas.StatusDown && s.Type == "disconnected" }, 20*time.Second)
		// Sending while disconnected is a temporary failure, as in Vumi.
		m := schemas.NewUserMessage()
		m.ToAddr, m.Content, m.TransportName = schemas.String("alice"), schemas.String("lost"), schemas.String("irc")
		env.SendOutbound(m)
		f := env.WaitFailure(func(f *schemas.Failure) bool {
			return f.Message != nil && strings.Contains(*f.Message, m.MessageID)
		}, 20*time.Second)
		if f.FailureCode == nil || *f.FailureCode != schemas.FailureTemporary {
			t.Errorf("failure code %v, want temporary", f.FailureCode)
		}

		startNgircd(t, port)
		// The squatter is gone: the bot gets its own nickname back.
		bob := connectUser(t, port, "bob")
		bob.join("#vumi")
		bob.waitMember("#vumi", "vumibot", 30*time.Second)
		bob.send("PRIVMSG #vumi :vumibot, back again?")
		in := env.WaitInbound(func(m *schemas.UserMessage) bool { return m.From() == "bob" }, 20*time.Second)
		if in.To() != "vumibot" || in.Text() != "back again?" {
			t.Errorf("inbound after reconnect: to %q content %q", in.To(), in.Text())
		}
		bob.expectFrom("vumibot", "PRIVMSG", "#vumi", "bob: back again?")
	})
}

// TestNgircdBotPool is Vumi's FromAddrMultiplexRouter use case: two bots
// (two irc transports) presented to one echo application as a single
// transport; each reply leaves through the bot it was sent to.
func TestNgircdBotPool(t *testing.T) {
	port := chattest.FreePort(t)
	startNgircd(t, port)
	alice := connectUser(t, port, "alice")
	kinds := testKinds()
	kinds.Add(routers.Kinds()...)
	env := chattest.Start(t, kinds, "irc", fmt.Sprintf(`
  - name: bot_one
    kind: irc
    transport_name: irc1
    twisted_endpoint: 127.0.0.1:%[1]d
    nickname: vumione
  - name: bot_two
    kind: irc
    transport_name: irc2
    twisted_endpoint: 127.0.0.1:%[1]d
    nickname: vumitwo
  - name: pool
    kind: dispatcher
    router_class: vumi.dispatchers.base.FromAddrMultiplexRouter
    transport_names: [irc1, irc2]
    exposed_names: [irc]
    fromaddr_mappings: {vumione: irc1, vumitwo: irc2}
  - name: echo
    kind: echo
    transport_name: irc
`, port))
	for _, bot := range []string{"vumione", "vumitwo"} {
		t.Run(bot, func(t *testing.T) {
			deadline := time.Now().Add(30 * time.Second)
			text := "hello " + bot
			for {
				// The bot may not have signed on yet: IRC says 401 (no
				// such nick) until it has.
				alice.send("PRIVMSG " + bot + " :" + text)
				l := alice.expect("echo or 401", 10*time.Second, func(l irc.Line) bool {
					return (l.Command == "PRIVMSG" && l.Nick() == bot && l.Param(1) == text) || (l.Command == "401" && l.Param(1) == bot)
				})
				if l.Command == "PRIVMSG" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s never signed on", bot)
				}
				time.Sleep(200 * time.Millisecond)
			}
			in := env.WaitInbound(func(m *schemas.UserMessage) bool { return m.Text() == text }, 10*time.Second)
			if in.Transport() != "irc" || in.To() != bot {
				t.Errorf("inbound via the pool: transport %q to %q", in.Transport(), in.To())
			}
		})
	}
}
