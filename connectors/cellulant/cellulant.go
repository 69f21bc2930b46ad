// Package cellulant is Vumi's CellulantTransport: Cellulant's USSD over
// HTTP. Cellulant calls web_path with MSISDN, INPUT, opCode, ABORT and
// sessionID; a BEG request starts a session (its INPUT is the dialled
// code, remembered in the session table for ussd_session_timeout seconds
// as the session's to_addr), others resume it, and an abort (opCode ABO,
// or ABORT other than 0/null) closes it. Replies are Cellulant's
// pipe-separated response.
package cellulant

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the CellulantTransport's config.
type Config struct {
	ussdsession.HTTPConfig `yaml:",inline"`
}

// Kind is the CellulantTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "cellulant_ussd", Aliases: []string{"vumi.transports.cellulant.CellulantTransport", "vumi.transports.cellulant.cellulant.CellulantTransport"},
		Role: topology.RoleTransport, Summary: "Cellulant USSD over HTTP",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				h := &handler{cfg: cfg}
				s, err := httprpc.New(deps, spec, &cfg.Config, h, httprpc.Options{ContentType: "text/plain; charset=utf-8"})
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

var expected = []string{"MSISDN", "INPUT", "opCode", "ABORT", "sessionID"}

func sessionKey(msisdn, session string) string { return msisdn + ":" + session }

// HandleRequest implements httprpc.Handler.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	v, errs := s.FieldValues(r.HTTP, expected, nil)
	if errs != nil {
		r.Finish(s, errs.JSON(), http.StatusBadRequest)
		return
	}
	msisdn, sessionID, op := v["MSISDN"], v["sessionID"], v["opCode"]
	key := sessionKey(msisdn, sessionID)
	var to string
	var content *string
	if op == "BEG" {
		to = v["INPUT"]
		if err := h.sessions.Put(ctx, key, ussdsession.Session{"ussd": to}); err != nil {
			s.Log.Error("session not stored", "session_id", sessionID, "error", err)
			r.Finish(s, []byte("session store unavailable, try again"), http.StatusServiceUnavailable)
			return
		}
	} else {
		sess, err := h.sessions.Get(key)
		if err != nil {
			s.Log.Error("session lookup failed", "session_id", sessionID, "error", err)
			r.Finish(s, []byte("session store unavailable, try again"), http.StatusServiceUnavailable)
			return
		}
		if sess == nil {
			s.Log.Error("no USSD session for this request; it expired or never began", "msisdn", msisdn, "session_id", sessionID, "op_code", op)
			r.Finish(s, httprpc.FieldErrors{"unknown_session": {"sessionID"}}.JSON(), http.StatusBadRequest)
			return
		}
		to = sess["ussd"]
		content = schemas.String(v["INPUT"])
	}
	abort := (v["ABORT"] != "0" && v["ABORT"] != "null") || op == "ABO"
	ev := schemas.SessionResume
	switch {
	case abort:
		ev = schemas.SessionClose
	case op == "BEG":
		ev = schemas.SessionNew
	}
	m := &schemas.UserMessage{
		Content: content, ToAddr: schemas.String(to), FromAddr: schemas.String(msisdn),
		SessionEvent: &ev, TransportType: schemas.String(h.cfg.TransportType),
		TransportMetadata: schemas.Metadata{"session_id": sessionID},
	}
	if !abort {
		s.PublishOrFail(ctx, r, m, []byte(httprpc.NotAccepted))
		return
	}
	// The phone aborted: answer at once; the close expects no reply.
	m.MessageID = r.ID
	if !s.PublishInboundOrFail(ctx, r, m, []byte(httprpc.NotAccepted)) {
		return
	}
	if err := h.sessions.Delete(ctx, key); err != nil {
		s.Log.Warn("session not deleted; it expires by itself", "session_id", sessionID, "error", err)
	}
	r.Finish(s, nil, http.StatusOK)
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
	return s.Deliver(ctx, m, []byte(Pack(m)), http.StatusOK, nil)
}

// Pack is Cellulant's response: next level (always 1: menu levels are
// the application's), the text, the selection value, the service id, the
// status ("end" when the reply closes the session) and extra, separated
// by '|', with "null" for what is unused.
func Pack(m *schemas.UserMessage) string {
	status := "null"
	if m.Session() == schemas.SessionClose {
		status = "end"
	}
	return fmt.Sprintf("1|%s|null|null|%s|null", m.Text(), status)
}
