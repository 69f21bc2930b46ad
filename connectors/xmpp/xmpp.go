// Package xmpp is Vumi's XMPP transport: a Jabber client that logs in as
// one account, accepts every subscription request, announces its presence
// and turns chat messages to it into Vumi messages (and back).
//
// The client is written on encoding/xml: STARTTLS (RFC 6120 §5), SASL
// SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN, resource binding, roster, presence
// and XEP-0199 pings. It reconnects with exponential backoff.
package xmpp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/connectors/tcpclient"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Seconds is an interval given as Vumi gives it, a number of seconds
// (60, 0.5), or as a Go duration ("1m", "500ms").
type Seconds time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Seconds) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("must be a number of seconds or a duration such as 30s")
	}
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil && n.Tag != "!!str" {
		*s = Seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("must be a number of seconds or a duration such as 30s, got %q", n.Value)
	}
	*s = Seconds(d)
	return nil
}

// D is the interval as a time.Duration.
func (s Seconds) D() time.Duration { return time.Duration(s) }

// Config is Vumi's XMPPTransport config.
type Config struct {
	transport.Config `yaml:",inline"`
	// Host and Port of the XMPP server. Host required; port default 5222.
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// Username is the account's JID, user@domain (a /resource is
	// optional). Required.
	Username string `yaml:"username"`
	// Password of the account. Required. Never logged.
	Password string `yaml:"password"`
	// Status is the presence "show": chat, away, xa or dnd; empty means
	// plainly available. Any other text is sent as the status text (Vumi
	// sent status as the text: its tutorial has "status: Playing with
	// Vumi."). Default "".
	Status string `yaml:"status"`
	// StatusMessage is the natural-language status text; it takes
	// precedence over a textual status. Default "".
	StatusMessage string `yaml:"status_message"`
	// PresenceInterval between presence broadcasts. Default 60 seconds.
	PresenceInterval Seconds `yaml:"presence_interval"`
	// PingInterval between keep-alive pings to the server; a ping not
	// answered within the interval drops the connection. Default 60 s.
	PingInterval Seconds `yaml:"ping_interval"`
	// Debug logs all the XMPP traffic (except SASL data) at debug level.
	Debug bool `yaml:"debug"`
	// RequireTLS refuses to authenticate unless the server offers
	// STARTTLS. Default true.
	RequireTLS *bool `yaml:"require_tls"`
	// TLSCAFile is a PEM file of CAs to verify the server with; default
	// the system roots. TLSServerName defaults to the JID's domain.
	TLSCAFile     string `yaml:"tls_ca_file"`
	TLSServerName string `yaml:"tls_server_name"`
	// TLSInsecureSkipVerify does not verify the server's certificate.
	TLSInsecureSkipVerify bool `yaml:"tls_insecure_skip_verify"`
	// SASLMechanism forces one of SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN;
	// default the best the server offers.
	SASLMechanism string `yaml:"sasl_mechanism"`
	// ReconnectDelay is the first delay before reconnecting, doubled after
	// each failed attempt up to ReconnectMaxDelay. Defaults 1s and 60s.
	ReconnectDelay    time.Duration `yaml:"reconnect_delay"`
	ReconnectMaxDelay time.Duration `yaml:"reconnect_max_delay"`
	// TransportType of inbound messages. Default "xmpp".
	TransportType string `yaml:"transport_type"`

	jid     JID
	tlsConf *tls.Config
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if c.Host == "" {
		return errors.New("key host: is required")
	}
	if c.Port == 0 {
		c.Port = 5222
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("key port: must be between 1 and 65535, got %d", c.Port)
	}
	if c.Username == "" {
		return errors.New("key username: is required (the account's JID, user@domain)")
	}
	jid, err := ParseJID(c.Username)
	if err != nil {
		return fmt.Errorf("key username: %w", err)
	}
	if jid.Local == "" {
		return fmt.Errorf("key username: %q has no user part (want user@domain)", c.Username)
	}
	c.jid = jid
	if c.Password == "" {
		return errors.New("key password: is required")
	}
	if strings.ContainsAny(c.Status, "\x00\r") {
		return fmt.Errorf("key status: %q contains control characters", c.Status)
	}
	if c.PresenceInterval == 0 {
		c.PresenceInterval = Seconds(time.Minute)
	}
	if c.PingInterval == 0 {
		c.PingInterval = Seconds(time.Minute)
	}
	if c.PresenceInterval < 0 {
		return fmt.Errorf("key presence_interval: must be positive, got %v", c.PresenceInterval.D())
	}
	if c.PingInterval < 0 {
		return fmt.Errorf("key ping_interval: must be positive, got %v", c.PingInterval.D())
	}
	if c.RequireTLS == nil {
		t := true
		c.RequireTLS = &t
	}
	c.SASLMechanism = strings.ToUpper(c.SASLMechanism)
	switch c.SASLMechanism {
	case "", "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256":
	default:
		return fmt.Errorf("key sasl_mechanism: %q is not SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN", c.SASLMechanism)
	}
	c.tlsConf = &tls.Config{ServerName: c.TLSServerName, InsecureSkipVerify: c.TLSInsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return fmt.Errorf("key tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("key tls_ca_file: no PEM certificate in %s", c.TLSCAFile)
		}
		c.tlsConf.RootCAs = pool
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
	if c.TransportType == "" {
		c.TransportType = schemas.TransportXMPP
	}
	return nil
}

// Kinds returns the XMPP transport kind.
func Kinds() []*topology.Kind {
	return []*topology.Kind{{
		Name: "xmpp", Aliases: []string{"vumi.transports.xmpp.XMPPTransport", "vumi.transports.xmpp.xmpp.XMPPTransport"},
		Role: topology.RoleTransport, Summary: "XMPP (Jabber) client: chat messages to its account are inbound messages",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return &Transport{deps: deps, spec: spec, cfg: spec.Config.(*Config)}, nil
		},
	}}
}

