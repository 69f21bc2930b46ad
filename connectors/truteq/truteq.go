// Package truteq is Vumi's TruteqTransport: USSD over TruTeq's SSMI
// protocol, a TCP client that logs in, checks the link every
// link_check_period seconds and reconnects with Vumi's back-off.
//
// Inbound USSD_MESSAGE and EXTENDED_USSD_MESSAGE commands become user
// messages: session type 1 (new) starts a session whose USSD code (with a
// "#" appended when missing) is kept in the transport's session table for
// ussd_session_lifetime seconds under the user's number, so that any
// instance can continue it; 2 (response) resumes it and 3 (end) and 4
// (timeout) close it. Outbound messages become SEND_USSD_MESSAGE commands
// of type 1, 2 or 3 for session_event new, resume (or none) and close.
package truteq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vumi-kafka/vumi/connectors/tcpclient"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/internal/endpoint"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's TruteqTransportConfig.
type Config struct {
	transport.Config `yaml:",inline"`
	// Username and Password of the TruTeq account. Required.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TwistedEndpoint is the SSMI server; default
	// "tcp:host=sms.truteq.com:port=50008".
	TwistedEndpoint string `yaml:"twisted_endpoint"`
	// Host and Port are Vumi's deprecated alternative to twisted_endpoint.
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// LinkCheckPeriod is the number of seconds between link checks; a
	// check still unanswered when the next one is due drops the
	// connection. Default 60.
	LinkCheckPeriod int `yaml:"link_check_period"`
	// UssdSessionLifetime is how many seconds a session is kept after it
	// starts. Default 300.
	UssdSessionLifetime int `yaml:"ussd_session_lifetime"`
	// Debug logs every SSMI command sent and received (passwords
	// redacted).
	Debug bool `yaml:"debug"`
	// RedisManager is accepted for compatibility with Vumi configs and
	// ignored: sessions live in the session table.
	RedisManager map[string]any `yaml:"redis_manager"`
	// InitialReconnectDelay and MaxReconnectDelay bound the delay before
	// reconnecting, in seconds (it grows by a factor of e). Defaults 1 and
	// 3600, Vumi's ReconnectingClientService.
	InitialReconnectDelay float64 `yaml:"initial_reconnect_delay"`
	MaxReconnectDelay     float64 `yaml:"max_reconnect_delay"`

	addr string
}

const defaultEndpoint = "tcp:host=sms.truteq.com:port=50008"

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if err := tcpclient.Required([2]string{"username", c.Username}, [2]string{"password", c.Password}); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"username", c.Username}, {"password", c.Password}} {
		if strings.ContainsAny(kv[1], ",\r\n") {
			return fmt.Errorf("key %s: may not contain a comma or a line break (SSMI separators)", kv[0])
		}
	}
	switch {
	case c.TwistedEndpoint != "" && (c.Host != "" || c.Port != 0):
		return errors.New("key twisted_endpoint: give either twisted_endpoint or the deprecated host and port, not both")
	case c.Host != "" || c.Port != 0:
		if c.Host == "" || c.Port == 0 {
			return errors.New("key host: the deprecated host and port must be given together")
		}
		if c.Port < 1 || c.Port > 65535 {
			return fmt.Errorf("key port: must be between 1 and 65535, got %d", c.Port)
		}
		c.addr = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	default:
		if c.TwistedEndpoint == "" {
			c.TwistedEndpoint = defaultEndpoint
		}
		addr, err := endpoint.Client(c.TwistedEndpoint)
		if err != nil {
			return fmt.Errorf("key twisted_endpoint: %w", err)
		}
		c.addr = addr
	}
	if err := tcpclient.Seconds("link_check_period", &c.LinkCheckPeriod, 60); err != nil {
		return err
	}
	if err := tcpclient.Seconds("ussd_session_lifetime", &c.UssdSessionLifetime, 300); err != nil {
		return err
	}
	return tcpclient.ReconnectDelays(&c.InitialReconnectDelay, &c.MaxReconnectDelay)
}

