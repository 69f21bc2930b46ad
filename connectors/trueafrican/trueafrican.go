// Package trueafrican is Vumi's TrueAfricanUssdTransport: TrueAfrican
// (Uganda) USSD over XML-RPC. TrueAfrican calls USSD.INIT (msisdn,
// shortcode, session) to start a session, USSD.CONT (session, response)
// to continue it and USSD.END (session) when the user leaves; INIT and
// CONT wait for the application's reply, answered as the struct
// {session, type: cont|end, message}. Sessions (the user's number and the
// short code) live in the session table for session_timeout seconds.
package trueafrican

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/internal/xmlrpc"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's TrueAfricanUssdTransportConfig.
type Config struct {
	transport.Config `yaml:",inline"`
	// Port to listen on. Required (0: any free port).
	Port *int `yaml:"port"`
	// Interface to listen on; default all interfaces.
	Interface string `yaml:"interface"`
	// SessionTimeout is how long, in seconds, a session lives after its
	// start; default 600.
	SessionTimeout int `yaml:"session_timeout"`
	// RequestTimeout is how long, in seconds, a call waits for the
	// application's reply before it is answered with the error struct;
	// default 240.
	RequestTimeout int `yaml:"request_timeout"`
	// RedisManager is accepted for compatibility with Vumi configs and
	// ignored: sessions live in the session table.
	RedisManager map[string]any `yaml:"redis_manager"`

	rpc httprpc.Config
}

// errorStruct is Vumi's response_for_error: what the user sees when the
// transport cannot answer properly.
var errorStruct = map[string]string{"message": "We encountered an error while processing your message", "type": "end"}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 600
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 240
	}
	var errs []error
	if c.Port == nil {
		errs = append(errs, errors.New("key port: is required"))
	} else if *c.Port < 0 || *c.Port > 65535 {
		errs = append(errs, fmt.Errorf("key port: %d is not a port", *c.Port))
	}
	if c.SessionTimeout < 0 {
		errs = append(errs, fmt.Errorf("key session_timeout: must be positive, got %d", c.SessionTimeout))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("key request_timeout: must be positive, got %d", c.RequestTimeout))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.rpc = httprpc.Config{
		Config: c.Config, WebPath: "/", WebPort: *c.Port, WebInterface: c.Interface,
		RequestTimeout: c.RequestTimeout, RequestTimeoutStatusCode: http.StatusOK,
		RequestTimeoutBody: string(xmlrpc.Response(errorStruct)),
		// Calls are XML bodies: there are no query parameters to check.
		ValidationMode: httprpc.Permissive,
		HealthPath:     "health",
	}
	if c.RequestTimeout < 5 {
		c.rpc.RequestCleanupInterval = 1
	}
	return c.rpc.ValidateRPC()
}

// IO implements topology.WorkerConfig: the HTTP-RPC topics and the
// session table.
func (c *Config) IO(name string) topology.IO {
	return ussdsession.AddIO(c.rpc.IO(name), c.TransportName)
}

// Kind is the TrueAfricanUssdTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "trueafrican_ussd", Aliases: []string{"vumi.transports.trueafrican.TrueAfricanUssdTransport", "vumi.transports.trueafrican.transport.TrueAfricanUssdTransport"},
		Role: topology.RoleTransport, Summary: "TrueAfrican (Uganda) USSD over XML-RPC",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				h := &handler{cfg: cfg}
				s, err := httprpc.New(deps, spec, &cfg.rpc, h, httprpc.Options{ContentType: "text/xml"})
				if err != nil {
					return err
				}
				h.sessions, err = ussdsession.Open(s.Transport.Base, cfg.TransportName, time.Duration(cfg.SessionTimeout)*time.Second)
				if err != nil {
					s.Close()
					return err
				}
				return ussdsession.Serve(ctx, s, h.sessions)
			}), nil
		},
	}
}

type handler struct {
	cfg      *Config
	sessions *ussdsession.Store
}

