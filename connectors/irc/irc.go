// Package irc is Vumi's IRC transport: an IRC bot that joins channels and
// bridges what it is told, in channels or privately, to Vumi messages.
//
// Inbound: a private message is addressed to the bot (to_addr is its
// nickname, group null); a channel message has the channel as its group and
// is addressed to the bot (to_addr its nickname, the "nick:" prefix
// stripped) only when it starts with the bot's nickname, otherwise to_addr
// is null. Outbound: a message with a group goes to that channel, prefixed
// with "to_addr: " when it has a to_addr (except for actions); otherwise it
// is a private message to to_addr. helper_metadata.irc.irc_command selects
// PRIVMSG (default), NOTICE or ACTION.
package irc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/connectors/tcpclient"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/endpoint"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's IrcConfig.
type Config struct {
	transport.Config `yaml:",inline"`
	// TwistedEndpoint is the IRC server, e.g. "tcp:host=irc.libera.chat:port=6667".
	// Required, unless the deprecated network (and port) are given.
	TwistedEndpoint string `yaml:"twisted_endpoint"`
	// Network and Port are Vumi's deprecated alternative to
	// twisted_endpoint. Port defaults to 6667.
	Network string `yaml:"network"`
	Port    int    `yaml:"port"`
	// Nickname the bot asks for. Required. On a collision '^' is appended.
	Nickname string `yaml:"nickname"`
	// Channels to join once signed on. Default none.
	Channels []string `yaml:"channels"`
	// TransportType of inbound messages. Default "irc".
	TransportType string `yaml:"transport_type"`
	// ReconnectDelay is the first delay before reconnecting, doubled after
	// each failed attempt up to ReconnectMaxDelay. Defaults 1s and 60s.
	ReconnectDelay    time.Duration `yaml:"reconnect_delay"`
	ReconnectMaxDelay time.Duration `yaml:"reconnect_max_delay"`

	addr string
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	switch {
	case c.TwistedEndpoint != "" && c.Network != "":
		return errors.New("key twisted_endpoint: give either twisted_endpoint or the deprecated network and port, not both")
	case c.TwistedEndpoint != "":
		addr, err := endpoint.Client(c.TwistedEndpoint)
		if err != nil {
			return fmt.Errorf("key twisted_endpoint: %w", err)
		}
		c.addr = addr
	case c.Network != "":
		if c.Port == 0 {
			c.Port = 6667
		}
		if c.Port < 1 || c.Port > 65535 {
			return fmt.Errorf("key port: must be between 1 and 65535, got %d", c.Port)
		}
		c.addr = net.JoinHostPort(c.Network, strconv.Itoa(c.Port))
	default:
		return errors.New("key twisted_endpoint: is required (or the deprecated network and port)")
	}
	if c.Port != 0 && c.Network == "" {
		return errors.New("key port: needs network (or use twisted_endpoint)")
	}
	if c.Nickname == "" {
		return errors.New("key nickname: is required")
	}
	if !validNick(c.Nickname) {
		return fmt.Errorf("key nickname: %q is not an IRC nickname (letters, digits and -[]\\`^_{|}, not starting with a digit or '-')", c.Nickname)
	}
	for i, ch := range c.Channels {
		if !IsChannel(ch) || strings.ContainsAny(ch, " ,\x07\r\n\x00") {
			return fmt.Errorf("key channels[%d]: %q is not a channel name (e.g. \"#vumi\")", i, ch)
		}
	}
	if c.TransportType == "" {
		c.TransportType = schemas.TransportIRC
	}
	if c.ReconnectDelay == 0 {
		c.ReconnectDelay = time.Second
	}
	if c.ReconnectMaxDelay == 0 {
		c.ReconnectMaxDelay = time.Minute
	}
	if c.ReconnectDelay < 0 {
		return fmt.Errorf("key reconnect_delay: must be positive, got %v", c.ReconnectDelay)
	}
	if c.ReconnectMaxDelay < c.ReconnectDelay {
		return fmt.Errorf("key reconnect_max_delay: %v is less than reconnect_delay %v", c.ReconnectMaxDelay, c.ReconnectDelay)
	}
	return nil
}

