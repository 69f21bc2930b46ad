// Package imimobile is Vumi's ImiMobileUssdTransport: USSD with IMImobile
// (India) over HTTP. IMImobile calls <web_path>/<suffix> with msisdn,
// msg, code, tid and dcs and waits for the application's reply, answered
// as the text with the header X-USSD-SESSION (1: the session continues,
// 0: it ends). The suffix names the service: suffix_to_addrs maps it to
// the to_addr (the short or long code), which IMImobile does not send.
//
// IMImobile sends no session id: the user's number keys the session. A
// user leaving shows only as a message matching
// user_terminated_session_message, which closes the session and is
// answered at once. Sessions live in the session table for
// ussd_session_timeout seconds from their start.
package imimobile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the ImiMobileUssdTransport's config.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// SuffixToAddrs maps URL suffixes (after web_path) to the to_addr of
	// their messages. Required.
	SuffixToAddrs map[string]string `yaml:"suffix_to_addrs"`
	// UserTerminatedSessionMessage is a regular expression (anchored at
	// the start) recognising the message IMImobile sends when the user
	// ends the session; default "^Map Dialog User Abort User Reason".
	UserTerminatedSessionMessage *string `yaml:"user_terminated_session_message"`
	// UserTerminatedSessionResponse answers such a message; default
	// "Session Ended".
	UserTerminatedSessionResponse *string `yaml:"user_terminated_session_response"`
	// SessionConfig's ussd_session_timeout counts from a session's start.
	ussdsession.SessionConfig `yaml:",inline"`

	terminated *regexp.Regexp
	response   string
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	var errs []error
	if c.SuffixToAddrs == nil {
		errs = append(errs, errors.New("key suffix_to_addrs: is required"))
	}
	for suffix := range c.SuffixToAddrs {
		if suffix == "" || strings.Contains(suffix, "/") {
			errs = append(errs, fmt.Errorf("key suffix_to_addrs: suffix %q must be one non-empty path segment", suffix))
		}
	}
	if err := c.ValidateSession(); err != nil {
		errs = append(errs, err)
	}
	pattern := "^Map Dialog User Abort User Reason"
	if c.UserTerminatedSessionMessage != nil {
		pattern = *c.UserTerminatedSessionMessage
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)`)
	if err != nil {
		errs = append(errs, fmt.Errorf("key user_terminated_session_message: %w", err))
	}
	c.terminated = re
	c.response = "Session Ended"
	if c.UserTerminatedSessionResponse != nil {
		c.response = *c.UserTerminatedSessionResponse
	}
	return errors.Join(errs...)
}

// IO implements topology.WorkerConfig: the HTTP-RPC topics and the
// session table.
func (c *Config) IO(name string) topology.IO {
	return ussdsession.AddIO(c.Config.IO(name), c.TransportName)
}

// Nack reasons, Vumi's.
const (
	ResponseFailureError       = "Response to http request failed."
	InsufficientMsgFieldsError = "Insufficiant message fields provided."
)

// Kind is the ImiMobileUssdTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "imimobile_ussd", Aliases: []string{"vumi.transports.imimobile.ImiMobileUssdTransport", "vumi.transports.imimobile.imimobile_ussd.ImiMobileUssdTransport"},
		Role: topology.RoleTransport, Summary: "IMImobile (India) USSD over HTTP (URL suffixes name the to_addr)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return ussdsession.Worker(deps, spec, &cfg.Config, cfg.TransportName, cfg.SessionTTL(),
				httprpc.Options{GoneNackReason: ResponseFailureError},
				func(st *ussdsession.Store) httprpc.Handler { return &handler{cfg: cfg, sessions: st} }), nil
		},
	}
}

type handler struct {
	cfg      *Config
	sessions *ussdsession.Store
}

// Request is one IMImobile request.
type Request struct {
	ToAddr                      string
	MSISDN, Msg, Code, TID, DCS string
	// Datetime is the request's time in UTC when it carried one (the
	// datetime parameter of IMImobile's first API, in India Standard
	// Time).
	Datetime *time.Time
}

var (
	expected = []string{"msisdn", "msg", "code", "tid", "dcs"}
	optional = []string{"datetime"}
)

// ParseRequest reads a request: the suffix of its path after webPath must
// be one of suffixes, and its parameters the expected ones. errs is
// Vumi's 400 body ({"unknown_suffix": …, "missing_parameter": [...], …}).
func ParseRequest(path, webPath string, form url.Values, suffixes map[string]string, strict bool) (Request, map[string]any) {
	errs := map[string]any{}
	suffix := strings.TrimPrefix(strings.TrimPrefix(path, "/"+strings.Trim(webPath, "/")), "/")
	toAddr, ok := suffixes[suffix]
	if !ok {
		errs["unknown_suffix"] = suffix
	}
	v, ferrs := httprpc.Fields(form, expected, optional, strict)
	for k, fields := range ferrs.Map() {
		errs[k] = fields
	}
	req := Request{ToAddr: toAddr, MSISDN: v["msisdn"], Msg: v["msg"], Code: v["code"], TID: v["tid"], DCS: v["dcs"]}
	if d, ok := v["datetime"]; ok {
		at, err := ISTToUTC(d)
		if err != nil {
			errs["invalid_parameter"] = map[string]string{"datetime": err.Error()}
		} else {
			req.Datetime = &at
		}
	}
	if len(errs) > 0 {
		return Request{}, errs
	}
	return req, nil
}

var istRe = regexp.MustCompile(`^\s*(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{1,2}):(\d{1,2}) ([AaPp][Mm])\s*$`)

// ist is India Standard Time, UTC+05:30.
var ist = time.FixedZone("IST", 5*3600+30*60)

// ISTToUTC reads a time in India Standard Time written
// "[M]M/[D]D/YYYY [H]H:[M]M:[S]S am|pm" (Vumi's ist_to_utc) and returns it
// in UTC.
func ISTToUTC(s string) (time.Time, error) {
	m := istRe.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("%q is not a time like 1/26/2013 03:30:00 pm", s)
	}
	n := make([]int, 6)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	month, day, year, hour, minute, second := n[0], n[1], n[2], n[3], n[4], n[5]
	if month < 1 || month > 12 || hour < 1 || hour > 12 || minute > 59 || second > 59 {
		return time.Time{}, fmt.Errorf("%q is out of range", s)
	}
	hour %= 12
	if strings.EqualFold(m[7], "pm") {
		hour += 12
	}
	t := time.Date(year, time.Month(month), day, hour, minute, second, 0, ist)
	if t.Day() != day {
		return time.Time{}, fmt.Errorf("%q is not a date", s)
	}
	return t.UTC(), nil
}

func (h *handler) unavailable(s *httprpc.Server, r *httprpc.Request, what string, err error) {
	s.Log.Error(what, "request_id", r.ID, "error", err)
	r.Finish(s, []byte("Service unavailable, please try again"), http.StatusServiceUnavailable)
}

// HandleRequest implements httprpc.Handler.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	req, errs := ParseRequest(r.HTTP.URL.Path, h.cfg.WebPath, r.Args(), h.cfg.SuffixToAddrs, s.Config().ValidationMode == httprpc.Strict)
	if errs != nil {
		body, _ := json.Marshal(errs)
		s.Log.Warn("unhappy incoming message", "errors", string(body))
		r.Finish(s, body, http.StatusBadRequest)
		return
	}
	meta := map[string]any{"tid": req.TID, "code": req.Code, "dcs": req.DCS}
	m := &schemas.UserMessage{
		Content: schemas.String(req.Msg), ToAddr: schemas.String(req.ToAddr), FromAddr: schemas.String(req.MSISDN),
		Provider: schemas.String("imimobile"), TransportType: schemas.String(schemas.TransportUSSD),
		TransportMetadata: schemas.Metadata{"imimobile_ussd": meta},
	}
	if req.Datetime != nil {
		meta["datetime"] = req.Datetime.Format(time.RFC3339)
		m.Timestamp = *req.Datetime
	}
	if h.cfg.terminated.MatchString(req.Msg) {
		// The user ended the session: close it, and answer at once.
		ev := schemas.SessionClose
		m.SessionEvent, m.MessageID = &ev, r.ID
		if err := s.PublishInbound(ctx, m); err != nil {
			h.unavailable(s, r, "inbound message not published", err)
			return
		}
		if err := h.sessions.Delete(ctx, req.MSISDN); err != nil {
			s.Log.Warn("session not deleted; it expires by itself", "msisdn", req.MSISDN, "error", err)
		}
		s.Finish(r.ID, []byte(h.cfg.response), http.StatusOK, http.Header{"X-Ussd-Session": {"0"}})
		return
	}
	session, err := h.sessions.Get(req.MSISDN)
	if err != nil {
		h.unavailable(s, r, "session table unavailable", err)
		return
	}
	ev := schemas.SessionResume
	if session != nil {
		err = h.sessions.Save(ctx, req.MSISDN, session)
	} else {
		ev = schemas.SessionNew
		_, err = h.sessions.Create(ctx, req.MSISDN, ussdsession.Session{"from_addr": req.MSISDN, "to_addr": req.ToAddr})
	}
	if err != nil {
		h.unavailable(s, r, "session not stored", err)
		return
	}
	m.SessionEvent = &ev
	if err := s.Publish(ctx, r, m); err != nil {
		h.unavailable(s, r, "inbound message not published", err)
	}
}

// HandleReply implements httprpc.ReplyHandler: a reply (in_reply_to and
// content set) answers its request with X-USSD-SESSION 1, or 0 when it
// closes the session (which is then deleted); anything else is nacked.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	if m.InReplyTo == nil || *m.InReplyTo == "" || m.Content == nil {
		return s.PublishNack(ctx, m.MessageID, InsufficientMsgFieldsError)
	}
	value := "1"
	if m.Session() == schemas.SessionClose {
		value = "0"
		if err := h.sessions.Delete(ctx, m.To()); err != nil {
			s.Log.Warn("session not deleted; it expires by itself", "msisdn", m.To(), "error", err)
		}
	}
	return s.Deliver(ctx, m, []byte(m.Text()), http.StatusOK, http.Header{"X-Ussd-Session": {value}})
}