// HandleRequest implements httprpc.Handler.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	if r.HTTP.Method != http.MethodPost {
		r.Finish(s, xmlrpc.Fault(xmlrpc.FaultFailure, "XML-RPC calls are POST requests"), http.StatusMethodNotAllowed)
		return
	}
	method, members, err := xmlrpc.ParseCall(r.HTTP.Body)
	if err != nil {
		r.Finish(s, xmlrpc.Fault(xmlrpc.FaultFailure, err.Error()), http.StatusBadRequest)
		return
	}
	var required []string
	switch method {
	case "USSD.INIT":
		required = []string{"msisdn", "shortcode", "session"}
	case "USSD.CONT":
		required = []string{"session", "response"}
	case "USSD.END":
		required = []string{"session"}
	default:
		r.Finish(s, xmlrpc.Fault(xmlrpc.FaultNotFound, fmt.Sprintf("procedure %s not found", method)), http.StatusBadRequest)
		return
	}
	if missing := xmlrpc.MissingMembers(members, required...); missing != "" {
		r.Finish(s, xmlrpc.Fault(xmlrpc.FaultFailure, "missing struct members: "+missing), http.StatusBadRequest)
		return
	}
	sessionID := *members["session"]
	var session ussdsession.Session
	ev := schemas.SessionNew
	var content *string
	if method == "USSD.INIT" {
		session = ussdsession.Session{"from_addr": *members["msisdn"], "to_addr": *members["shortcode"]}
		err = h.sessions.Put(ctx, sessionID, session)
	} else {
		session, err = h.sessions.Get(sessionID)
		if err == nil && session == nil {
			s.Log.Warn("no such USSD session; it expired or never began", "session_id", sessionID, "method", method)
			r.Finish(s, xmlrpc.Response(errorStruct), http.StatusOK)
			return
		}
		ev = schemas.SessionClose
		if method == "USSD.CONT" {
			ev, content = schemas.SessionResume, members["response"]
		}
	}
	if err != nil {
		s.Log.Error("session table unavailable", "session_id", sessionID, "error", err)
		r.Finish(s, xmlrpc.Response(errorStruct), http.StatusServiceUnavailable)
		return
	}
	m := &schemas.UserMessage{
		Content: content, ToAddr: schemas.String(session["to_addr"]), FromAddr: schemas.String(session["from_addr"]),
		SessionEvent: &ev, TransportType: schemas.String(schemas.TransportUSSD),
		TransportMetadata: schemas.Metadata{"session_id": sessionID},
	}
	if ev != schemas.SessionClose {
		if err := s.Publish(ctx, r, m); err != nil {
			s.Log.Error("inbound message not published", "request_id", r.ID, "error", err)
			r.Finish(s, xmlrpc.Response(errorStruct), http.StatusServiceUnavailable)
		}
		return
	}
	// USSD.END is answered at once with an empty struct; no reply is
	// expected.
	m.MessageID = r.ID
	if err := s.PublishInbound(ctx, m); err != nil {
		s.Log.Error("inbound message not published", "request_id", r.ID, "error", err)
		r.Finish(s, xmlrpc.Response(errorStruct), http.StatusServiceUnavailable)
		return
	}
	if err := h.sessions.Delete(ctx, sessionID); err != nil {
		s.Log.Warn("session not deleted; it expires by itself", "session_id", sessionID, "error", err)
	}
	r.Finish(s, xmlrpc.Response(map[string]string{}), http.StatusOK)
}

// HandleReply implements httprpc.ReplyHandler.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	sessionID, _ := m.TransportMetadata["session_id"].(string)
	if m.InReplyTo == nil || *m.InReplyTo == "" || sessionID == "" || m.Text() == "" {
		return s.PublishNack(ctx, m.MessageID, "Missing in_reply_to, content or session_id fields")
	}
	typ := "cont"
	if m.Session() == schemas.SessionClose {
		typ = "end"
	}
	return s.Deliver(ctx, m, xmlrpc.Response(map[string]string{"session": sessionID, "type": typ, "message": m.Text()}), http.StatusOK, nil)
}