func validNick(n string) bool {
	for i, r := range n {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', strings.ContainsRune("[]\\`^_{|}", r):
		case (r >= '0' && r <= '9') || r == '-':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return n != ""
}

// Kinds returns the IRC transport kind.
func Kinds() []*topology.Kind {
	return []*topology.Kind{{
		Name: "irc", Aliases: []string{"vumi.transports.irc.IrcTransport", "vumi.transports.irc.irc.IrcTransport"},
		Role: topology.RoleTransport, Summary: "IRC bot: channel and private messages, actions and notices",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return &Transport{deps: deps, spec: spec, cfg: spec.Config.(*Config)}, nil
		},
	}}
}

// Transport is the IRC transport worker.
type Transport struct {
	deps *topology.Deps
	spec *topology.WorkerSpec
	cfg  *Config
	t    *transport.Transport

	mu  sync.Mutex
	cur *session // the signed-on connection, or nil
}

// session is one connection to the server.
type session struct {
	conn   net.Conn
	server string // host:port of the server
	wmu    sync.Mutex
	mu     sync.Mutex
	nick   string
	joined map[string]bool
}

func (s *session) send(line string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := s.conn.Write([]byte(line + "\r\n"))
	return err
}

// sendAll writes lines without other writers' lines in between, so a
// multi-line message stays together.
func (s *session) sendAll(lines []string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, line := range lines {
		_ = s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := s.conn.Write([]byte(line + "\r\n")); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) nickname() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nick
}

// Run connects (and reconnects) to the server and consumes outbound
// messages until ctx is cancelled.
func (tr *Transport) Run(ctx context.Context) error {
	t, err := transport.New(tr.deps, tr.spec, &tr.cfg.Config)
	if err != nil {
		return err
	}
	defer t.Close()
	tr.t = t
	t.Log = t.Log.With("nickname", tr.cfg.Nickname, "server", tr.cfg.addr)
	loopCtx, stop := context.WithCancel(ctx)
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		tr.connectLoop(loopCtx)
	}()
	runErr := t.Run(ctx, transport.HandlerFunc(tr.handleOutbound))
	stop()
	<-loopDone
	return runErr
}

// connectLoop keeps one connection up, reconnecting with exponential
// backoff (reset after each successful sign-on).
func (tr *Transport) connectLoop(ctx context.Context) {
	pub := context.WithoutCancel(ctx)
	delay := tr.cfg.ReconnectDelay
	downReported := false
	for ctx.Err() == nil {
		signedOn, err := tr.connectOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case signedOn:
			delay = tr.cfg.ReconnectDelay
			_ = tr.t.Status(pub, "irc", schemas.StatusDown, "disconnected", "Disconnected from IRC server: "+errText(err), nil)
			downReported = true
		case !downReported:
			_ = tr.t.Status(pub, "irc", schemas.StatusDown, "connection_failed", "Cannot connect to IRC server: "+errText(err), nil)
			downReported = true
		}
		tr.t.Log.Warn("IRC connection ended; reconnecting", "error", err, "delay", delay)
		// Full jitter in [delay/2, delay].
		d := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		delay = min(delay*2, tr.cfg.ReconnectMaxDelay)
	}
}

func errText(err error) string {
	if err == nil {
		return "connection closed"
	}
	return err.Error()
}

