// Package mtnnigeria is Vumi's MtnNigeriaUssdTransport: USSD for MTN
// Nigeria over its XML-over-TCP protocol (binary headers plus XML bodies).
// The transport is a TCP client that logs in with a username, password and
// application id, sends enquire links every enquire_link_interval seconds
// (a missing answer drops the connection), answers the server's enquire
// links and reconnects with Vumi's back-off.
//
// A USSDRequest becomes an inbound message: msgtype 1 starts a session
// (its userdata, the USSD code, is kept in the session table under the
// header's session id for session_timeout_period seconds so that any
// instance can continue it); msgtype 4 with EndofSession 0 resumes it;
// anything else closes it, and the transport answers the user with
// user_termination_response. Replies become USSDResponse packets.
package mtnnigeria

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/connectors/tcpclient"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's MtnNigeriaUssdTransportConfig.
type Config struct {
	transport.Config `yaml:",inline"`
	// ServerHostname and ServerPort of MTN Nigeria's server. Required.
	ServerHostname string `yaml:"server_hostname"`
	ServerPort     int    `yaml:"server_port"`
	// Username, Password and ApplicationID authenticate. Required.
	Username      string `yaml:"username"`
	Password      string `yaml:"password"`
	ApplicationID string `yaml:"application_id"`
	// EnquireLinkInterval is the seconds between enquire links. Default 30.
	EnquireLinkInterval int `yaml:"enquire_link_interval"`
	// TimeoutPeriod is how many seconds an enquire link may go unanswered
	// (capped at enquire_link_interval). Default 30.
	TimeoutPeriod int `yaml:"timeout_period"`
	// UserTerminationResponse answers a user who ended the session.
	// Default "Session Ended".
	UserTerminationResponse *string `yaml:"user_termination_response"`
	// RedisManager is accepted for compatibility with Vumi configs and
	// ignored: sessions live in the session table.
	RedisManager map[string]any `yaml:"redis_manager"`
	// SessionTimeoutPeriod is a session's maximum length in seconds.
	// Default 600.
	SessionTimeoutPeriod int `yaml:"session_timeout_period"`
	// InitialReconnectDelay and MaxReconnectDelay bound the delay before
	// reconnecting, in seconds (growing by a factor of e). Defaults 1 and
	// 3600, Twisted's ReconnectingClientFactory.
	InitialReconnectDelay float64 `yaml:"initial_reconnect_delay"`
	MaxReconnectDelay     float64 `yaml:"max_reconnect_delay"`

	addr string
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if err := tcpclient.Required([2]string{"server_hostname", c.ServerHostname}, [2]string{"username", c.Username}, [2]string{"password", c.Password}, [2]string{"application_id", c.ApplicationID}); err != nil {
		return err
	}
	if c.ServerPort == 0 {
		return errors.New("key server_port: is required")
	}
	if c.ServerPort < 1 || c.ServerPort > 65535 {
		return fmt.Errorf("key server_port: must be between 1 and 65535, got %d", c.ServerPort)
	}
	c.addr = net.JoinHostPort(c.ServerHostname, strconv.Itoa(c.ServerPort))
	if err := tcpclient.Seconds("enquire_link_interval", &c.EnquireLinkInterval, 30); err != nil {
		return err
	}
	if err := tcpclient.Seconds("timeout_period", &c.TimeoutPeriod, 30); err != nil {
		return err
	}
	if c.UserTerminationResponse == nil {
		c.UserTerminationResponse = schemas.String("Session Ended")
	}
	if err := tcpclient.Seconds("session_timeout_period", &c.SessionTimeoutPeriod, 600); err != nil {
		return err
	}
	return tcpclient.ReconnectDelays(&c.InitialReconnectDelay, &c.MaxReconnectDelay)
}

// IO implements topology.WorkerConfig: the transport's topics and its
// session table.
func (c *Config) IO(name string) topology.IO {
	return ussdsession.AddIO(c.Config.IO(name), c.TransportName)
}

