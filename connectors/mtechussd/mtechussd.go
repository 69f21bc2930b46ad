// Package mtechussd is Vumi's MtechUssdTransport: MTECH (Nigeria) USSD
// over HTTP with XML pages. MTECH posts a <page> holding session_id and
// either a status (the session was cancelled) or page_id, data and, on a
// session's first page, mobile_number and gate; it waits for the
// application's reply, answered as a <page> with the text and, while the
// session continues, a free-text navigation link.
//
// Only free-text USSD is supported, not menus, as in Vumi. Sessions (the
// user's number and the gate) live in the session table for
// ussd_session_timeout seconds from their start.
package mtechussd

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the MtechUssdTransport's config.
type Config struct {
	ussdsession.HTTPConfig `yaml:",inline"`
	// WebHost, Username, Password and UssdStringPrefix appear in Vumi's
	// example configs; Vumi never read them. Accepted and ignored.
	WebHost          string `yaml:"web_host"`
	Username         string `yaml:"username"`
	Password         string `yaml:"password"`
	UssdStringPrefix string `yaml:"ussd_string_prefix"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.ValidationMode == "" {
		// Requests are XML bodies: query parameters are not looked at.
		c.ValidationMode = httprpc.Permissive
	}
	return c.HTTPConfig.Validate()
}

// Kind is the MtechUssdTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "mtech_ussd", Aliases: []string{"vumi.transports.mtech_ussd.MtechUssdTransport", "vumi.transports.mtech_ussd.mtech_ussd.MtechUssdTransport"},
		Role: topology.RoleTransport, Summary: "MTECH USSD over HTTP (XML pages, free text)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return ussdsession.Worker(deps, spec, &cfg.Config, cfg.TransportName, cfg.SessionTTL(),
				httprpc.Options{ContentType: "text/plain"}, // Vumi's HTTP-RPC default
				func(st *ussdsession.Store) httprpc.Handler { return &handler{cfg: cfg, sessions: st} }), nil
		},
	}
}

type handler struct {
	cfg      *Config
	sessions *ussdsession.Store
}

// Page is an MTECH request page. Absent elements are nil.
type Page struct {
	SessionID    *string `xml:"session_id"`
	Status       *string `xml:"status"`
	PageID       *string `xml:"page_id"`
	Data         *string `xml:"data"`
	MobileNumber *string `xml:"mobile_number"`
	Gate         *string `xml:"gate"`
}

// ErrNoSessionID is the error of a page without session_id.
var ErrNoSessionID = errors.New("the page has no session_id")

// ParsePage reads a request page: session_id is required, and without a
// status so is page_id.
func ParsePage(body []byte) (*Page, error) {
	var p struct {
		XMLName xml.Name
		Page
	}
	if err := xml.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("invalid XML: %w", err)
	}
	if p.SessionID == nil {
		return nil, ErrNoSessionID
	}
	if p.Status == nil && p.PageID == nil {
		return nil, errors.New("the page has neither status nor page_id")
	}
	return &p.Page, nil
}

// NewSession reports whether the page starts a session: page_id 0 with
// mobile_number (MTECH sometimes sends page_id 0 within a session).
func (p *Page) NewSession() bool {
	return p.PageID != nil && *p.PageID == "0" && p.MobileNumber != nil
}

// Response is an MTECH response page: the session id, optional title,
// text (each line break a <br />) and navigation links.
type Response struct {
	SessionID string
	Title     *string
	Text      []string
	Nav       []Link
}

// Link is one navigation link of a response page.
type Link struct {
	Text              *string
	PageID, AccessKey string
}

// AddFreetextOption adds the link that lets the user answer with free text.
func (r *Response) AddFreetextOption() {
	r.Nav = append(r.Nav, Link{PageID: "indexX", AccessKey: "*"})
}

// AddMenuItem adds a menu link "index<option>".
func (r *Response) AddMenuItem(text, option string) {
	r.Nav = append(r.Nav, Link{Text: &text, PageID: "index" + option, AccessKey: option})
}

// esc escapes text as ElementTree did: &, < and >.
func esc(b *bytes.Buffer, s string) { b.WriteString(textEscaper.Replace(s)) }

// escAttr escapes an attribute value as ElementTree did: also '"', and
// line breaks as character references.
func escAttr(b *bytes.Buffer, s string) { b.WriteString(attrEscaper.Replace(s)) }

var (
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\n", "")
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "\n", "&#10;")
)

// XML renders the page as MTECH expects it, without any line break.
func (r *Response) XML() []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version='1.0' encoding='UTF-8'?><page version="2.0"><session_id>`)
	esc(&b, r.SessionID)
	b.WriteString("</session_id>")
	if r.Title != nil {
		b.WriteString("<title>")
		esc(&b, *r.Title)
		b.WriteString("</title>")
	}
	for _, text := range r.Text {
		lines := strings.Split(text, "\n")
		b.WriteString("<div>")
		esc(&b, lines[0])
		for _, l := range lines[1:] {
			b.WriteString("<br />")
			esc(&b, l)
		}
		b.WriteString("</div>")
	}
	if len(r.Nav) > 0 {
		b.WriteString("<navigation>")
		for _, l := range r.Nav {
			b.WriteString(`<link accesskey="`)
			escAttr(&b, l.AccessKey)
			b.WriteString(`" pageId="`)
			escAttr(&b, l.PageID)
			if l.Text == nil {
				b.WriteString(`" />`)
				continue
			}
			b.WriteString(`">`)
			esc(&b, *l.Text)
			b.WriteString("</link>")
		}
		b.WriteString("</navigation>")
	}
	b.WriteString("</page>")
	return b.Bytes()
}

