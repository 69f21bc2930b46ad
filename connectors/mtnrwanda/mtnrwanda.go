// Package mtnrwanda is Vumi's MTNRwandaUSSDTransport: MTN Rwanda USSD over
// XML-RPC. MTN calls handleUSSD with a struct (TransactionId,
// TransactionTime, MSISDN, USSDServiceCode, USSDRequestString and
// optional members such as USSDEncoding) and waits for the application's
// reply, answered as the same struct with USSDResponseString in place of
// USSDRequestString, a fresh TransactionTime and action request, notify
// or end. A call not answered within timeout seconds gets a fault.
//
// Sessions (keyed by TransactionId: the user's number and the service
// code) live in the session table for session_timeout_period seconds from
// their start.
package mtnrwanda

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/internal/endpoint"
	"github.com/vumi-kafka/vumi/internal/xmlrpc"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's MTNRwandaUSSDTransportConfig.
type Config struct {
	transport.Config `yaml:",inline"`
	// TwistedEndpoint is where MTN's client connects (Vumi's endpoint
	// syntax, e.g. "tcp:port=9000:interface=0.0.0.0"). Required, unless
	// the deprecated host and port are given.
	TwistedEndpoint string `yaml:"twisted_endpoint"`
	// Host and Port are the deprecated alternative to twisted_endpoint.
	Host string `yaml:"host"`
	Port *int   `yaml:"port"`
	// Timeout is how long, in seconds, a call waits for the application's
	// reply before it is answered with a fault; default 30.
	Timeout int `yaml:"timeout"`
	// SessionTimeoutPeriod is the most a session lasts, in seconds, from
	// its start; default 600.
	SessionTimeoutPeriod int `yaml:"session_timeout_period"`
	// WebPath is the path the XML-RPC resource is served on. Required.
	WebPath string `yaml:"web_path"`
	// HealthPath answers health checks; default "/health/".
	HealthPath string `yaml:"health_path"`
	// RedisManager is accepted for compatibility with Vumi configs and
	// ignored: sessions live in the session table.
	RedisManager map[string]any `yaml:"redis_manager"`

	rpc httprpc.Config
}

// timeoutFault answers a call that got no reply in time.
var timeoutFault = xmlrpc.Fault(xmlrpc.FaultFailure, "Request timed out.")

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.Timeout == 0 {
		c.Timeout = 30
	}
	if c.SessionTimeoutPeriod == 0 {
		c.SessionTimeoutPeriod = 600
	}
	if c.HealthPath == "" {
		c.HealthPath = "/health/"
	}
	var errs []error
	addr := ""
	switch {
	case c.TwistedEndpoint != "" && (c.Host != "" || c.Port != nil):
		errs = append(errs, errors.New("key twisted_endpoint: give either twisted_endpoint or the deprecated host and port"))
	case c.TwistedEndpoint != "":
		a, err := endpoint.Server(c.TwistedEndpoint)
		if err != nil {
			errs = append(errs, fmt.Errorf("key twisted_endpoint: %w", err))
		}
		addr = a
	case c.Port != nil:
		addr = net.JoinHostPort(c.Host, strconv.Itoa(*c.Port))
	default:
		errs = append(errs, errors.New("key twisted_endpoint: is required (or the deprecated host and port)"))
	}
	if c.WebPath == "" {
		errs = append(errs, errors.New("key web_path: is required"))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("key timeout: must be positive, got %d", c.Timeout))
	}
	if c.SessionTimeoutPeriod < 0 {
		errs = append(errs, fmt.Errorf("key session_timeout_period: must be positive, got %d", c.SessionTimeoutPeriod))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	host, portText, _ := net.SplitHostPort(addr)
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("key twisted_endpoint: port %q: %w", portText, err)
	}
	c.rpc = httprpc.Config{
		Config: c.Config, WebPath: c.WebPath, WebPort: port, WebInterface: host, HealthPath: c.HealthPath,
		RequestTimeout: c.Timeout, RequestTimeoutStatusCode: http.StatusOK, RequestTimeoutBody: string(timeoutFault),
		// Calls are XML bodies: there are no query parameters to check.
		ValidationMode: httprpc.Permissive,
	}
	if c.Timeout < 5 {
		c.rpc.RequestCleanupInterval = 1
	}
	return c.rpc.ValidateRPC()
}

// IO implements topology.WorkerConfig: the HTTP-RPC topics and the
// session table.
func (c *Config) IO(name string) topology.IO {
	return ussdsession.AddIO(c.rpc.IO(name), c.TransportName)
}

// NotFound is the nack reason of a reply whose request is not waiting.
const NotFound = "Request not found"

// Kind is the MTNRwandaUSSDTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "mtn_rwanda_ussd", Aliases: []string{"vumi.transports.mtn_rwanda.MTNRwandaUSSDTransport", "vumi.transports.mtn_rwanda.mtn_rwanda_ussd.MTNRwandaUSSDTransport"},
		Role: topology.RoleTransport, Summary: "MTN Rwanda USSD over XML-RPC (handleUSSD)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return ussdsession.Worker(deps, spec, &cfg.rpc, cfg.TransportName, time.Duration(cfg.SessionTimeoutPeriod)*time.Second,
				httprpc.Options{ContentType: "text/xml; charset=utf-8", GoneNackReason: NotFound},
				func(st *ussdsession.Store) httprpc.Handler {
					return &handler{cfg: cfg, sessions: st, calls: map[string]call{}}
				}), nil
		},
	}
}

// call is a waiting call's struct, kept by the instance holding the call
// (like the HTTP connection itself) to build its answer.
type call struct {
	members map[string]*string
	at      time.Time
}

type handler struct {
	cfg      *Config
	sessions *ussdsession.Store

	mu    sync.Mutex
	calls map[string]call
}

