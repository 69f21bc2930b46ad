// Package integrat is Vumi's IntegratTransport: Integrat's Higate USSD
// gateway over HTTP with XML. Higate sends USSD events (OnUSSEvent: New,
// Open, Request, Close, ...) to web_path; each is answered at once with an
// empty 200. Replies are sent to Higate's url as USSReply requests, acked
// when Higate answers status_code 0 and nacked with its error fields
// otherwise.
//
// Higate carries the whole session in each event (the session id, the
// user's number and the code dialled), so the transport keeps no session
// state: any instance handles any event, as in Vumi.
package integrat

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/httpsend"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the IntegratTransport's config.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// URL is Higate's address replies are posted to. Required.
	URL string `yaml:"url"`
	// Username and Password are the Higate account's (the UserID and
	// Password of replies). Required.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TransportType of inbound messages; default "ussd".
	TransportType string `yaml:"transport_type"`
	// Timeout is outbound_timeout: how long, in seconds, one request to
	// Higate may take; default 30 (not in Vumi).
	httpsend.Timeout `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.ValidationMode == "" {
		// Events are XML bodies: query parameters are not looked at.
		c.ValidationMode = httprpc.Permissive
	}
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	if c.TransportType == "" {
		c.TransportType = schemas.TransportUSSD
	}
	var errs []error
	if err := httpsend.CheckHostURL("url", c.URL); err != nil {
		errs = append(errs, err)
	}
	if c.Username == "" {
		errs = append(errs, errors.New("key username: is required"))
	}
	if c.Password == "" {
		errs = append(errs, errors.New("key password: is required"))
	}
	if err := c.ValidateTimeout(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Kind is the IntegratTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "integrat", Aliases: []string{"vumi.transports.integrat.IntegratTransport", "vumi.transports.integrat.integrat.IntegratTransport"},
		Role: topology.RoleTransport, Summary: "Integrat Higate USSD over HTTP (XML events in, USSReply requests out)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			client := cfg.HTTPClient()
			return httprpc.Worker(deps, spec, &cfg.Config, func() httprpc.Handler { return &handler{cfg: cfg, client: client} },
				httprpc.Options{ContentType: "text/plain"}), nil
		},
	}
}

type handler struct {
	cfg    *Config
	client *http.Client
}

// Event is a Higate USSD event.
type Event struct {
	// Type is the message's type (OnUSSEvent for USSD; others are
	// ignored).
	Type string
	// EventType is OnUSSEvent's type: New, Open, Request, Close, ...
	EventType                  string
	SessionID, MSISDN, ConnStr string
	// Text is USSText, nil when absent.
	Text *string
}

type higate struct {
	Response *struct {
		Type  string `xml:"Type,attr"`
		Event *struct {
			Type    string `xml:"Type,attr"`
			Context *struct {
				SessionID *string `xml:"SessionID,attr"`
				MSISDN    *string `xml:"MSISDN,attr"`
				ConnStr   *string `xml:"ConnStr,attr"`
			} `xml:"USSContext"`
			Text *string `xml:"USSText"`
		} `xml:"OnUSSEvent"`
	} `xml:"Response"`
	Request *struct {
		Type string `xml:"Type,attr"`
	} `xml:"Request"`
}

// ParseEvent reads a Higate message. A message that is not a USSD event
// comes back with only its Type; a USSD event must have its context's
// SessionID, MSISDN and ConnStr.
func ParseEvent(body []byte) (*Event, error) {
	var h higate
	if err := xml.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("invalid XML: %w", err)
	}
	e := &Event{}
	if h.Response != nil {
		e.Type = h.Response.Type
	}
	if h.Request != nil && h.Request.Type != "" {
		e.Type = h.Request.Type
	}
	if e.Type != "OnUSSEvent" {
		return e, nil
	}
	if h.Response == nil || h.Response.Event == nil {
		return nil, errors.New("an OnUSSEvent message without its OnUSSEvent element")
	}
	ev := h.Response.Event
	if ev.Type == "" {
		return nil, errors.New("OnUSSEvent has no Type")
	}
	var missing []string
	if ev.Context == nil || ev.Context.SessionID == nil {
		missing = append(missing, "SessionID")
	}
	if ev.Context == nil || ev.Context.MSISDN == nil {
		missing = append(missing, "MSISDN")
	}
	if ev.Context == nil || ev.Context.ConnStr == nil {
		missing = append(missing, "ConnStr")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("USSContext lacks %s", strings.Join(missing, ", "))
	}
	e.EventType, e.Text = ev.Type, ev.Text
	e.SessionID, e.MSISDN, e.ConnStr = *ev.Context.SessionID, *ev.Context.MSISDN, *ev.Context.ConnStr
	return e, nil
}

// SessionEvent is the session event a USSD event is published with, or
// false when it is not published: a Request with the text REQ and a New
// event both announce a session whose Open event follows, and only Open
// starts it.
func (e *Event) SessionEvent() (schemas.SessionEvent, bool) {
	if e.Type != "OnUSSEvent" {
		return "", false
	}
	if e.EventType == "Request" {
		if e.text() == "REQ" {
			return "", false
		}
		return schemas.SessionResume, true
	}
	switch strings.ToLower(e.EventType) {
	case "new":
		return "", false
	case "open":
		return schemas.SessionNew, true
	case "close":
		return schemas.SessionClose, true
	}
	return schemas.SessionResume, true
}

func (e *Event) text() string {
	if e.Text == nil {
		return ""
	}
	return strings.TrimSpace(*e.Text)
}

// HandleRequest implements httprpc.Handler: every event is answered at
// once with an empty 200.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	body, err := io.ReadAll(r.HTTP.Body)
	if err != nil {
		r.Finish(s, []byte("request body not read: "+err.Error()), http.StatusBadRequest)
		return
	}
	e, err := ParseEvent(body)
	if err != nil {
		s.Log.Warn("invalid Higate message", "request_id", r.ID, "error", err)
		r.Finish(s, []byte(err.Error()), http.StatusBadRequest)
		return
	}
	ev, publish := e.SessionEvent()
	if !publish {
		if e.Type != "OnUSSEvent" {
			s.Log.Debug("non-USSD Higate message ignored", "type", e.Type)
		}
		r.Finish(s, nil, http.StatusOK)
		return
	}
	var content *string
	if ev == schemas.SessionResume {
		content = schemas.String(e.text())
	}
	m := &schemas.UserMessage{
		MessageID: r.ID, FromAddr: schemas.String(middleware.NormalizeMSISDN(e.MSISDN, "")), ToAddr: schemas.String(e.ConnStr),
		SessionEvent: &ev, Content: content, TransportType: schemas.String(h.cfg.TransportType),
		TransportMetadata: schemas.Metadata{"session_id": e.SessionID},
	}
	if !s.PublishInboundOrFail(ctx, r, m, []byte(httprpc.NotAccepted)) {
		return
	}
	r.Finish(s, nil, http.StatusOK)
}

// USSReply is the XML of a reply to Higate.
func USSReply(sessionID, flags, content, userID, password string) []byte {
	var b bytes.Buffer
	b.WriteString(`<Message><Version Version="1.0" /><Request Flags="`)
	attr(&b, flags)
	b.WriteString(`" SessionID="`)
	attr(&b, sessionID)
	b.WriteString(`" Type="USSReply"><UserID Orientation="TR">`)
	text(&b, userID)
	b.WriteString("</UserID><Password>")
	text(&b, password)
	b.WriteString("</Password>")
	if content == "" {
		b.WriteString(`<USSText Type="TEXT" />`)
	} else {
		b.WriteString(`<USSText Type="TEXT">`)
		text(&b, content)
		b.WriteString("</USSText>")
	}
	b.WriteString("</Request></Message>")
	return b.Bytes()
}