// Transport is the XMPP transport worker.
type Transport struct {
	deps *topology.Deps
	spec *topology.WorkerSpec
	cfg  *Config
	t    *transport.Transport

	mu  sync.Mutex
	cur *conn // the logged-in connection, or nil
	ids atomic.Uint64
}

// Run connects (and reconnects) and consumes outbound messages until ctx
// is cancelled.
func (tr *Transport) Run(ctx context.Context) error {
	t, err := transport.New(tr.deps, tr.spec, &tr.cfg.Config)
	if err != nil {
		return err
	}
	defer t.Close()
	tr.t = t
	t.Log = t.Log.With("jid", tr.cfg.jid.Bare())
	t.Log.Info("starting XMPP transport", "host", tr.cfg.Host, "port", tr.cfg.Port)
	loopCtx, stop := context.WithCancel(ctx)
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		tr.connectLoop(loopCtx)
	}()
	runErr := t.Run(ctx, transport.HandlerFunc(tr.handleOutbound))
	stop()
	<-loopDone
	t.Log.Info("XMPP transport stopped")
	return runErr
}

func (tr *Transport) dialConfig() dialConfig {
	return dialConfig{
		addr:       net.JoinHostPort(tr.cfg.Host, strconv.Itoa(tr.cfg.Port)),
		jid:        tr.cfg.jid,
		password:   tr.cfg.Password,
		tls:        tr.cfg.tlsConf,
		requireTLS: *tr.cfg.RequireTLS,
		mechanism:  tr.cfg.SASLMechanism,
		log:        tr.t.Log,
		debug:      tr.cfg.Debug,
	}
}

func (tr *Transport) connectLoop(ctx context.Context) {
	pub := context.WithoutCancel(ctx)
	delay := tr.cfg.ReconnectDelay
	downReported := false
	for ctx.Err() == nil {
		loggedIn, err := tr.connectOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case loggedIn:
			delay = tr.cfg.ReconnectDelay
			_ = tr.t.Status(pub, "xmpp", schemas.StatusDown, "disconnected", "XMPP connection lost: "+errText(err), nil)
			downReported = true
		case !downReported:
			_ = tr.t.Status(pub, "xmpp", schemas.StatusDown, "connection_failed", "Cannot log in to the XMPP server: "+errText(err), nil)
			downReported = true
		}
		if errors.Is(err, errAuth) {
			delay = tr.cfg.ReconnectMaxDelay
		}
		tr.t.Log.Warn("XMPP connection ended; reconnecting", "error", err, "delay", delay)
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
		return "stream closed"
	}
	return err.Error()
}

func (tr *Transport) nextID(prefix string) string {
	return prefix + strconv.FormatUint(tr.ids.Add(1), 10)
}

