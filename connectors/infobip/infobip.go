// Package infobip is Vumi's InfobipTransport: the Infobip USSD gateway's
// HTTP/JSON API. The gateway calls <web_path>/<session_id>/<method> with
// method start, response, end or status; start and response wait for the
// application's reply, which answers with the next menu. Session state
// (the user's number, the short code, the gateway id) lives in the
// transport's session table for ussd_session_timeout seconds, so any
// instance can continue a session.
package infobip

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the InfobipTransport's config.
type Config struct {
	ussdsession.HTTPConfig `yaml:",inline"`
}

// Kind is the InfobipTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "infobip_ussd", Aliases: []string{"vumi.transports.infobip.InfobipTransport", "vumi.transports.infobip.infobip.InfobipTransport"},
		Role: topology.RoleTransport, Summary: "Infobip USSD gateway (HTTP/JSON: start, response, end, status)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				h := &handler{cfg: cfg}
				s, err := httprpc.New(deps, spec, &cfg.Config, h, httprpc.Options{ContentType: "application/json"})
				if err != nil {
					return err
				}
				h.sessions, err = ussdsession.Open(s.Transport.Base, cfg.TransportName, cfg.SessionTTL())
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

// errorBody is Infobip's error response.
func errorBody(reason string) []byte {
	b, _ := json.Marshal(map[string]any{"responseExitCode": 400, "responseMessage": reason})
	return b
}

// fail answers a request with Infobip's error body (and HTTP 400).
func fail(s *httprpc.Server, r *httprpc.Request, reason string) {
	r.Finish(s, errorBody(reason), http.StatusBadRequest)
}

// request is the JSON body of start, response and end.
type request struct {
	Msisdn    *string `json:"msisdn"`
	Text      *string `json:"text"`
	ShortCode *string `json:"shortCode"`
	UssdGwID  *string `json:"ussdGwId"`
}

// HandleRequest implements httprpc.Handler (Vumi's
// handle_raw_inbound_message).
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	parts := strings.Split(strings.TrimRight(r.HTTP.URL.Path, "/"), "/")
	if len(parts) < 2 {
		fail(s, r, "Invalid request")
		return
	}
	sessionID, method := parts[len(parts)-2], parts[len(parts)-1]
	if "/"+strings.Trim(h.cfg.WebPath, "/") == strings.Join(parts[:len(parts)-1], "/") || sessionID == "" {
		fail(s, r, "Invalid request")
		return
	}
	var ev schemas.SessionEvent
	switch method {
	case "status":
		h.status(s, r, sessionID)
		return
	case "start":
		ev = schemas.SessionNew
	case "response":
		ev = schemas.SessionResume
	case "end":
		ev = schemas.SessionClose
	default:
		fail(s, r, "Invalid request")
		return
	}
	var req request
	body, err := io.ReadAll(r.HTTP.Body)
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		fail(s, r, "Invalid JSON")
		return
	}
	session, err := h.sessions.Get(sessionID)
	if err != nil {
		s.Log.Error("session lookup failed", "session_id", sessionID, "error", err)
		r.Finish(s, errorBody("session store unavailable, try again"), http.StatusServiceUnavailable)
		return
	}
	var content *string
	switch ev {
	case schemas.SessionNew:
		if session != nil {
			fail(s, r, fmt.Sprintf("USSD session %q already started", sessionID))
			return
		}
		if missing := missingFields(req.Msisdn == nil, req.Text == nil); missing != "" {
			fail(s, r, missing)
			return
		}
		session = ussdsession.Session{"from_addr": *req.Msisdn, "to_addr": deref(req.ShortCode), "provider": deref(req.UssdGwID)}
		if err := h.sessions.Put(ctx, sessionID, session); err != nil {
			s.Log.Error("session not stored", "session_id", sessionID, "error", err)
			r.Finish(s, errorBody("session store unavailable, try again"), http.StatusServiceUnavailable)
			return
		}
		content = req.Text
	case schemas.SessionResume:
		if session == nil {
			fail(s, r, fmt.Sprintf("Invalid USSD session %q", sessionID))
			return
		}
		if req.Text == nil {
			fail(s, r, missingFields(false, true))
			return
		}
		content = req.Text
	case schemas.SessionClose:
		if session == nil {
			fail(s, r, fmt.Sprintf("Invalid USSD session %q", sessionID))
			return
		}
	}
	m := &schemas.UserMessage{
		FromAddr: schemas.String(session["from_addr"]), ToAddr: schemas.String(session["to_addr"]),
		Content: content, SessionEvent: &ev, TransportType: schemas.String(h.cfg.TransportType),
		TransportMetadata: schemas.Metadata{"session_id": sessionID},
	}
	if p := session["provider"]; p != "" {
		m.Provider = schemas.String(p)
	}
	if ev != schemas.SessionClose {
		s.PublishOrFail(ctx, r, m, errorBody(httprpc.NotAccepted))
		return
	}
	// The end of a session is answered at once; its message expects no
	// reply.
	m.MessageID = r.ID
	if !s.PublishInboundOrFail(ctx, r, m, errorBody(httprpc.NotAccepted)) {
		return
	}
	if err := h.sessions.Delete(ctx, sessionID); err != nil {
		s.Log.Warn("session not deleted; it expires by itself", "session_id", sessionID, "error", err)
	}
	r.Finish(s, okBody(map[string]any{}), http.StatusOK)
}

func missingFields(msisdn, text bool) string {
	var m []string
	if msisdn {
		m = append(m, "msisdn")
	}
	if text {
		m = append(m, "text")
	}
	if len(m) == 0 {
		return ""
	}
	return "Missing required JSON field: " + strings.Join(m, ", ")
}

func okBody(extra map[string]any) []byte {
	extra["responseExitCode"] = 200
	extra["responseMessage"] = ""
	b, _ := json.Marshal(extra)
	return b
}

// status answers whether a session is active.
func (h *handler) status(s *httprpc.Server, r *httprpc.Request, sessionID string) {
	session, err := h.sessions.Get(sessionID)
	if err != nil {
		s.Log.Error("session lookup failed", "session_id", sessionID, "error", err)
		r.Finish(s, errorBody("session store unavailable, try again"), http.StatusServiceUnavailable)
		return
	}
	r.Finish(s, okBody(map[string]any{"sessionActive": session != nil}), http.StatusOK)
}

// notReply is the nack reason of an outbound message that is not a reply:
// Infobip only answers requests.
const notReply = "Infobip transport cannot process outbound message that is not a reply"

// HandleReply implements httprpc.ReplyHandler.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	if m.InReplyTo == nil || *m.InReplyTo == "" {
		return s.PublishNack(ctx, m.MessageID, notReply+": "+m.MessageID)
	}
	body := okBody(map[string]any{"shouldClose": m.Session() == schemas.SessionClose, "ussdMenu": m.Content})
	return s.Deliver(ctx, m, body, http.StatusOK, nil)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