// IO implements topology.WorkerConfig: the transport's topics and its
// session table.
func (c *Config) IO(name string) topology.IO {
	return ussdsession.AddIO(c.Config.IO(name), c.TransportName)
}

// Kind is the TruTeq SSMI transport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "truteq_ussd", Aliases: []string{"vumi.transports.truteq.TruteqTransport", "vumi.transports.truteq.truteq.TruteqTransport"},
		Role: topology.RoleTransport, Summary: "TruTeq USSD over SSMI (TCP client: login, link checks, reconnects)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return &Transport{deps: deps, spec: spec, cfg: spec.Config.(*Config)}, nil
		},
	}
}

// Timings that are not Vumi config; tests shorten them.
var (
	dialTimeout  = 30 * time.Second
	loginTimeout = 30 * time.Second
	// sendWait is how long an outbound message waits for a logged-in
	// connection before it is nacked.
	sendWait = 30 * time.Second
	// sessionGrace is how long a resume or end waits for a session
	// another instance just started to reach this instance's table.
	sessionGrace = 3 * time.Second
	writeTimeout = 10 * time.Second
)

// Inbound work is spread over lanes keyed by the user's number, at most
// laneDepth waiting per lane: a full lane stops the reader.
const (
	lanes      = 16
	laneDepth  = 4
	readBuffer = 64 << 10
)

// Status components and types.
const component = "ssmi"

// peer names the SSMI server in log lines.
const peerName = "the SSMI server"

// Transport is the TruTeq transport worker.
type Transport struct {
	deps *topology.Deps
	spec *topology.WorkerSpec
	cfg  *Config

	tcpclient.Client[conn]
}

// conn is one logged-in (or logging-in) connection.
type conn struct {
	*tcpclient.Conn
	loginCh chan error // the login's outcome, once
	// linkPending is set when a link check is sent and cleared by its ACK.
	linkPending atomic.Bool
	loggedIn    atomic.Bool
}

// Run connects and serves until ctx ends.
func (tr *Transport) Run(ctx context.Context) error {
	return tr.Client.Run(ctx, tr.deps, tr.spec, &tr.cfg.Config, component, time.Duration(tr.cfg.UssdSessionLifetime)*time.Second, tr, tr.connectLoop)
}

// connectLoop keeps a logged-in connection, reconnecting with back-off.
func (tr *Transport) connectLoop(ctx context.Context) {
	tr.Status(ctx, schemas.StatusDown, "connecting", "Connecting to the SSMI server "+tr.cfg.addr)
	tcpclient.Reconnect(ctx, tcpclient.NewBackoff(tr.cfg.InitialReconnectDelay, tr.cfg.MaxReconnectDelay), tr.session, func(d time.Duration) {
		tr.Log.Info("reconnecting to the SSMI server", "addr", tr.cfg.addr, "in", d)
	})
}