// Kind is the MTN Nigeria USSD transport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "mtn_nigeria_ussd",
		Aliases: []string{"vumi.transports.mtn_nigeria.MtnNigeriaUssdTransport",
			"vumi.transports.mtn_nigeria.mtn_nigeria_ussd.MtnNigeriaUssdTransport"},
		Role: topology.RoleTransport, Summary: "MTN Nigeria USSD over XML-over-TCP (login, enquire links, reconnects)",
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
	sendWait     = 30 * time.Second
	sessionGrace = 3 * time.Second
	writeTimeout = 10 * time.Second
)

const (
	lanes      = 16
	laneDepth  = 4
	readBuffer = 64 << 10
	component  = "xml_over_tcp"
	provider   = "mtn_nigeria"
	metaKey    = "mtn_nigeria_ussd"
)

// Error codes of the protocol.
var errorCodes = map[string]string{
	"001": "Invalid User Name Password",
	"002": "Buffer Overflow",
	"200": "No free dialogs",
	"201": "Invalid Destination  (applies for n/w initiated session only)",
	"202": "Subscriber Not reachable.",
	"203": "Timer Expiry (session with subscriber terminated due to TimerExp)",
	"204": "Subscriber is Black Listed.",
	"205": "Service not Configured. (some service is created but but no menu configured for this)",
	"206": "Network Error",
	"207": "Unknown Error",
	"208": "Invalid Message",
	"209": "Subscriber terminated Session (subscriber chose exit option)",
	"210": "Incomplete Menu",
	"211": "ER not running",
	"212": "Timeout waiting for response from ER",
}

// codedError is Vumi's CodedXmlOverTcpError.
type codedError struct{ code, reason string }

func (e *codedError) Error() string {
	msg, ok := errorCodes[e.code]
	if !ok {
		msg = "Unknown Code"
	}
	if e.reason != "" {
		return fmt.Sprintf("(%s) %s: %s", e.code, msg, e.reason)
	}
	return fmt.Sprintf("(%s) %s", e.code, msg)
}

// Fields of received packets: mandatory, and optional.
type fieldSpec struct{ mandatory, optional []string }

var (
	dataRequestFields = fieldSpec{[]string{"requestId", "msisdn", "clientId", "starCode", "msgtype", "phase", "dcs", "userdata"}, []string{"EndofSession"}}
	loginRespFields   = fieldSpec{[]string{"requestId", "authMsg"}, nil}
	loginErrFields    = fieldSpec{[]string{"requestId", "authMsg", "errorCode"}, []string{"errorMsg"}}
	enquireFields     = fieldSpec{[]string{"requestId", "enqCmd"}, nil}
	errorFields       = fieldSpec{[]string{"requestId", "errorCode"}, []string{"errorMsg"}}
)

// check is Vumi's validate_packet_fields.
func (s fieldSpec) check(params map[string]string) error {
	known := map[string]bool{}
	for _, f := range s.mandatory {
		known[f] = true
	}
	for _, f := range s.optional {
		known[f] = true
	}
	var unexpected, missing []string
	for k := range params {
		if !known[k] {
			unexpected = append(unexpected, k)
		}
	}
	for _, f := range s.mandatory {
		if _, ok := params[f]; !ok {
			missing = append(missing, f)
		}
	}
	sort.Strings(unexpected)
	sort.Strings(missing)
	if len(unexpected) > 0 {
		return &codedError{"208", fmt.Sprintf("Unexpected fields in received packet: %s", pyList(unexpected))}
	}
	if len(missing) > 0 {
		return &codedError{"208", fmt.Sprintf("Missing mandatory fields in received packet: %s", pyList(missing))}
	}
	return nil
}

func pyList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = "'" + x + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Packets that may arrive before the login completes.
var ignoreAuth = map[string]bool{"AUTHResponse": true, "AUTHError": true, "AUTHRequest": true, "USSDError": true}

// Transport is the MTN Nigeria USSD transport worker.
type Transport struct {
	deps *topology.Deps
	spec *topology.WorkerSpec
	cfg  *Config

	tcpclient.Client[conn]
}

// conn is one connection to the server.
type conn struct {
	*tcpclient.Conn
	loginCh     chan error
	mu          sync.Mutex
	loggedIn    bool
	enqDeadline *time.Timer
}

