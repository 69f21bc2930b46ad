package irc

import (
	"reflect"
	"strings"
	"testing"

	"github.com/vumi-kafka/vumi/schemas"
)

func TestParseLine(t *testing.T) {
	cases := []struct {
		in   string
		want Line
	}{
		{"PING :irc.example.org", Line{Command: "PING", Params: []string{"irc.example.org"}}},
		{":alice!a@host PRIVMSG #vumi :hello there\r\n", Line{Prefix: "alice!a@host", Command: "PRIVMSG", Params: []string{"#vumi", "hello there"}}},
		{":srv 001 bot :Welcome", Line{Prefix: "srv", Command: "001", Params: []string{"bot", "Welcome"}}},
		{":srv 353 bot = #vumi :@alice bot", Line{Prefix: "srv", Command: "353", Params: []string{"bot", "=", "#vumi", "@alice bot"}}},
		{"privmsg  bob  :x", Line{Command: "PRIVMSG", Params: []string{"bob", "x"}}},
		{"", Line{}},
		{":only-prefix", Line{Prefix: "only-prefix"}},
		{"NICK :", Line{Command: "NICK", Params: []string{""}}},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := ParseLine(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseLine(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{":a!b@c PRIVMSG #x :\x01ACTION y\x01", "PING :x", ":", " : ", "\x01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := ParseLine(s)
		if m, ok := messageFromLine(l, "bot"); ok {
			_ = inboundMessage(m, "srv:6667", "irc", "irc")
		}
	})
}

func TestAddressing(t *testing.T) {
	cases := []struct {
		name, recipient, content string
		channel                  string
		addressed                bool
	}{
		{"private", "bot", "hi", "", true},
		{"private to someone else", "carol", "hi", "", false},
		{"colon", "#vumi", "bot: hi", "#vumi", true},
		{"comma", "#vumi", "BOT, hi", "#vumi", true},
		{"bare nick", "#vumi", "bot", "#vumi", true},
		{"not first", "#vumi", "hi bot", "#vumi", false},
		{"prefix of longer nick", "#vumi", "bottle: hi", "#vumi", false},
		{"empty", "#vumi", "", "#vumi", false},
		{"ampersand channel", "&local", "bot: x", "&local", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := Message{Recipient: Canonicalize(tc.recipient), Content: tc.content}
			if got := m.Channel(); got != tc.channel {
				t.Errorf("Channel() = %q, want %q", got, tc.channel)
			}
			if got := m.AddressedTo("Bot"); got != tc.addressed {
				t.Errorf("AddressedTo = %v, want %v", got, tc.addressed)
			}
		})
	}
}

func TestInboundMessage(t *testing.T) {
	cases := []struct {
		name      string
		line      string
		wantTo    *string
		wantGroup *string
		content   string
		command   string
	}{
		{"private", ":Alice!a@h PRIVMSG Bot :hello", schemas.String("bot"), nil, "hello", "PRIVMSG"},
		{"addressed in channel", ":alice!a@h PRIVMSG #Vumi :bot:   hello  there", schemas.String("Bot"), schemas.String("#vumi"), "hello  there", "PRIVMSG"},
		{"channel chatter", ":alice!a@h PRIVMSG #vumi :hello", nil, schemas.String("#vumi"), "hello", "PRIVMSG"},
		{"action", ":alice!a@h PRIVMSG Bot :\x01ACTION waves\x01", schemas.String("bot"), nil, "waves", "ACTION"},
		{"notice", ":alice!a@h NOTICE Bot :psst", schemas.String("bot"), nil, "psst", "NOTICE"},
		{"latin-1", ":alice!a@h PRIVMSG Bot :caf\xe9", schemas.String("bot"), nil, "café", "PRIVMSG"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := messageFromLine(ParseLine(tc.line), "Bot")
			if !ok {
				t.Fatal("not a message")
			}
			got := inboundMessage(m, "127.0.0.1:6667", "irc_tn", "irc")
			if !reflect.DeepEqual(got.ToAddr, tc.wantTo) || !reflect.DeepEqual(got.Group, tc.wantGroup) || got.Text() != tc.content {
				t.Errorf("to %v group %v content %q", ptr(got.ToAddr), ptr(got.Group), got.Text())
			}
			if got.From() != "alice" || got.Transport() != "irc_tn" {
				t.Errorf("from %q transport %q", got.From(), got.Transport())
			}
			meta := got.HelperMetadata["irc"].(map[string]any)
			if meta["irc_command"] != tc.command || meta["irc_server"] != "127.0.0.1:6667" || meta["transport_nickname"] != "Bot" {
				t.Errorf("helper_metadata %v", meta)
			}
			if (tc.wantGroup == nil) != (got.TransportMetadata["irc_channel"] == nil) {
				t.Errorf("transport_metadata %v", got.TransportMetadata)
			}
		})
	}
	for _, line := range []string{":a!b@c PRIVMSG bot :\x01VERSION\x01", ":a!b@c JOIN #x", "PRIVMSG bot :no prefix", ":a!b@c PRIVMSG bot"} {
		if _, ok := messageFromLine(ParseLine(line), "bot"); ok {
			t.Errorf("%q: want no message", line)
		}
	}
}