// session runs one connection: dial, login, link checks, reading. It
// reports whether the login succeeded.
func (tr *Transport) session(ctx context.Context) bool {
	tc := tr.Dial(ctx, tr.cfg.addr, dialTimeout, readBuffer, "cannot connect to the SSMI server", "Cannot connect to the SSMI server: ")
	if tc == nil {
		return false
	}
	c := &conn{Conn: tc, loginCh: make(chan error, 1)}
	c.Go(func() { tr.read(ctx, c) })
	defer func() {
		tr.Cur.Set(nil)
		c.Stop()
	}()
	if err := tr.write(c, encodeRequest(reqLogin, []byte(tr.cfg.Username), []byte(tr.cfg.Password))); err != nil {
		tr.lost(ctx, c, false)
		return false
	}
	switch res, err := tcpclient.AwaitLogin(ctx, c.Conn, c.loginCh, loginTimeout); res {
	case tcpclient.LoginRefused:
		tr.Log.Error("the SSMI server refused the login", "username", tr.cfg.Username, "error", err)
		tr.Status(ctx, schemas.StatusDown, "login_failed", "The SSMI server refused the login: "+err.Error())
		c.Close(err)
		return false
	case tcpclient.LoginLost:
		tr.lost(ctx, c, false)
		return false
	case tcpclient.LoginTimeout:
		tr.Log.Error("no answer to the login", "within", loginTimeout)
		tr.Status(ctx, schemas.StatusDown, "login_timeout", fmt.Sprintf("No answer to the login within %v", loginTimeout))
		c.Close(errors.New("login timed out"))
		return false
	case tcpclient.LoginStopped:
		tr.logout(c)
		return false
	}
	c.loggedIn.Store(true)
	tr.Log.Info("logged in to the SSMI server", "addr", tr.cfg.addr, "username", tr.cfg.Username)
	tr.Status(ctx, schemas.StatusOK, "connected", "Logged in to the SSMI server")
	tr.Cur.Set(c)

	period := time.Duration(tr.cfg.LinkCheckPeriod) * time.Second
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			tr.Cur.Set(nil)
			tr.logout(c)
			return true
		case <-c.Closed():
			tr.lost(ctx, c, true)
			return true
		case <-tick.C:
		}
		if c.linkPending.Load() {
			tr.Log.Warn("link check unanswered; reconnecting", "period", period)
			tr.Status(ctx, schemas.StatusDown, "link_check_failed", fmt.Sprintf("No answer to a link check within %v", period))
			c.Close(errors.New("link check unanswered"))
			return true
		}
		c.linkPending.Store(true)
		if err := tr.write(c, encodeRequest(reqLinkCheck)); err != nil {
			tr.lost(ctx, c, true)
			return true
		}
	}
}

func (tr *Transport) lost(ctx context.Context, c *conn, wasUp bool) {
	tr.Lost(ctx, c.Conn, "Connection to the SSMI server lost", "connection to the SSMI server lost", "logged_in", wasUp)
}

// logout says goodbye at shutdown.
func (tr *Transport) logout(c *conn) {
	_ = tr.write(c, encodeRequest(reqLogout))
	c.Close(errors.New("logged out"))
}

func (tr *Transport) write(c *conn, line []byte) error {
	if tr.cfg.Debug {
		tr.Log.Info("ssmi >>", "line", redact(line))
	}
	return c.Write(line, writeTimeout)
}

// redact hides the password of a LOGIN line.
func redact(line []byte) string {
	s := strings.TrimSuffix(latin1(line), "\r")
	if strings.HasPrefix(s, ssmiHeader+","+reqLogin+",") {
		parts := strings.SplitN(s, ",", 4)
		if len(parts) == 4 {
			parts[3] = "***"
		}
		return strings.Join(parts, ",")
	}
	return s
}

type inbound struct {
	frame *Frame
	raw   []byte
}

// read reads lines until the connection ends; USSD messages go to lanes
// by number (so that each user's messages keep their order), the rest is
// handled here.
func (tr *Transport) read(ctx context.Context, c *conn) {
	lanes := tcpclient.NewLanes(lanes, laneDepth, func(in inbound) { tr.handleUSSD(ctx, in) })
	defer lanes.Close()
	var lr lineReader
	c.ReadLoop(lr.feed, func() bool {
		for {
			line, tooLong, ok := lr.next()
			if !ok {
				return true
			}
			if tooLong {
				tr.malformed(ctx, nil, "", fmt.Errorf("%w: line longer than %d bytes discarded", ErrMalformed, maxLine))
				continue
			}
			raw := append([]byte(nil), line...)
			if tr.cfg.Debug {
				tr.Log.Info("ssmi <<", "line", latin1(raw))
			}
			if len(raw) == 0 {
				continue
			}
			f, err := ParseResponse(raw)
			if err != nil {
				tr.malformed(ctx, raw, "", err)
				continue
			}
			if !tr.dispatch(ctx, c, lanes, inbound{f, raw}) {
				return false
			}
		}
	}, "closed by the SSMI server")
}