func (c *conn) authenticated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loggedIn
}

// Run connects and serves until ctx ends.
func (tr *Transport) Run(ctx context.Context) error {
	return tr.Client.Run(ctx, tr.deps, tr.spec, &tr.cfg.Config, component, time.Duration(tr.cfg.SessionTimeoutPeriod)*time.Second, tr, tr.connectLoop)
}

func (tr *Transport) connectLoop(ctx context.Context) {
	tr.Status(ctx, schemas.StatusDown, "connecting", "Connecting to "+tr.cfg.addr)
	// The delays start again after a login (Vumi reset them on connecting).
	tcpclient.Reconnect(ctx, tcpclient.NewBackoff(tr.cfg.InitialReconnectDelay, tr.cfg.MaxReconnectDelay), tr.session, func(d time.Duration) {
		tr.Log.Info("reconnecting", "addr", tr.cfg.addr, "in", d)
	})
}

// digits returns n random decimal digits.
func digits(n int) string {
	b := make([]byte, n)
	for i := range b {
		v, _ := rand.Int(rand.Reader, big.NewInt(10))
		b[i] = byte('0' + v.Int64())
	}
	return string(b)
}

// genSessionID is a dummy session id for packets outside a session.
func genSessionID() string { return digits(sessionIDSize) }

// genRequestID is a numeric request id of up to 10 digits.
func genRequestID() string {
	v, _ := rand.Int(rand.Reader, big.NewInt(10_000_000_000))
	return v.String()
}

// session runs one connection; it reports whether it logged in.
func (tr *Transport) session(ctx context.Context) bool {
	tc := tr.Dial(ctx, tr.cfg.addr, dialTimeout, readBuffer, "cannot connect", "Cannot connect to "+tr.cfg.addr+": ")
	if tc == nil {
		return false
	}
	c := &conn{Conn: tc, loginCh: make(chan error, 1)}
	c.Go(func() { tr.read(ctx, c) })
	defer func() {
		tr.Cur.Set(nil)
		c.Stop()
		c.mu.Lock()
		if c.enqDeadline != nil {
			c.enqDeadline.Stop()
		}
		c.mu.Unlock()
	}()
	tr.Log.Info("logging in", "addr", tr.cfg.addr, "username", tr.cfg.Username)
	if err := tr.send(c, genSessionID(), "AUTHRequest", []param{
		{"requestId", genRequestID()}, {"userName", tr.cfg.Username},
		{"passWord", tr.cfg.Password}, {"applicationId", tr.cfg.ApplicationID},
	}); err != nil {
		tr.lost(ctx, c)
		return false
	}
	switch res, err := tcpclient.AwaitLogin(ctx, c.Conn, c.loginCh, loginTimeout); res {
	case tcpclient.LoginRefused:
		tr.Log.Error("login failed, disconnecting", "error", err)
		tr.Status(ctx, schemas.StatusDown, "login_failed", "Login failed: "+err.Error())
		c.Close(err)
		return false
	case tcpclient.LoginLost:
		tr.lost(ctx, c)
		return false
	case tcpclient.LoginTimeout:
		tr.Status(ctx, schemas.StatusDown, "login_timeout", fmt.Sprintf("No answer to the login within %v", loginTimeout))
		c.Close(errors.New("login timed out"))
		return false
	case tcpclient.LoginStopped:
		return false
	}
	tr.Log.Info("client authentication complete")
	tr.Status(ctx, schemas.StatusOK, "connected", "Logged in to "+tr.cfg.addr)
	tr.Cur.Set(c)

	interval := time.Duration(tr.cfg.EnquireLinkInterval) * time.Second
	timeout := min(time.Duration(tr.cfg.TimeoutPeriod)*time.Second, interval)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		// An enquire link now and every interval; an unanswered one
		// disconnects after timeout_period.
		c.mu.Lock()
		if c.enqDeadline != nil {
			c.enqDeadline.Stop()
		}
		c.enqDeadline = time.AfterFunc(timeout, func() {
			tr.Log.Warn("no enquire link response; disconnecting", "timeout", timeout)
			tr.Status(ctx, schemas.StatusDown, "enquire_link_timeout", fmt.Sprintf("No enquire link response received after %v", timeout))
			c.Close(errors.New("enquire link timed out"))
		})
		c.mu.Unlock()
		if err := tr.send(c, genSessionID(), "ENQRequest", []param{{"requestId", genRequestID()}, {"enqCmd", "ENQUIRELINK"}}); err != nil {
			tr.lost(ctx, c)
			return true
		}
		select {
		case <-ctx.Done():
			return true
		case <-c.Closed():
			tr.lost(ctx, c)
			return true
		case <-tick.C:
		}
	}
}