// connectOnce logs in and serves one connection until it ends.
func (tr *Transport) connectOnce(ctx context.Context) (loggedIn bool, err error) {
	c, err := dial(ctx, tr.dialConfig())
	if err != nil {
		return false, err
	}
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(connCtx, c.close)
	defer stop()
	defer c.close()
	tr.t.Log.Info("logged in to XMPP server", "bound_jid", c.jid, "tls", c.tls, "sasl", c.mech)
	tr.mu.Lock()
	tr.cur = c
	tr.mu.Unlock()
	defer func() {
		tr.mu.Lock()
		if tr.cur == c {
			tr.cur = nil
		}
		tr.mu.Unlock()
	}()
	pub := context.WithoutCancel(ctx)
	_ = tr.t.Status(pub, "xmpp", schemas.StatusOK, "connected", "Logged in as "+c.jid, schemas.Metadata{"jid": c.jid})

	// Fetch the roster (so that the server sends us its presence and
	// pending subscriptions), then announce ourselves.
	if err := c.send(iq("get", "", tr.nextID("roster"), "<query xmlns='"+nsRoster+"'/>")); err != nil {
		return true, err
	}
	if err := tr.sendPresence(c); err != nil {
		return true, err
	}

	// pongs carries the ids of answered pings.
	pongs := make(chan string, 4)
	readErr := make(chan error, 1)
	readDone := make(chan struct{})
	// busy counts the inbound messages the reader has started to publish
	// (odd while it waits for Kafka to take one): it reads nothing
	// meanwhile (backpressure), so an unanswered ping says nothing about
	// the server until the reader has caught up with what was sent
	// before the answer.
	var busy atomic.Int64
	go func() {
		defer close(readDone)
		readErr <- tr.readLoop(connCtx, c, pongs, &busy)
	}()
	// Whatever ends this connection, the reader finishes (publishing what
	// it was handling) before we return.
	defer func() { c.close(); <-readDone }()

	presence := time.NewTicker(tr.cfg.PresenceInterval.D())
	defer presence.Stop()
	ping := time.NewTicker(tr.cfg.PingInterval.D())
	defer ping.Stop()
	outstanding := ""
	var busyAtPing int64
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case err := <-readErr:
			return true, err
		case id := <-pongs:
			if id == outstanding {
				outstanding = ""
			}
		case <-presence.C:
			if err := tr.sendPresence(c); err != nil {
				return true, err
			}
		case <-ping.C:
			if b := busy.Load(); outstanding != "" && (b%2 == 1 || b != busyAtPing) {
				// The reader was publishing since the ping went out:
				// the answer may be waiting unread behind messages.
				busyAtPing = b
				continue
			}
			if outstanding != "" {
				return true, errors.New("keep-alive ping not answered within ping_interval")
			}
			outstanding = tr.nextID("ping")
			busyAtPing = busy.Load()
			if err := c.send(iq("get", tr.cfg.jid.Bare(), outstanding, "<ping xmlns='"+nsPing+"'/>")); err != nil {
				return true, err
			}
		}
	}
}

func (tr *Transport) sendPresence(c *conn) error {
	return c.send(presenceStanza(tr.cfg.Status, tr.cfg.StatusMessage))
}

// presenceStanza is the available presence for status and status_message.
func presenceStanza(status, message string) string {
	s := "<presence>"
	switch status {
	case "chat", "away", "xa", "dnd":
		s += "<show>" + status + "</show>"
	default:
		if message == "" {
			message = status
		}
	}
	if message != "" {
		s += "<status>" + esc(message) + "</status>"
	}
	return s + "</presence>"
}

// readLoop handles incoming stanzas until the stream ends. A message is
// published before the next stanza is read: while Kafka is slow or
// unreachable the reader waits (retrying until the connection ends), so
// what the server sends waits unread in the socket instead of in memory.
// busy is incremented when a publish starts and again when it ends.
func (tr *Transport) readLoop(ctx context.Context, c *conn, pongs chan<- string, busy *atomic.Int64) error {
	for {
		st, err := c.next()
		if err != nil {
			return err
		}
		switch st.XMLName.Local {
		case "message":
			busy.Add(1)
			tr.handleMessage(ctx, st)
			busy.Add(1)
		case "presence":
			if err := tr.handlePresence(c, st); err != nil {
				return err
			}
		case "iq":
			if err := tr.handleIQ(c, st, pongs); err != nil {
				return err
			}
		}
	}
}

// handlePresence accepts subscription requests (and removals) at once,
// as Vumi's TransportPresenceClientProtocol.
func (tr *Transport) handlePresence(c *conn, st *stanza) error {
	from := bareOf(st.From)
	if from == "" {
		return nil
	}
	switch st.Type {
	case "subscribe":
		tr.t.Log.Info("accepting subscription", "from", from)
		if err := c.send("<presence type='subscribed' to='" + esc(from) + "'/>"); err != nil {
			return err
		}
		return c.send("<presence type='subscribe' to='" + esc(from) + "'/>")
	case "unsubscribe":
		tr.t.Log.Info("accepting unsubscription", "from", from)
		if err := c.send("<presence type='unsubscribed' to='" + esc(from) + "'/>"); err != nil {
			return err
		}
		return c.send("<presence type='unsubscribe' to='" + esc(from) + "'/>")
	case "", "unavailable":
		tr.t.Log.Debug("presence", "from", st.From, "type", st.Type, "show", st.Show)
	}
	return nil
}