// Required are the members a handleUSSD struct must have.
var Required = []string{"TransactionId", "TransactionTime", "MSISDN", "USSDServiceCode", "USSDRequestString"}

// ParseCall reads a handleUSSD call. fault, when not nil, is the answer
// to a call that cannot be handled (with the HTTP status to send it with).
func ParseCall(body []byte) (members map[string]*string, fault []byte, status int) {
	method, members, err := xmlrpc.ParseCall(bytes.NewReader(body))
	if err != nil {
		return nil, xmlrpc.Fault(xmlrpc.FaultFailure, err.Error()), http.StatusBadRequest
	}
	if method != "handleUSSD" {
		return nil, xmlrpc.Fault(xmlrpc.FaultNotFound, fmt.Sprintf("procedure %s not found", method)), http.StatusOK
	}
	if missing := xmlrpc.MissingMembers(members, Required...); missing != "" {
		return nil, xmlrpc.Fault(xmlrpc.FaultFailure, "4001: Missing Parameters: "+missing), http.StatusOK
	}
	return members, nil, 0
}

// HandleRequest implements httprpc.Handler.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	if r.HTTP.Method != http.MethodPost {
		r.Finish(s, xmlrpc.Fault(xmlrpc.FaultFailure, "XML-RPC calls are POST requests"), http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.HTTP.Body)
	if err != nil {
		r.Finish(s, xmlrpc.Fault(xmlrpc.FaultFailure, "request body not read: "+err.Error()), http.StatusBadRequest)
		return
	}
	members, fault, status := ParseCall(body)
	if fault != nil {
		s.Log.Warn("invalid request", "request_id", r.ID, "fault", string(fault))
		r.Finish(s, fault, status)
		return
	}
	txID := *members["TransactionId"]
	session, err := h.sessions.Get(txID)
	ev, content := schemas.SessionResume, members["USSDRequestString"]
	if err == nil && session == nil {
		ev, content = schemas.SessionNew, nil
		_, err = h.sessions.Create(ctx, txID, ussdsession.Session{"from_addr": *members["MSISDN"], "to_addr": *members["USSDServiceCode"]})
	}
	if err != nil {
		s.Log.Error("session table unavailable", "transaction_id", txID, "error", err)
		r.Finish(s, xmlrpc.Fault(xmlrpc.FaultFailure, "service unavailable, try again"), http.StatusServiceUnavailable)
		return
	}
	m := &schemas.UserMessage{
		Content: content, FromAddr: schemas.String(*members["MSISDN"]), ToAddr: schemas.String(*members["USSDServiceCode"]),
		SessionEvent: &ev, TransportType: schemas.String(schemas.TransportUSSD),
		TransportMetadata: schemas.Metadata{"mtn_rwanda_ussd": map[string]any{
			"transaction_id": txID, "transaction_time": *members["TransactionTime"]}},
	}
	h.keep(r.ID, members)
	if err := s.Publish(ctx, r, m); err != nil {
		h.take(r.ID)
		s.Log.Error("inbound message not published", "request_id", r.ID, "error", err)
		r.Finish(s, xmlrpc.Fault(xmlrpc.FaultFailure, "service unavailable, try again"), http.StatusServiceUnavailable)
	}
}

// keep remembers a waiting call's struct, and forgets those whose calls
// must have ended.
func (h *handler) keep(id string, members map[string]*string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	limit := time.Duration(h.cfg.Timeout)*time.Second + time.Minute
	for k, c := range h.calls {
		if time.Since(c.at) > limit {
			delete(h.calls, k)
		}
	}
	h.calls[id] = call{members: members, at: time.Now()}
}

func (h *handler) take(id string) (call, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.calls[id]
	delete(h.calls, id)
	return c, ok
}

// Actions of an answer by the reply's session event.
const (
	ActionRequest = "request"
	ActionNotify  = "notify"
	ActionEnd     = "end"
)

// Answer is the struct answering a call: its members without
// USSDRequestString, with USSDResponseString, TransactionTime now and the
// action.
func Answer(members map[string]*string, content string, ev schemas.SessionEvent, now time.Time) map[string]string {
	out := map[string]string{}
	for k, v := range members {
		if v != nil && k != "USSDRequestString" {
			out[k] = *v
		}
	}
	out["USSDResponseString"] = content
	out["TransactionTime"] = now.Format("2006-01-02T15:04:05.000000")
	switch ev {
	case schemas.SessionNew:
		out["action"] = ActionRequest
	case schemas.SessionClose:
		out["action"] = ActionEnd
	default:
		out["action"] = ActionNotify
	}
	return out
}

// HandleReply implements httprpc.ReplyHandler: a reply answers its call
// (closing the session when it ends it); a message that answers no
// waiting call is nacked "Request not found".
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	if m.InReplyTo == nil || *m.InReplyTo == "" {
		return s.PublishNack(ctx, m.MessageID, NotFound)
	}
	if m.Content == nil {
		return s.PublishNack(ctx, m.MessageID, "Missing fields: content")
	}
	c, here := h.take(*m.InReplyTo)
	if here && m.Session() == schemas.SessionClose {
		if tx := c.members["TransactionId"]; tx != nil {
			if err := h.sessions.Delete(ctx, *tx); err != nil {
				s.Log.Warn("session not deleted; it expires by itself", "transaction_id", *tx, "error", err)
			}
		}
	}
	// Where the call is not held here, Deliver forwards the reply to the
	// instance holding it (which answers with its own copy of the call) or
	// nacks it.
	return s.Deliver(ctx, m, xmlrpc.Response(Answer(c.members, m.Text(), m.Session(), time.Now())), http.StatusOK, nil)
}