func (tr *Transport) lost(ctx context.Context, c *conn) {
	tr.Lost(ctx, c.Conn, "Connection lost", "connection lost")
}

// send writes a packet; it fails unless the client is logged in or the
// packet may go before.
func (tr *Transport) send(c *conn, sessionID, typ string, params []param) error {
	if !ignoreAuth[typ] && !c.authenticated() {
		return fmt.Errorf("'%s' packet could not be sent, client not authenticated", typ)
	}
	pkt := encodePacket(sessionID, typ, params)
	tr.Log.Debug("sending packet", "type", typ, "session_id", sessionID)
	return c.Write(pkt, writeTimeout)
}

func (tr *Transport) sendError(c *conn, sessionID, requestID, code string) {
	if sessionID == "" {
		sessionID = genSessionID()
	}
	if requestID == "" {
		requestID = genRequestID()
	}
	if err := tr.send(c, sessionID, "USSDError", []param{{"requestId", requestID}, {"errorCode", code}}); err != nil {
		tr.Log.Warn("USSDError not sent", "error", err)
	}
}

type inbound struct {
	c   *conn
	pkt *Packet
	raw []byte
}

// read reads packets until the connection ends.
func (tr *Transport) read(ctx context.Context, c *conn) {
	l := tcpclient.NewLanes(lanes, laneDepth, func(in inbound) { tr.handleData(ctx, in) })
	defer l.Close()
	var fr frameReader
	c.ReadLoop(fr.feed, func() bool {
		for {
			raw, ok, err := fr.next()
			if err != nil {
				// The framing is lost: nothing after this can be trusted.
				tr.malformed(ctx, fr.buf[:min(len(fr.buf), headerSize)], "", err)
				c.Close(err)
				return false
			}
			if !ok {
				return true
			}
			p, err := ParsePacket(raw)
			if err != nil {
				// Framed correctly: answer with an error and go on.
				sid, _, _ := parseHeader(raw[:headerSize])
				tr.malformed(ctx, raw, "", err)
				tr.sendError(c, sid, "", "208")
				continue
			}
			if !tr.dispatch(ctx, c, l, inbound{c, p, raw}) {
				return false
			}
		}
	}, "closed by the server")
}

