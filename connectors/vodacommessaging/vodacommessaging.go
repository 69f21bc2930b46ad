// Package vodacommessaging is Vumi's VodacomMessagingTransport: USSD over
// HTTP from Vodacom Messaging. Each request (request, msisdn,
// ussdSessionId, provider) waits for the application's reply, answered as
// Vodacom's XML menu. A request whose text starts with ussd_string_prefix
// (the dialled code) starts a session; any other resumes one. The
// protocol carries everything a request needs, so no session state is
// kept.
package vodacommessaging

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strings"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the VodacomMessagingTransport's config.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// UssdStringPrefix marks the first request of a session (its text is
	// the dialled code, e.g. "*120*666"). Required.
	UssdStringPrefix string `yaml:"ussd_string_prefix"`
	// WebHost is the host:port Vodacom reaches this transport on; it goes
	// into the callback URL of every menu. Required.
	WebHost string `yaml:"web_host"`
	// TransportType of inbound messages; default "ussd".
	TransportType string `yaml:"transport_type"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	if c.TransportType == "" {
		c.TransportType = schemas.TransportUSSD
	}
	var errs []error
	if c.UssdStringPrefix == "" {
		errs = append(errs, errors.New("key ussd_string_prefix: is required"))
	}
	if c.WebHost == "" {
		errs = append(errs, errors.New("key web_host: is required"))
	} else if strings.ContainsAny(c.WebHost, "/\"<>& ") {
		errs = append(errs, fmt.Errorf("key web_host: %q must be a host[:port], without scheme or path", c.WebHost))
	}
	return errors.Join(errs...)
}

// Kind is the VodacomMessagingTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "vodacom_messaging_ussd",
		Aliases: []string{"vumi.transports.vodacom_messaging.VodacomMessagingTransport",
			"vumi.transports.vodacom_messaging.vodacom_messaging.VodacomMessagingTransport"},
		Role: topology.RoleTransport, Summary: "Vodacom Messaging USSD over HTTP (XML menus)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return httprpc.Worker(deps, spec, &cfg.Config, func() httprpc.Handler { return &handler{cfg: cfg} },
				httprpc.Options{ContentType: "text/xml; charset=utf-8"}), nil
		},
	}
}

type handler struct{ cfg *Config }

var (
	expected = []string{"request", "msisdn", "ussdSessionId"}
	optional = []string{"provider"}
)

// HandleRequest implements httprpc.Handler.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	values, errs := s.FieldValues(r.HTTP, expected, optional)
	if errs != nil {
		r.Finish(s, errs.JSON(), http.StatusBadRequest)
		return
	}
	content := values["request"]
	ev, to := schemas.SessionResume, ""
	if strings.HasPrefix(content, h.cfg.UssdStringPrefix) {
		ev, to = schemas.SessionNew, content
	}
	m := &schemas.UserMessage{
		Content: schemas.String(content), ToAddr: schemas.String(to), FromAddr: schemas.String(values["msisdn"]),
		SessionEvent: &ev, TransportType: schemas.String(h.cfg.TransportType),
		TransportMetadata: schemas.Metadata{"session_id": values["ussdSessionId"]},
	}
	if p, ok := values["provider"]; ok {
		m.Provider = schemas.String(p)
	}
	s.PublishOrFail(ctx, r, m, []byte(httprpc.NotAccepted))
}

// HandleReply implements httprpc.ReplyHandler: the reply's content is the
// menu's header text; unless the reply closes the session, a free-text
// option calls back to this transport.
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
	return s.Deliver(ctx, m, []byte(Response(h.cfg.WebHost, h.cfg.WebPath, m.Text(), m.Session() != schemas.SessionClose)), http.StatusOK, nil)
}

// Response is Vodacom Messaging's menu document: headertext, and when
// freetext is set a hidden option calling back to http://webHost+webPath.
// The text is XML-escaped.
func Response(webHost, webPath, headertext string, freetext bool) string {
	var b strings.Builder
	b.WriteString("<request>\n\t<headertext>")
	b.WriteString(html.EscapeString(headertext))
	b.WriteString("</headertext>\n")
	if freetext {
		b.WriteString("\t<options>\n\t\t<option command=\"1\" order=\"1\" callback=\"http://")
		b.WriteString(html.EscapeString(webHost + webPath))
		b.WriteString("\" display=\"False\" ></option>\n\t</options>\n")
	}
	b.WriteString("</request>")
	return b.String()
}