// HandleRequest implements httprpc.Handler.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	body, err := io.ReadAll(r.HTTP.Body)
	if err != nil {
		r.Finish(s, []byte("request body not read: "+err.Error()), http.StatusBadRequest)
		return
	}
	if s.Config().Noisy {
		s.Log.Debug("inbound page", "request_id", r.ID, "body", string(body))
	}
	p, err := ParsePage(body)
	if err != nil {
		s.Log.Warn("error parsing request XML", "request_id", r.ID, "error", err)
		r.Finish(s, []byte(err.Error()), http.StatusBadRequest)
		return
	}
	sessionID := *p.SessionID
	if p.Status != nil {
		// A status page: the session was cancelled. Answered with an empty
		// page; as in Vumi, no message is published.
		r.Finish(s, (&Response{SessionID: sessionID}).XML(), http.StatusOK)
		return
	}
	var session ussdsession.Session
	ev := schemas.SessionResume
	if p.NewSession() {
		ev = schemas.SessionNew
		session, err = h.sessions.Create(ctx, sessionID, ussdsession.Session{"from_addr": *p.MobileNumber, "to_addr": deref(p.Gate)})
	} else {
		session, err = h.sessions.Get(sessionID)
		if err == nil && session["from_addr"] == "" {
			s.Log.Warn("missing or broken session", "session_id", sessionID)
			r.Finish(s, nil, http.StatusBadRequest)
			return
		}
	}
	if err != nil {
		s.Log.Error("session table unavailable", "session_id", sessionID, "error", err)
		r.Finish(s, nil, http.StatusServiceUnavailable)
		return
	}
	m := &schemas.UserMessage{
		Content: p.Data, ToAddr: schemas.String(session["to_addr"]), FromAddr: schemas.String(session["from_addr"]),
		SessionEvent: &ev, TransportType: schemas.String(h.cfg.TransportType),
		TransportMetadata: schemas.Metadata{"session_id": sessionID},
	}
	if err := s.Publish(ctx, r, m); err != nil {
		s.Log.Error("inbound message not published", "request_id", r.ID, "error", err)
		r.Finish(s, nil, http.StatusServiceUnavailable)
	}
}

// HandleReply implements httprpc.ReplyHandler: a reply needs in_reply_to,
// content and transport_metadata.session_id (a nack otherwise); it
// answers with its text and, unless it closes the session, the free-text
// link.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	sessionID, _ := m.TransportMetadata["session_id"].(string)
	if m.InReplyTo == nil || *m.InReplyTo == "" || sessionID == "" || m.Text() == "" {
		return s.PublishNack(ctx, m.MessageID, "Missing in_reply_to, content or session_id")
	}
	resp := &Response{SessionID: sessionID, Text: []string{m.Text()}}
	if m.Session() != schemas.SessionClose {
		resp.AddFreetextOption()
	}
	return s.Deliver(ctx, m, resp.XML(), http.StatusOK, nil)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