// text and attr escape as ElementTree did.
func text(b *bytes.Buffer, s string) { b.WriteString(textEscaper.Replace(s)) }
func attr(b *bytes.Buffer, s string) { b.WriteString(attrEscaper.Replace(s)) }

var (
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "\n", "&#10;")
)

// ParseResponse reads Higate's answer to a reply: "" when it accepted it
// (status_code 0), else the nack reason ("error_code: -1, reason: ...").
func ParseResponse(body []byte) (string, error) {
	var r struct {
		XMLName    xml.Name
		StatusCode *string `xml:"status_code,attr"`
		Data       *struct {
			Name   string `xml:"name,attr"`
			Fields []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"field"`
		} `xml:"Data"`
	}
	if err := xml.Unmarshal(body, &r); err != nil {
		return "", fmt.Errorf("invalid Higate response: %w", err)
	}
	if r.StatusCode == nil {
		return "", errors.New("invalid Higate response: no status_code")
	}
	code, err := strconv.Atoi(strings.TrimSpace(*r.StatusCode))
	if err != nil {
		return "", fmt.Errorf("invalid Higate response: status_code %q", *r.StatusCode)
	}
	if code == 0 {
		return "", nil
	}
	var parts []string
	if r.Data != nil {
		for _, f := range r.Data.Fields {
			parts = append(parts, f.Name+": "+f.Value)
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("status_code: %d", code), nil
	}
	return strings.Join(parts, ", "), nil
}

// HandleReply implements httprpc.ReplyHandler: every outbound message is
// a USSReply to Higate for the session in transport_metadata.session_id
// (Flags 1 when it closes the session).
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	sessionID, _ := m.TransportMetadata["session_id"].(string)
	if sessionID == "" {
		return s.PublishNack(ctx, m.MessageID, "Missing transport_metadata.session_id: Higate replies need the session")
	}
	flags := "0"
	if m.Session() == schemas.SessionClose {
		flags = "1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(USSReply(sessionID, flags, m.Text(), h.cfg.Username, h.cfg.Password)))
	if err != nil {
		return worker.Permanent(fmt.Errorf("integrat: build request: %w", err))
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	public := redacted(h.cfg.URL)
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return worker.Temporary(fmt.Errorf("integrat: send to %s: %w", public, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 500 {
		return worker.Temporary(fmt.Errorf("integrat: %s answered HTTP %d", public, resp.StatusCode))
	}
	reason, err := ParseResponse(body)
	if err != nil {
		return worker.Permanent(fmt.Errorf("integrat: %s answered HTTP %d: %w", public, resp.StatusCode, err))
	}
	if reason != "" {
		s.Log.Warn("higate refused a reply", "message_id", m.MessageID, "reason", reason)
		return s.PublishNack(ctx, m.MessageID, reason)
	}
	return s.PublishAck(ctx, m.MessageID, m.MessageID)
}

func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the configured url"
	}
	return u.Redacted()
}