// handleIQ answers pings and roster pushes, matches our pings' answers,
// and refuses every other request (RFC 6120 §8.2.3).
func (tr *Transport) handleIQ(c *conn, st *stanza, pongs chan<- string) error {
	switch st.Type {
	case "result", "error":
		if strings.HasPrefix(st.ID, "ping") {
			select {
			case pongs <- st.ID:
			default:
			}
		}
		return nil
	case "get", "set":
		var reply string
		switch {
		case st.Ping != nil && st.Type == "get", st.Roster != nil && st.Type == "set":
			reply = "<iq type='result' id='" + esc(st.ID) + "'"
			if st.From != "" {
				reply += " to='" + esc(st.From) + "'"
			}
			reply += "/>"
		default:
			reply = "<iq type='error' id='" + esc(st.ID) + "'"
			if st.From != "" {
				reply += " to='" + esc(st.From) + "'"
			}
			reply += "><error type='cancel'><service-unavailable xmlns='" + nsStanzas + "'/></error></iq>"
		}
		return c.send(reply)
	}
	return nil
}

// inboundMessage is Vumi's XMPPTransportProtocol.onMessage: nil when the
// stanza is not a message with a body for us.
func inboundMessage(st *stanza, ownBare, transportName, transportType string) *schemas.UserMessage {
	if st.Body == nil || st.Type == "error" || st.Type == "groupchat" || st.From == "" {
		return nil
	}
	m := schemas.NewUserMessage()
	m.ToAddr = schemas.String(ownBare)
	m.FromAddr = schemas.String(bareOf(st.From))
	m.ToAddrType = schemas.String(schemas.AddrJabberID)
	m.FromAddrType = schemas.String(schemas.AddrJabberID)
	m.Content = schemas.String(strings.TrimSpace(*st.Body))
	m.TransportName = schemas.String(transportName)
	m.TransportType = schemas.String(transportType)
	var id any
	if st.ID != "" {
		id = st.ID
	}
	m.TransportMetadata = schemas.Metadata{"xmpp_id": id}
	return m
}

// handleMessage publishes a chat message, retrying while Kafka is
// unreachable until ctx (the connection) ends; each attempt is bounded
// (tcpclient.PublishContext), and one still running when the connection
// ends finishes first.
func (tr *Transport) handleMessage(ctx context.Context, st *stanza) {
	m := inboundMessage(st, tr.cfg.jid.Bare(), tr.cfg.TransportName, tr.cfg.TransportType)
	if m == nil {
		return
	}
	err := tcpclient.Publish(ctx, tr.t.Log, "the XMPP server", "inbound message not published", func(pctx context.Context) error {
		m2 := *m // the same message_id on every attempt
		return tr.t.PublishMessage(pctx, &m2)
	})
	if err != nil {
		tr.t.Log.Error("cannot publish inbound message", "from_addr", m.From(), "error", err)
	}
}

// outboundStanza is Vumi's reply: a chat message to the bare JID of
// to_addr, with a unique id and no from (the server fills it in).
func outboundStanza(m *schemas.UserMessage, id string) (string, error) {
	to := m.To()
	if to == "" {
		return "", errors.New("message has no to_addr")
	}
	jid, err := ParseJID(to)
	if err != nil {
		return "", fmt.Errorf("to_addr: %w", err)
	}
	return "<message to='" + esc(jid.Bare()) + "' type='chat' id='" + esc(id) + "'><body>" + esc(m.Text()) + "</body></message>", nil
}

// handleOutbound sends one chat message and acks it; when not logged in
// it is a temporary failure.
func (tr *Transport) handleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	s, err := outboundStanza(m, tr.nextID("vumi"))
	if err != nil {
		return worker.Permanent(err)
	}
	tr.mu.Lock()
	c := tr.cur
	tr.mu.Unlock()
	if c == nil {
		return worker.Temporary(errors.New("XMPP transport not connected"))
	}
	if err := c.send(s); err != nil {
		return worker.Temporary(fmt.Errorf("send to XMPP server: %w", err))
	}
	return tr.t.PublishAck(ctx, m.MessageID, m.MessageID)
}
