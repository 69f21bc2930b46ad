// Package airtel is Vumi's AirtelUSSDTransport: Airtel USSD through the
// Comviva Flares HTTP pull API (Flares 1.5.0, document version 1.2.0).
//
// Flares calls web_path with SessionID, MSISDN, MSC and input and waits
// for the application's reply, answered as the menu text with the headers
// Freeflow (FC: continue, FB: break), charge (Y/N) and amount. The first
// request of a session carries the service code without its '*' and '#'
// in input; later ones carry what the user typed. A request with the
// parameter clean is Flares cleaning up a session (the user left or the
// network ended it): it closes the session at once.
//
// Sessions (the dialled code, the user's number, the start time) live in
// the session table for ussd_session_timeout seconds from their start;
// transports given the same session_key_prefix share one table.
package airtel

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's AirtelUSSDTransportConfig.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// AirtelUsername and AirtelPassword, when both set, are required as
	// the userid and password parameters of every request.
	AirtelUsername string `yaml:"airtel_username"`
	AirtelPassword string `yaml:"airtel_password"`
	// AirtelCharge: whether to charge for the responses sent (the charge
	// header); default false.
	AirtelCharge bool `yaml:"airtel_charge"`
	// AirtelChargeAmount: how much to charge (the amount header); default 0.
	AirtelChargeAmount int `yaml:"airtel_charge_amount"`
	// SessionKeyPrefix names the session table (default the
	// transport_name): transports given the same prefix share sessions.
	SessionKeyPrefix string `yaml:"session_key_prefix"`
	// SessionConfig's ussd_session_timeout is the most a session lasts,
	// from its start.
	ussdsession.SessionConfig `yaml:",inline"`
	// ToAddrPattern, when set, is a regular expression the to_addr of a
	// new session must match (from its start, as Python's re.match);
	// requests starting other sessions are refused.
	ToAddrPattern string `yaml:"to_addr_pattern"`

	toAddrRe *regexp.Regexp
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	var errs []error
	if err := c.ValidateSession(); err != nil {
		errs = append(errs, err)
	}
	if (c.AirtelUsername == "") != (c.AirtelPassword == "") {
		errs = append(errs, errors.New("key airtel_username: airtel_username and airtel_password must be given together"))
	}
	if c.AirtelChargeAmount < 0 {
		errs = append(errs, fmt.Errorf("key airtel_charge_amount: must not be negative, got %d", c.AirtelChargeAmount))
	}
	if c.SessionKeyPrefix != "" {
		if err := ussdsession.ValidTableName(c.SessionKeyPrefix); err != nil {
			errs = append(errs, fmt.Errorf("key session_key_prefix: %w", err))
		}
	}
	if c.ToAddrPattern != "" {
		re, err := regexp.Compile(`^(?:` + c.ToAddrPattern + `)`)
		if err != nil {
			errs = append(errs, fmt.Errorf("key to_addr_pattern: %w", err))
		}
		c.toAddrRe = re
	}
	return errors.Join(errs...)
}

// table is the session table's name.
func (c *Config) table() string {
	if c.SessionKeyPrefix != "" {
		return c.SessionKeyPrefix
	}
	return c.TransportName
}

// IO implements topology.WorkerConfig: the HTTP-RPC topics and the
// session table.
func (c *Config) IO(name string) topology.IO {
	return ussdsession.AddIO(c.Config.IO(name), c.table())
}

// Kind is the AirtelUSSDTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "airtel_ussd", Aliases: []string{"vumi.transports.airtel.AirtelUSSDTransport", "vumi.transports.airtel.airtel.AirtelUSSDTransport"},
		Role: topology.RoleTransport, Summary: "Airtel USSD (Comviva Flares HTTP pull API, charging headers)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return ussdsession.Worker(deps, spec, &cfg.Config, cfg.table(), cfg.SessionTTL(),
				httprpc.Options{ContentType: "text/plain; charset=utf-8"},
				func(st *ussdsession.Store) httprpc.Handler { return &handler{cfg: cfg, sessions: st} }), nil
		},
	}
}