// dispatch handles one parsed command; false stops reading.
func (tr *Transport) dispatch(ctx context.Context, c *conn, lanes *tcpclient.Lanes[inbound], in inbound) bool {
	f := in.frame
	switch f.ID {
	case respAck:
		switch f.Get("ack_type") {
		case ackLoginOK:
			select {
			case c.loginCh <- nil:
			default:
			}
		case ackLinkCheck:
			c.linkPending.Store(false)
		default:
			tr.Log.Info("ACK from the SSMI server", "ack_type", f.Get("ack_type"))
		}
	case respNack:
		if !c.loggedIn.Load() {
			select {
			case c.loginCh <- fmt.Errorf("NACK (nack_type %s)", f.Get("nack_type")):
			default:
			}
		} else {
			tr.Log.Warn("NACK from the SSMI server", "nack_type", f.Get("nack_type"))
		}
	case respUSSD, respExtUSSD:
		tr.T.Count("frames.ussd", 1)
		return lanes.Dispatch(ctx, f.Get("msisdn"), in)
	case respLogout:
		tr.Log.Warn("received remote logout command", "ip", f.Get("ip"))
		tr.Status(ctx, schemas.StatusDegraded, "remote_logout", "The SSMI server logged us out (ip "+f.Get("ip")+")")
	case respMO, respBinMO, respPremMO, respPremBMO:
		tr.malformed(ctx, in.raw, f.Get("msisdn"), worker.Permanent(fmt.Errorf("unsupported SSMI command %s (only USSD is supported), dropped", f.Name)))
	default: // SEQ, DR, FREE_FORM, IMSI_LOOKUP_REPLY: nothing asked for them
		tr.Log.Info("SSMI command ignored", "command", f.Name, "line", latin1(in.raw))
	}
	return true
}

// malformed logs a line that could not be handled and publishes it to the
// failures topic; the connection goes on.
func (tr *Transport) malformed(ctx context.Context, raw []byte, key string, err error) {
	tr.Log.Warn("SSMI command not handled", "error", err, "line", clip(latin1(raw)))
	tr.T.Count("frames.malformed", 1)
	tcpclient.SendFailure(ctx, tr.T, tr.cfg.TransportName, raw, key, err)
}

// Vumi's mapping of SSMI USSD types to session events.
var ssmiToVumi = map[string]schemas.SessionEvent{
	ussdNew:      schemas.SessionNew,
	ussdResponse: schemas.SessionResume,
	ussdEnd:      schemas.SessionClose,
	ussdTimeout:  schemas.SessionClose,
}

// genfieldNames are the colon-separated fields of an extended USSD
// message, in order.
var genfieldNames = []string{"IMSI", "Subscriber Type", "OperatorID", "SessionID", "ValiPort"}