// connectOnce runs one connection to its end; signedOn tells whether the
// server welcomed us.
func (tr *Transport) connectOnce(ctx context.Context) (signedOn bool, err error) {
	d := net.Dialer{Timeout: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", tr.cfg.addr)
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", tr.cfg.addr, err)
	}
	s := &session{conn: conn, server: conn.RemoteAddr().String(), nick: tr.cfg.Nickname, joined: map[string]bool{}}
	tr.t.Log.Info("connected to IRC server", "addr", s.server)
	stopWatch := context.AfterFunc(ctx, func() {
		_ = s.send("QUIT :shutting down")
		_ = conn.Close()
	})
	defer stopWatch()
	defer conn.Close()
	defer func() {
		tr.mu.Lock()
		if tr.cur == s {
			tr.cur = nil
		}
		tr.mu.Unlock()
	}()
	if err := s.send("NICK " + s.nick); err != nil {
		return false, err
	}
	if err := s.send("USER " + userName(tr.cfg.Nickname) + " 0 * :Vumi IRC transport"); err != nil {
		return false, err
	}
	// Keep-alive: a silent server gets a PING; no line for 3 minutes ends
	// the connection.
	keepAlive := time.NewTicker(90 * time.Second)
	ended := make(chan struct{})
	defer func() { keepAlive.Stop(); close(ended) }()
	go func() {
		for {
			select {
			case <-ended:
				return
			case <-keepAlive.C:
				if s.send("PING :keepalive") != nil {
					return
				}
			}
		}
	}()
	r := bufio.NewReaderSize(conn, 4096)
	pub := context.WithoutCancel(ctx)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Minute))
		raw, err := readLine(r)
		if err != nil {
			return signedOn, err
		}
		l := ParseLine(raw)
		switch l.Command {
		case "PING":
			_ = s.send("PONG :" + l.Param(0))
		case "001": // RPL_WELCOME: signed on
			s.mu.Lock()
			if n := l.Param(0); n != "" {
				s.nick = n
			}
			nick := s.nick
			s.mu.Unlock()
			signedOn = true
			tr.mu.Lock()
			tr.cur = s
			tr.mu.Unlock()
			tr.t.Log.Info("signed on", "as", nick)
			_ = tr.t.Status(pub, "irc", schemas.StatusOK, "connected", "Connected to "+s.server+" as "+nick, schemas.Metadata{"nickname": nick, "irc_server": s.server})
			for _, ch := range tr.cfg.Channels {
				tr.t.Log.Info("joining channel", "channel", ch)
				if err := s.send("JOIN " + ch); err != nil {
					return signedOn, err
				}
			}
		case "433", "436", "437": // nickname in use, collision, unavailable
			if signedOn {
				tr.t.Log.Warn("nickname change refused", "reason", l.Param(len(l.Params)-1))
				continue
			}
			s.mu.Lock()
			s.nick = alterCollidedNick(s.nick)
			nick := s.nick
			s.mu.Unlock()
			tr.t.Log.Warn("nickname collision; trying another", "nickname", nick)
			if err := s.send("NICK " + nick); err != nil {
				return signedOn, err
			}
		case "432": // erroneous nickname: nothing else to try
			return signedOn, fmt.Errorf("server refused nickname %q: %s", s.nickname(), l.Param(len(l.Params)-1))
		case "NICK":
			if strings.EqualFold(l.Nick(), s.nickname()) {
				s.mu.Lock()
				s.nick = l.Param(0)
				s.mu.Unlock()
			}
			tr.t.Log.Info("nick changed", "from", l.Nick(), "to", l.Param(0))
		case "JOIN":
			if strings.EqualFold(l.Nick(), s.nickname()) {
				ch := Canonicalize(l.Param(0))
				s.mu.Lock()
				s.joined[ch] = true
				s.mu.Unlock()
				tr.t.Log.Info("joined channel", "channel", ch)
			}
		case "PART", "KICK":
			who := l.Nick()
			if l.Command == "KICK" {
				who = l.Param(1)
			}
			if strings.EqualFold(who, s.nickname()) {
				ch := Canonicalize(l.Param(0))
				s.mu.Lock()
				delete(s.joined, ch)
				s.mu.Unlock()
				tr.t.Log.Warn("left channel", "channel", ch, "how", l.Command)
			}
		case "403", "405", "471", "473", "474", "475": // cannot join
			tr.t.Log.Warn("cannot join channel", "channel", l.Param(1), "reason", l.Param(len(l.Params)-1))
		case "ERROR":
			return signedOn, fmt.Errorf("server closed the connection: %s", l.Param(0))
		case "PRIVMSG", "NOTICE":
			if !signedOn {
				continue
			}
			m, ok := messageFromLine(l, s.nickname())
			if !ok {
				continue
			}
			// Published before the next line is read: while Kafka is
			// slow or unreachable the reader waits (retrying until the
			// transport stops), so what the server sends waits unread in
			// the socket instead of in memory.
			if err := tr.publishInbound(ctx, s, m); err != nil {
				tr.t.Log.Error("cannot publish inbound message", "from_addr", m.Sender, "error", err)
			}
		}
	}
}