type handler struct {
	cfg      *Config
	sessions *ussdsession.Store
}

var (
	authFields    = []string{"userid", "password"}
	cleanupFields = []string{"SessionID", "msisdn", "clean", "error"}
	ussdFields    = []string{"SessionID", "MSISDN", "MSC", "input"}
)

// Request is one Flares request.
type Request struct {
	// Cleanup is true for a session clean-up (the clean parameter).
	Cleanup   bool
	SessionID string
	// MSISDN is the user's number (msisdn in a clean-up).
	MSISDN string
	// MSC (USSD requests), Clean and Error (clean-ups) go to the
	// message's transport_metadata.
	MSC, Input, Clean, Error string
}

// ParseRequest reads a Flares request's parameters (without checking
// credentials); auth adds userid and password to the expected ones.
func ParseRequest(form url.Values, strict, auth bool) (Request, httprpc.FieldErrors) {
	_, cleanup := form["clean"]
	fields := ussdFields
	if cleanup {
		fields = cleanupFields
	}
	if auth {
		fields = append(append([]string(nil), fields...), authFields...)
	}
	v, errs := httprpc.Fields(form, fields, nil, strict)
	if errs != nil {
		return Request{}, errs
	}
	if cleanup {
		return Request{Cleanup: true, SessionID: v["SessionID"], MSISDN: v["msisdn"], Clean: v["clean"], Error: v["error"]}, nil
	}
	return Request{SessionID: v["SessionID"], MSISDN: v["MSISDN"], MSC: v["MSC"], Input: v["input"]}, nil
}

// authenticated checks userid and password (in constant time) when
// credentials are configured.
func (h *handler) authenticated(s *httprpc.Server, form url.Values) bool {
	if h.cfg.AirtelUsername == "" {
		return true
	}
	user, pass := form.Get("userid"), form.Get("password")
	_, hasUser := form["userid"]
	_, hasPass := form["password"]
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(h.cfg.AirtelUsername)) == 1
	passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(h.cfg.AirtelPassword)) == 1
	if !hasUser || !hasPass || !userOK || !passOK {
		s.Log.Warn("invalid authentication credentials", "userid", user, "has_password", hasPass)
		return false
	}
	return true
}

func badRequest(s *httprpc.Server, r *httprpc.Request, body []byte) {
	s.Log.Warn("unhappy incoming message", "errors", string(body))
	r.Finish(s, body, http.StatusBadRequest)
}

func (h *handler) unavailable(s *httprpc.Server, r *httprpc.Request, what string, err error) {
	s.Log.Error(what, "request_id", r.ID, "error", err)
	r.Finish(s, []byte("Service unavailable, please try again"), http.StatusServiceUnavailable)
}