// handleUSSD turns a USSD command into an inbound message (Vumi's
// handle_raw_inbound_message).
func (tr *Transport) handleUSSD(ctx context.Context, in inbound) {
	f := in.frame
	genfields := map[string]any{}
	if f.ID == respExtUSSD {
		vals := strings.Split(f.Get("genfields"), ":")
		for i, name := range genfieldNames {
			genfields[name] = ""
			if i < len(vals) {
				genfields[name] = vals[i]
			}
		}
	}
	ev, ok := ssmiToVumi[f.Get("type")]
	if !ok {
		tr.malformed(ctx, in.raw, f.Get("msisdn"), fmt.Errorf("%w: USSD type %q is not one of 1 (new), 2 (response), 3 (end), 4 (timeout)", ErrMalformed, clip(f.Get("type"))))
		return
	}
	msisdn := middleware.NormalizeMSISDN(f.Get("msisdn"), "")
	if msisdn == "" {
		tr.malformed(ctx, in.raw, "", fmt.Errorf("%w: empty msisdn", ErrMalformed))
		return
	}
	text := f.Get("message")
	var content *string
	var session ussdsession.Session
	if ev == schemas.SessionNew {
		if !strings.HasSuffix(text, "#") {
			text += "#"
		}
		session = ussdsession.Session{"ussd_code": text, "created_at": strconv.FormatInt(time.Now().Unix(), 10)}
		if err := tcpclient.Publish(ctx, tr.Log, peerName, "session not stored", func(pctx context.Context) error {
			return tr.Sessions.Put(pctx, msisdn, session)
		}); err != nil {
			tr.malformed(ctx, in.raw, msisdn, worker.Temporary(fmt.Errorf("session for %s not stored: %w", msisdn, err)))
			return
		}
	} else {
		content = &text
		s, err := tcpclient.GetWithGrace(ctx, tr.Sessions, msisdn, sessionGrace)
		if err != nil || s == nil {
			if err == nil {
				err = worker.Permanent(fmt.Errorf("no USSD session for %s (never started, or older than ussd_session_lifetime %ds)", msisdn, tr.cfg.UssdSessionLifetime))
			}
			tr.malformed(ctx, in.raw, msisdn, err)
			return
		}
		session = s
	}
	if ev == schemas.SessionClose {
		dctx, cancel := tcpclient.PublishContext(ctx)
		err := tr.Sessions.Delete(dctx, msisdn)
		cancel()
		if err != nil {
			tr.Log.Warn("session not cleared; it expires with its lifetime", "msisdn", msisdn, "error", err)
		}
	}
	m := &schemas.UserMessage{
		FromAddr: schemas.String(msisdn), ToAddr: schemas.String(session["ussd_code"]),
		SessionEvent: &ev, Content: content, TransportType: schemas.String(schemas.TransportUSSD),
		TransportMetadata: schemas.Metadata{},
		HelperMetadata:    schemas.Metadata{"truteq": map[string]any{"genfields": genfields}},
	}
	// Published even while stopping (it came from the peer); retried
	// while Kafka is unreachable until the transport stops.
	err := tcpclient.Publish(ctx, tr.Log, peerName, "inbound message not published", func(pctx context.Context) error {
		m2 := *m
		return tr.T.PublishMessage(pctx, &m2)
	})
	if err != nil {
		tr.malformed(ctx, in.raw, msisdn, fmt.Errorf("inbound message not published: %w", err))
	}
}

// Vumi's mapping of session events to SSMI USSD types.
var vumiToSSMI = map[schemas.SessionEvent]string{
	"":                    ussdResponse,
	schemas.SessionNew:    ussdNew,
	schemas.SessionResume: ussdResponse,
	schemas.SessionClose:  ussdEnd,
}

// HandleOutbound implements transport.Handler: it writes a
// SEND_USSD_MESSAGE on the logged-in connection and acks it (SSMI does not
// acknowledge sends), or nacks what cannot be sent.
func (tr *Transport) HandleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	msisdn := strings.Trim(m.To(), "+")
	if msisdn == "" || strings.ContainsAny(msisdn, ",\r\n") {
		return tr.T.PublishNack(ctx, m.MessageID, fmt.Sprintf("invalid to_addr %q for SSMI", m.To()))
	}
	typ, ok := vumiToSSMI[m.Session()]
	if !ok {
		return tr.T.PublishNack(ctx, m.MessageID, fmt.Sprintf("unknown session_event %q", m.Session()))
	}
	text, err := toLatin1(ussdText(m.Text()))
	if err != nil {
		return tr.T.PublishNack(ctx, m.MessageID, err.Error())
	}
	line := encodeRequest(reqSendUSSD, []byte(msisdn), []byte(typ), text)
	switch err := tcpclient.Send(ctx, &tr.Cur, tr.Stopping, sendWait, func(c *conn) error { return tr.write(c, line) }); err {
	case nil:
		tr.T.Count("sent", 1)
		return tr.T.PublishAck(ctx, m.MessageID, m.MessageID)
	case tcpclient.ErrNotConnected:
		return tr.T.PublishNack(ctx, m.MessageID, fmt.Sprintf("not connected to the SSMI server (waited %v)", sendWait))
	default:
		return transport.ErrRedeliver
	}
}