// readLine reads one line of at most 8 KiB (IRCv3 tags included); longer
// lines are cut.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		if len(b) < 8192 {
			b = append(b, chunk...)
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// userName is the USER name derived from a nickname (no specials).
func userName(nick string) string {
	var b strings.Builder
	for _, r := range nick {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "vumi"
	}
	return b.String()
}

// inboundMessage builds the Vumi message of an IRC message, exactly as
// Vumi's handle_inbound_irc_message.
func inboundMessage(m Message, server, transportName, transportType string) *schemas.UserMessage {
	channel := m.Channel()
	addressed := m.AddressedTo(m.Nickname)
	out := schemas.NewUserMessage()
	content := m.Content
	switch {
	case channel == "":
		out.ToAddr = schemas.String(m.Recipient)
	case addressed:
		out.ToAddr = schemas.String(m.Nickname)
		_, content = splitFirstWord(content)
	}
	out.FromAddr = schemas.String(m.Sender)
	out.ToAddrType = schemas.String(schemas.AddrIRCNickname)
	out.FromAddrType = schemas.String(schemas.AddrIRCNickname)
	var ch any
	if channel != "" {
		out.Group = schemas.String(channel)
		ch = channel
	}
	out.Content = schemas.String(content)
	out.TransportName = schemas.String(transportName)
	out.TransportType = schemas.String(transportType)
	out.HelperMetadata = schemas.Metadata{"irc": map[string]any{
		"transport_nickname":     m.Nickname,
		"addressed_to_transport": addressed,
		"irc_server":             server,
		"irc_channel":            ch,
		"irc_command":            m.Command,
	}}
	out.TransportMetadata = schemas.Metadata{"irc_channel": ch}
	return out
}

// publishInbound publishes an IRC message, retrying while Kafka is
// unreachable until ctx ends; each attempt is bounded
// (tcpclient.PublishContext).
func (tr *Transport) publishInbound(ctx context.Context, s *session, m Message) error {
	in := inboundMessage(m, s.server, tr.cfg.TransportName, tr.cfg.TransportType)
	return tcpclient.Publish(ctx, tr.t.Log, "the IRC server", "inbound message not published", func(pctx context.Context) error {
		m2 := *in // the same message_id on every attempt
		return tr.t.PublishMessage(pctx, &m2)
	})
}

// outboundTarget decides where a message goes and what text it carries,
// as Vumi's handle_outbound_message.
func outboundTarget(m *schemas.UserMessage) (command, target, content string, err error) {
	command = "PRIVMSG"
	if irc, ok := m.HelperMetadata["irc"].(map[string]any); ok {
		if c, ok := irc["irc_command"].(string); ok && c != "" {
			command = strings.ToUpper(c)
		}
	}
	if command != "PRIVMSG" && command != "NOTICE" && command != "ACTION" {
		return "", "", "", fmt.Errorf("helper_metadata.irc.irc_command %q is not PRIVMSG, NOTICE or ACTION", command)
	}
	channel := ""
	if m.Group != nil {
		channel = *m.Group
	} else if c, ok := m.TransportMetadata["irc_channel"].(string); ok {
		channel = c
	}
	content = m.Text()
	switch {
	case channel != "":
		target = channel
		if m.To() != "" && command != "ACTION" {
			content = m.To() + ": " + content
		}
	case m.To() != "":
		target = m.To()
	default:
		return "", "", "", errors.New("message has neither to_addr nor group")
	}
	if strings.ContainsAny(target, " ,\r\n\x00") || strings.HasPrefix(target, ":") {
		return "", "", "", fmt.Errorf("%q is not an IRC nickname or channel", target)
	}
	return command, target, content, nil
}

// handleOutbound sends one message; when not connected it is a temporary
// failure, as in Vumi.
func (tr *Transport) handleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	command, target, content, err := outboundTarget(m)
	if err != nil {
		return worker.Permanent(err)
	}
	tr.mu.Lock()
	s := tr.cur
	tr.mu.Unlock()
	if s == nil {
		return worker.Temporary(errors.New("IRC transport not connected"))
	}
	if err := s.sendAll(outboundLines(command, target, content)); err != nil {
		return worker.Temporary(fmt.Errorf("send to IRC server: %w", err))
	}
	// IRC has no message ids: the message id doubles as sent_message_id.
	return tr.t.PublishAck(ctx, m.MessageID, m.MessageID)
}