// HandleRequest implements httprpc.Handler.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	if !h.authenticated(s, r.Args()) {
		r.Finish(s, []byte("Forbidden"), http.StatusForbidden)
		return
	}
	req, errs := ParseRequest(r.Args(), s.Config().ValidationMode == httprpc.Strict, h.cfg.AirtelUsername != "")
	if errs != nil {
		badRequest(s, r, errs.JSON())
		return
	}
	session, err := h.sessions.Get(req.SessionID)
	if err != nil {
		h.unavailable(s, r, "session table unavailable", err)
		return
	}
	if req.Cleanup {
		h.cleanup(ctx, s, r, req, session)
		return
	}
	var ev schemas.SessionEvent
	var content string
	if session != nil {
		ev, content = schemas.SessionResume, req.Input
		err = h.sessions.Save(ctx, req.SessionID, session)
	} else {
		// Flares leaves out the code's leading '*' and trailing '#'.
		toAddr := "*" + req.Input + "#"
		if h.cfg.toAddrRe != nil && !h.cfg.toAddrRe.MatchString(toAddr) {
			body, _ := json.Marshal(map[string]string{"invalid_session": fmt.Sprintf(
				"Session id %s has not been encountered in the last %d seconds and the 'input' request parameter value %s doesn't look like a valid USSD address.",
				pyRepr(req.SessionID), h.cfg.UssdSessionTimeout, pyRepr(toAddr))})
			badRequest(s, r, body)
			return
		}
		ev = schemas.SessionNew
		session, err = h.sessions.Create(ctx, req.SessionID, ussdsession.Session{"from_addr": req.MSISDN, "to_addr": toAddr})
	}
	if err != nil {
		h.unavailable(s, r, "session not stored", err)
		return
	}
	m := &schemas.UserMessage{
		Content: schemas.String(content), ToAddr: schemas.String(session["to_addr"]), FromAddr: schemas.String(req.MSISDN),
		Provider: schemas.String("airtel"), SessionEvent: &ev, TransportType: schemas.String(schemas.TransportUSSD),
		TransportMetadata: schemas.Metadata{"airtel": map[string]any{"MSC": req.MSC}},
	}
	if err := s.Publish(ctx, r, m); err != nil {
		h.unavailable(s, r, "inbound message not published", err)
	}
}

// cleanup closes a session: a close message, answered at once.
func (h *handler) cleanup(ctx context.Context, s *httprpc.Server, r *httprpc.Request, req Request, session ussdsession.Session) {
	if session == nil {
		s.Log.Warn("received cleanup for unknown airtel session", "session_id", req.SessionID)
		r.Finish(s, []byte("Unknown Session"), http.StatusOK)
		return
	}
	ev := schemas.SessionClose
	m := &schemas.UserMessage{
		MessageID: r.ID, Content: schemas.String(""), ToAddr: schemas.String(session["to_addr"]), FromAddr: schemas.String(req.MSISDN),
		Provider: schemas.String("airtel"), SessionEvent: &ev, TransportType: schemas.String(schemas.TransportUSSD),
		TransportMetadata: schemas.Metadata{"airtel": map[string]any{"clean": req.Clean, "error": req.Error}},
	}
	// Published first: should that fail, Flares' retry still finds the
	// session.
	if err := s.PublishInbound(ctx, m); err != nil {
		h.unavailable(s, r, "inbound message not published", err)
		return
	}
	if err := h.sessions.Delete(ctx, req.SessionID); err != nil {
		s.Log.Warn("session not deleted; it expires by itself", "session_id", req.SessionID, "error", err)
	}
	r.Finish(s, nil, http.StatusOK)
}

// HandleReply implements httprpc.ReplyHandler: in_reply_to and content are
// required (a nack naming the missing fields otherwise); the response is
// the content without leading white space, with the Freeflow (FC: the
// session continues, FB: it ends), charge and amount headers.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	if missing := httprpc.MissingFields(m, "in_reply_to", "content"); missing != "" {
		return s.PublishNack(ctx, m.MessageID, "Missing fields: "+missing)
	}
	freeflow := "FC"
	if m.Session() == schemas.SessionClose {
		freeflow = "FB"
	}
	charge := "N"
	if h.cfg.AirtelCharge {
		charge = "Y"
	}
	headers := http.Header{}
	headers.Set("Freeflow", freeflow)
	headers.Set("charge", charge)
	headers.Set("amount", strconv.Itoa(h.cfg.AirtelChargeAmount))
	body := strings.TrimLeftFunc(m.Text(), unicode.IsSpace)
	return s.Deliver(ctx, m, []byte(body), http.StatusOK, headers)
}

// pyRepr quotes s as Python's repr of a string does (single quotes unless
// s holds one), for Vumi's error texts.
func pyRepr(s string) string {
	q := strconv.Quote(s)
	if strings.Contains(s, "'") {
		return q
	}
	return "'" + strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`) + "'"
}
