// Package dmark is Vumi's DmarkUssdTransport: DMark's USSD over HTTP.
// DMark calls web_path with transactionId, msisdn, ussdServiceCode,
// transactionTime, ussdRequestString, creationTime and response; the
// request waits for the application's reply, answered as JSON
// {"responseString": ..., "action": "request"|"end"}. A transactionId
// not seen before starts a session (kept in the session table for
// ussd_session_timeout seconds after its last request); a known one
// resumes it.
package dmark

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's DmarkUssdTransportConfig.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// SessionConfig's ussd_session_timeout counts from a session's last
	// request.
	ussdsession.SessionConfig `yaml:",inline"`
	// FixToAddr makes to_addr always look like "*CODE#": a service code
	// that neither starts with '*' nor ends with '#' is wrapped so.
	// Default false.
	FixToAddr bool `yaml:"fix_to_addr"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	return c.ValidateSession()
}

// IO implements topology.WorkerConfig: the HTTP-RPC topics and the
// session table.
func (c *Config) IO(name string) topology.IO {
	return ussdsession.AddIO(c.Config.IO(name), c.TransportName)
}

// Kind is the DmarkUssdTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "dmark_ussd", Aliases: []string{"vumi.transports.dmark.DmarkUssdTransport", "vumi.transports.dmark.dmark_ussd.DmarkUssdTransport"},
		Role: topology.RoleTransport, Summary: "DMark USSD over HTTP (JSON replies)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				h := &handler{cfg: cfg, last: map[string]string{}}
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

	mu   sync.Mutex
	last map[string]string // component -> last status/type published
}

// Expected are DMark's request parameters.
var Expected = []string{"transactionId", "msisdn", "ussdServiceCode", "transactionTime", "ussdRequestString", "creationTime", "response"}

// status publishes a status when it differs from the component's last
// one (Vumi's add_status with its edge detector).
func (h *handler) status(ctx context.Context, s *httprpc.Server, component string, level schemas.StatusLevel, typ, msg string, details schemas.Metadata) {
	key := string(level) + "/" + typ
	h.mu.Lock()
	same := h.last[component] == key
	h.last[component] = key
	h.mu.Unlock()
	if same {
		return
	}
	if err := s.Status(ctx, component, level, typ, msg, details); err != nil {
		s.Log.Warn("status not published", "error", err)
	}
}

// HandleRequest implements httprpc.Handler.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	for _, vs := range r.Args() {
		for _, v := range vs {
			if !utf8.ValidString(v) {
				req := map[string]any{"uri": r.HTTP.URL.RequestURI(), "method": r.HTTP.Method, "path": r.HTTP.URL.Path}
				body, _ := json.Marshal(map[string]any{"invalid_request": req})
				r.Finish(s, body, http.StatusBadRequest)
				h.status(ctx, s, "request", schemas.StatusDown, "invalid_encoding", "Invalid encoding", schemas.Metadata{"request": req})
				return
			}
		}
	}
	values, errs := s.FieldValues(r.HTTP, Expected, nil)
	if errs != nil {
		r.Finish(s, errs.JSON(), http.StatusBadRequest)
		details := schemas.Metadata{}
		for k, v := range errs {
			details[k] = stringsToAny(v)
		}
		h.status(ctx, s, "request", schemas.StatusDown, "invalid_inbound_fields", "Invalid inbound fields", details)
		return
	}
	h.status(ctx, s, "request", schemas.StatusOK, "request_parsed", "Request parsed", nil)

	to := values["ussdServiceCode"]
	if h.cfg.FixToAddr && !strings.HasPrefix(to, "*") && !strings.HasSuffix(to, "#") {
		to = "*" + to + "#"
	}
	tid := values["transactionId"]
	session, err := h.sessions.Get(tid)
	if err != nil {
		s.Log.Error("session lookup failed", "transaction_id", tid, "error", err)
		r.Finish(s, []byte(`{"error": "session store unavailable, try again"}`), http.StatusServiceUnavailable)
		return
	}
	ev := schemas.SessionResume
	content := schemas.String(values["ussdRequestString"])
	if session == nil {
		ev, content = schemas.SessionNew, nil
		session = ussdsession.Session{"transaction_id": tid}
	}
	// Every request extends the session's life.
	if err := h.sessions.Put(ctx, tid, session); err != nil {
		s.Log.Error("session not stored", "transaction_id", tid, "error", err)
		r.Finish(s, []byte(`{"error": "session store unavailable, try again"}`), http.StatusServiceUnavailable)
		return
	}
	m := &schemas.UserMessage{
		Content: content, ToAddr: schemas.String(to), FromAddr: schemas.String(values["msisdn"]),
		Provider: schemas.String("dmark"), SessionEvent: &ev, TransportType: schemas.String(schemas.TransportUSSD),
		HelperMetadata: schemas.Metadata{"session_id": tid},
		TransportMetadata: schemas.Metadata{"dmark_ussd": map[string]any{
			"transaction_id": tid, "transaction_time": values["transactionTime"], "creation_time": values["creationTime"],
		}},
	}
	s.PublishOrFail(ctx, r, m, httprpc.NotAcceptedJSON())
}

func stringsToAny(v []string) []any {
	out := make([]any, len(v))
	for i, s := range v {
		out[i] = s
	}
	return out
}

// HandleReply implements httprpc.ReplyHandler.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	var missing []string
	if m.InReplyTo == nil || *m.InReplyTo == "" {
		missing = append(missing, "in_reply_to")
	}
	if m.Content == nil || *m.Content == "" {
		missing = append(missing, "content")
	}
	if len(missing) > 0 {
		return s.PublishNack(ctx, m.MessageID, "Missing fields: "+strings.Join(missing, ", "))
	}
	action := "request"
	if m.Session() == schemas.SessionClose {
		action = "end"
	}
	body, err := json.Marshal(map[string]string{"responseString": m.Text(), "action": action})
	if err != nil {
		return fmt.Errorf("dmark: encode response: %w", err)
	}
	return s.Deliver(ctx, m, body, http.StatusOK, nil)
}
