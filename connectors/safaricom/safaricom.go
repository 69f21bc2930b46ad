// Package safaricom is Vumi's SafaricomTransport: USSD with Safaricom
// (Kenya) over HTTP. Safaricom calls web_path with ORIG (the user's
// number), DEST (the service code), SESSION_ID and USSD_PARAMS (everything
// the user typed in the session so far, '*'-separated) and waits for the
// application's reply, answered as "CON <menu>" or "END <text>".
//
// The first request of a session is a new session whose to_addr is the
// full code dialled (*DEST*USSD_PARAMS#) and whose content is empty; later
// ones resume it with what USSD_PARAMS gained since the previous request.
// Sessions (the dialled code, the user's number, the last USSD_PARAMS,
// the start time) live in the session table for ussd_session_timeout
// seconds from their start, so any instance can continue a session.
package safaricom

import (
	"context"
	"net/http"
	"net/url"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the SafaricomTransport's config.
type Config struct {
	ussdsession.HTTPConfig `yaml:",inline"`
	// Redis is accepted for compatibility with Vumi configs and ignored:
	// sessions live in the session table.
	Redis map[string]any `yaml:"redis"`
}

// Kind is the SafaricomTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "safaricom_ussd", Aliases: []string{"vumi.transports.safaricom.SafaricomTransport", "vumi.transports.safaricom.safaricom.SafaricomTransport"},
		Role: topology.RoleTransport, Summary: "Safaricom (Kenya) USSD over HTTP (CON/END replies)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return ussdsession.Worker(deps, spec, &cfg.Config, cfg.TransportName, cfg.SessionTTL(),
				httprpc.Options{}, func(st *ussdsession.Store) httprpc.Handler { return &handler{cfg: cfg, sessions: st} }), nil
		},
	}
}

type handler struct {
	cfg      *Config
	sessions *ussdsession.Store
}

// Request is one Safaricom request's parameters.
type Request struct {
	Orig, Dest, SessionID, USSDParams string
}

var expected = []string{"ORIG", "DEST", "SESSION_ID", "USSD_PARAMS"}

// ParseRequest reads a request's parameters; errs names the missing (and,
// when strict, unexpected) ones.
func ParseRequest(form url.Values, strict bool) (Request, httprpc.FieldErrors) {
	v, errs := httprpc.Fields(form, expected, nil, strict)
	if errs != nil {
		return Request{}, errs
	}
	return Request{Orig: v["ORIG"], Dest: v["DEST"], SessionID: v["SESSION_ID"], USSDParams: v["USSD_PARAMS"]}, nil
}

// DialledCode is the to_addr of a new session: *DEST*USSD_PARAMS#, or
// *DEST# without parameters.
func DialledCode(dest, params string) string {
	if params == "" {
		return "*" + dest + "#"
	}
	return "*" + dest + "*" + params + "#"
}

// NewInput is what the user typed since the previous request: what params
// gained over last, without the '*' separating it from last's input.
func NewInput(last, params string) string {
	l, p := []rune(last), []rune(params)
	if len(p) <= len(l) {
		return ""
	}
	added := p[len(l):]
	if len(l) > 0 {
		added = added[1:]
	}
	return string(added)
}

// HandleRequest implements httprpc.Handler.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	req, errs := ParseRequest(r.Args(), s.Config().ValidationMode == httprpc.Strict)
	if errs != nil {
		s.Log.Warn("unhappy incoming message", "errors", string(errs.JSON()))
		r.Finish(s, errs.JSON(), http.StatusBadRequest)
		return
	}
	session, err := h.sessions.Get(req.SessionID)
	if err != nil {
		h.unavailable(s, r, req.SessionID, err)
		return
	}
	ev, content := schemas.SessionResume, ""
	if session != nil {
		content = NewInput(session["last_ussd_params"], req.USSDParams)
		session["last_ussd_params"] = req.USSDParams
		err = h.sessions.Save(ctx, req.SessionID, session)
	} else {
		ev = schemas.SessionNew
		session, err = h.sessions.Create(ctx, req.SessionID, ussdsession.Session{
			"from_addr": req.Orig, "to_addr": DialledCode(req.Dest, req.USSDParams), "last_ussd_params": req.USSDParams})
	}
	if err != nil {
		h.unavailable(s, r, req.SessionID, err)
		return
	}
	m := &schemas.UserMessage{
		Content: schemas.String(content), ToAddr: schemas.String(session["to_addr"]), FromAddr: schemas.String(req.Orig),
		Provider: schemas.String("safaricom"), SessionEvent: &ev, TransportType: schemas.String(h.cfg.TransportType),
		TransportMetadata: schemas.Metadata{"safaricom": map[string]any{"session_id": req.SessionID}},
	}
	if err := s.Publish(ctx, r, m); err != nil {
		s.Log.Error("inbound message not published", "request_id", r.ID, "error", err)
		r.Finish(s, []byte("END Service unavailable, please try again"), http.StatusServiceUnavailable)
	}
}

func (h *handler) unavailable(s *httprpc.Server, r *httprpc.Request, sessionID string, err error) {
	s.Log.Error("session table unavailable", "session_id", sessionID, "error", err)
	r.Finish(s, []byte("END Service unavailable, please try again"), http.StatusServiceUnavailable)
}

// HandleReply implements httprpc.ReplyHandler: in_reply_to and content are
// required (a nack naming the missing fields otherwise); the response is
// "END <content>" when the reply closes the session, else "CON <content>".
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	if missing := httprpc.MissingFields(m, "in_reply_to", "content"); missing != "" {
		return s.PublishNack(ctx, m.MessageID, "Missing fields: "+missing)
	}
	command := "CON "
	if m.Session() == schemas.SessionClose {
		command = "END "
	}
	return s.Deliver(ctx, m, []byte(command+m.Text()), http.StatusOK, nil)
}