// dispatch is Vumi's packet_received; false stops reading.
func (tr *Transport) dispatch(ctx context.Context, c *conn, l *tcpclient.Lanes[inbound], in inbound) bool {
	p := in.pkt
	reqID := p.Params["requestId"]
	bad := func(err error) {
		tr.malformed(ctx, in.raw, "", err)
		tr.sendError(c, p.SessionID, reqID, err.(*codedError).code)
	}
	known := map[string]bool{"USSDRequest": true, "USSDResponse": true, "AUTHResponse": true, "AUTHError": true, "ENQRequest": true, "ENQResponse": true, "USSDError": true}
	if !known[p.Type] {
		bad(&codedError{"208", "Packet of an unknown type received: " + p.Type})
		return true
	}
	if !ignoreAuth[p.Type] && !c.authenticated() {
		bad(&codedError{"207", fmt.Sprintf("'%s' packet received before client authentication was completed", p.Type)})
		return true
	}
	switch p.Type {
	case "AUTHResponse":
		if err := loginRespFields.check(p.Params); err != nil {
			bad(err)
			c.Close(err)
			return true
		}
		c.mu.Lock()
		c.loggedIn = true
		c.mu.Unlock()
		select {
		case c.loginCh <- nil:
		default:
		}
	case "AUTHError":
		if err := loginErrFields.check(p.Params); err != nil {
			bad(err)
			return true
		}
		select {
		case c.loginCh <- &codedError{p.Params["errorCode"], firstNonEmpty(p.Params["errorMsg"], p.Params["authMsg"])}:
		default:
		}
	case "ENQRequest":
		if err := enquireFields.check(p.Params); err != nil {
			bad(err)
			return true
		}
		_ = tr.send(c, p.SessionID, "ENQResponse", []param{{"requestId", reqID}, {"enqCmd", "ENQUIRELINKRSP"}})
	case "ENQResponse":
		if err := enquireFields.check(p.Params); err != nil {
			bad(err)
			return true
		}
		c.mu.Lock()
		if c.enqDeadline != nil {
			c.enqDeadline.Stop()
		}
		c.mu.Unlock()
	case "USSDError":
		if err := errorFields.check(p.Params); err != nil {
			bad(err)
			return true
		}
		tr.Log.Error("server sent error message", "session_id", p.SessionID, "request_id", reqID,
			"error", (&codedError{p.Params["errorCode"], p.Params["errorMsg"]}).Error())
	case "USSDResponse":
		if err := dataRequestFields.check(p.Params); err != nil {
			bad(err)
			return true
		}
		tr.Log.Info("received spurious USSDResponse message, ignoring", "session_id", p.SessionID)
	case "USSDRequest":
		if err := dataRequestFields.check(p.Params); err != nil {
			bad(err)
			return true
		}
		if _, ok := p.Params["EndofSession"]; !ok {
			p.Params["EndofSession"] = "1" // absent means the end, as in Vumi
		}
		return l.Dispatch(ctx, p.SessionID, in)
	}
	return true
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// malformed logs what could not be handled and publishes it to failures.
func (tr *Transport) malformed(ctx context.Context, raw []byte, key string, err error) {
	tr.Log.Warn("packet not handled", "error", err)
	tr.T.Count("packets.malformed", 1)
	tcpclient.SendFailure(ctx, tr.T, tr.cfg.TransportName, raw, key, err)
}

// sessionEvent is Vumi's determine_session_event.
func sessionEvent(msgType, endOfSession string) schemas.SessionEvent {
	if msgType == "1" {
		return schemas.SessionNew
	}
	if endOfSession == "0" && msgType == "4" {
		return schemas.SessionResume
	}
	return schemas.SessionClose
}

// peerName names the server in log lines.
const peerName = "the server"

func bg(ctx context.Context) (context.Context, context.CancelFunc) {
	return tcpclient.PublishContext(ctx)
}

// handleData is Vumi's handle_raw_inbound_message.
func (tr *Transport) handleData(ctx context.Context, in inbound) {
	p := in.pkt
	sid := p.SessionID
	params := map[string]string{}
	for k, v := range p.Params {
		params[k] = v
	}
	params["session_id"] = sid
	ev := sessionEvent(params["msgtype"], params["EndofSession"])
	delete(params, "msgtype")
	delete(params, "EndofSession")
	userdata := params["userdata"]
	delete(params, "userdata")
	from := params["msisdn"]
	delete(params, "msisdn")
	var content *string
	var toAddr string
	if ev == schemas.SessionNew {
		toAddr = userdata
		sess := ussdsession.Session{"ussd_code": userdata, "created_at": strconv.FormatInt(time.Now().Unix(), 10)}
		if err := tcpclient.Publish(ctx, tr.Log, peerName, "session not stored", func(c context.Context) error {
			return tr.Sessions.Put(c, sid, sess)
		}); err != nil {
			tr.malformed(ctx, in.raw, from, worker.Temporary(fmt.Errorf("session %s not stored: %w", sid, err)))
			return
		}
	} else {
		sess, err := tcpclient.GetWithGrace(ctx, tr.Sessions, sid, sessionGrace)
		if err != nil || sess == nil {
			if err == nil {
				err = worker.Permanent(fmt.Errorf("no USSD session %q (never started, or older than session_timeout_period %ds)", sid, tr.cfg.SessionTimeoutPeriod))
			}
			tr.malformed(ctx, in.raw, from, err)
			// The dialog cannot go on: tell the server.
			tr.sendError(in.c, sid, params["requestId"], "207")
			return
		}
		toAddr = sess["ussd_code"]
		content = &userdata
	}
	if ev == schemas.SessionClose {
		// The user ended the session: answer with user_termination_response.
		if err := tr.send(in.c, sid, "USSDResponse", responseParams(params["requestId"], from, params["starCode"], params["clientId"], *tr.cfg.UserTerminationResponse, true)); err != nil {
			tr.Log.Warn("user termination response not sent", "session_id", sid, "error", err)
		}
		c, cancel := bg(ctx)
		if err := tr.Sessions.Delete(c, sid); err != nil {
			tr.Log.Warn("session not cleared; it expires with session_timeout_period", "session_id", sid, "error", err)
		}
		cancel()
	}
	meta := map[string]any{}
	for k, v := range params {
		meta[k] = v
	}
	m := &schemas.UserMessage{
		FromAddr: schemas.String(from), ToAddr: schemas.String(toAddr), Content: content,
		SessionEvent: &ev, Provider: schemas.String(provider), TransportType: schemas.String(schemas.TransportUSSD),
		TransportMetadata: schemas.Metadata{metaKey: meta},
	}
	err := tcpclient.Publish(ctx, tr.Log, peerName, "inbound message not published", func(c context.Context) error {
		m2 := *m
		return tr.T.PublishMessage(c, &m2)
	})
	if err != nil {
		tr.malformed(ctx, in.raw, from, fmt.Errorf("inbound message not published: %w", err))
	}
}

// responseParams are a USSDResponse's fields (Vumi's send_data_response;
// delivery reports are not requested).
func responseParams(requestID, msisdn, starCode, clientID, userData string, end bool) []param {
	msgType, eos := "2", "0"
	if end {
		msgType, eos = "6", "1"
	}
	return []param{
		{"requestId", requestID}, {"msisdn", msisdn}, {"starCode", starCode}, {"clientId", clientID},
		{"phase", "2"}, {"msgtype", msgType}, {"dcs", "15"}, {"userdata", userData},
		{"EndofSession", eos}, {"delvrpt", "0"},
	}
}

// requiredMeta are the transport_metadata.mtn_nigeria_ussd fields a reply
// needs (Vumi checked session_id and clientId, and failed on the others).
var requiredMeta = []string{"session_id", "clientId", "requestId", "starCode"}

// HandleOutbound implements transport.Handler (Vumi's
// handle_outbound_message).
func (tr *Transport) HandleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	meta := map[string]string{}
	if raw, ok := m.TransportMetadata[metaKey].(map[string]any); ok {
		for k, v := range raw {
			if s, ok := v.(string); ok {
				meta[k] = s
			}
		}
	}
	var missing []string
	for _, f := range requiredMeta {
		if _, ok := meta[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		err := &codedError{"208", "Required message transport metadata fields missing in outbound message: " + pyList(missing)}
		tr.Log.Warn("outbound message rejected", "message_id", m.MessageID, "error", err)
		if c, _ := tr.Cur.Get(); c != nil && meta["session_id"] != "" {
			tr.sendError(c, meta["session_id"], deref(m.InReplyTo), "208")
		}
		return tr.T.PublishNack(ctx, m.MessageID, err.Error())
	}
	params := responseParams(meta["requestId"], m.To(), meta["starCode"], meta["clientId"], m.Text(), m.Session() == schemas.SessionClose)
	switch err := tcpclient.Send(ctx, &tr.Cur, tr.Stopping, sendWait, func(c *conn) error {
		return tr.send(c, meta["session_id"], "USSDResponse", params)
	}); err {
	case nil:
		tr.T.Count("sent", 1)
		return tr.T.PublishAck(ctx, m.MessageID, m.MessageID)
	case tcpclient.ErrNotConnected:
		return tr.T.PublishNack(ctx, m.MessageID, fmt.Sprintf("Response failed: not connected to the server (waited %v)", sendWait))
	default:
		return transport.ErrRedeliver
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