func ptr(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestOutboundTarget(t *testing.T) {
	cases := []struct {
		name                     string
		to, group                *string
		meta                     schemas.Metadata
		tmeta                    schemas.Metadata
		command, target, content string
		wantErr                  string
	}{
		{name: "private", to: schemas.String("alice"), command: "PRIVMSG", target: "alice", content: "hi"},
		{name: "channel addressed", to: schemas.String("alice"), group: schemas.String("#vumi"), command: "PRIVMSG", target: "#vumi", content: "alice: hi"},
		{name: "channel to all", group: schemas.String("#vumi"), command: "PRIVMSG", target: "#vumi", content: "hi"},
		{name: "legacy irc_channel", to: schemas.String("alice"), tmeta: schemas.Metadata{"irc_channel": "#old"}, command: "PRIVMSG", target: "#old", content: "alice: hi"},
		{name: "action in channel", to: schemas.String("alice"), group: schemas.String("#vumi"), meta: schemas.Metadata{"irc": map[string]any{"irc_command": "ACTION"}}, command: "ACTION", target: "#vumi", content: "hi"},
		{name: "notice", to: schemas.String("alice"), meta: schemas.Metadata{"irc": map[string]any{"irc_command": "notice"}}, command: "NOTICE", target: "alice", content: "hi"},
		{name: "no address", wantErr: "neither"},
		{name: "bad command", to: schemas.String("a"), meta: schemas.Metadata{"irc": map[string]any{"irc_command": "KICK"}}, wantErr: "KICK"},
		{name: "injection", to: schemas.String("alice\r\nQUIT"), wantErr: "not an IRC"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &schemas.UserMessage{ToAddr: tc.to, Group: tc.group, Content: schemas.String("hi"), HelperMetadata: tc.meta, TransportMetadata: tc.tmeta}
			cmd, target, content, err := outboundTarget(m)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || cmd != tc.command || target != tc.target || content != tc.content {
				t.Errorf("got %q %q %q %v", cmd, target, content, err)
			}
		})
	}
}

func TestOutboundLines(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes
	cases := []struct {
		name, command, target, content string
		want                           []string
	}{
		{"plain", "PRIVMSG", "alice", "hi", []string{"PRIVMSG alice :hi"}},
		{"lines", "PRIVMSG", "#v", "a\r\nb\rc", []string{"PRIVMSG #v :a", "PRIVMSG #v :b", "PRIVMSG #v :c"}},
		{"action", "ACTION", "#v", "waves", []string{"PRIVMSG #v :\x01ACTION waves\x01"}},
		{"notice", "NOTICE", "bob", "n", []string{"NOTICE bob :n"}},
		{"long", "PRIVMSG", "bob", long, []string{"PRIVMSG bob :" + strings.Repeat("é", 198), "PRIVMSG bob :" + strings.Repeat("é", 102)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := outboundLines(tc.command, tc.target, tc.content); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := Config{Nickname: "bot", TwistedEndpoint: "tcp:host=irc.example.org:port=6667"}
		c.TransportName = "irc"
		return c
	}
	cases := []struct {
		name     string
		mod      func(*Config)
		wantErr  string
		wantAddr string
	}{
		{name: "endpoint", mod: func(*Config) {}, wantAddr: "irc.example.org:6667"},
		{name: "network and default port", mod: func(c *Config) { c.TwistedEndpoint, c.Network = "", "irc.example.org" }, wantAddr: "irc.example.org:6667"},
		{name: "network and port", mod: func(c *Config) { c.TwistedEndpoint, c.Network, c.Port = "", "irc.example.org", 7000 }, wantAddr: "irc.example.org:7000"},
		{name: "no endpoint", mod: func(c *Config) { c.TwistedEndpoint = "" }, wantErr: "key twisted_endpoint: is required"},
		{name: "both", mod: func(c *Config) { c.Network = "x" }, wantErr: "not both"},
		{name: "port alone", mod: func(c *Config) { c.Port = 7000 }, wantErr: "key port"},
		{name: "bad endpoint", mod: func(c *Config) { c.TwistedEndpoint = "tcp:host=x" }, wantErr: "key twisted_endpoint"},
		{name: "no nickname", mod: func(c *Config) { c.Nickname = "" }, wantErr: "key nickname: is required"},
		{name: "bad nickname", mod: func(c *Config) { c.Nickname = "1bot" }, wantErr: "key nickname"},
		{name: "bad channel", mod: func(c *Config) { c.Channels = []string{"#ok", "vumi"} }, wantErr: "key channels[1]"},
		{name: "bad delays", mod: func(c *Config) { c.ReconnectDelay, c.ReconnectMaxDelay = 10e9, 1e9 }, wantErr: "key reconnect_max_delay"},
		{name: "no transport_name", mod: func(c *Config) { c.TransportName = "" }, wantErr: "key transport_name"},
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
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.addr != tc.wantAddr || c.TransportType != "irc" {
				t.Errorf("addr %q type %q", c.addr, c.TransportType)
			}
		})
	}
}
