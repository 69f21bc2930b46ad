// Package apposit is Vumi's AppositTransport: SMS through Apposit's
// interconnection services. Apposit posts inbound messages (from, to,
// channel, content, isTest) to web_path and gets {"message_id": ...}
// back; outbound messages are form posts to outbound_url with the
// credentials configured for their from_addr, acked on 200 and nacked
// with Apposit's error code otherwise.
package apposit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/httpsend"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Credentials are one sender address's Apposit account.
type Credentials struct {
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
	ServiceID string `yaml:"service_id"`
}

// Config is Vumi's AppositTransportConfig.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// Credentials by from_addr. Required.
	Credentials map[string]Credentials `yaml:"credentials"`
	// Outbound is outbound_url (required) and outbound_timeout.
	httpsend.Outbound `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	var errs []error
	if c.Credentials == nil {
		errs = append(errs, errors.New("key credentials: is required"))
	}
	errs = append(errs, c.ValidateOutbound())
	return errors.Join(errs...)
}

// Kind is the AppositTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "apposit", Aliases: []string{"vumi.transports.apposit.AppositTransport", "vumi.transports.apposit.apposit.AppositTransport"},
		Role: topology.RoleTransport, Summary: "Apposit SMS (inbound over HTTP, outbound form posts)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			client := cfg.HTTPClient()
			return httprpc.Worker(deps, spec, &cfg.Config, func() httprpc.Handler { return &handler{cfg: cfg, client: client} },
				httprpc.Options{ContentType: "application/json"}), nil
		},
	}
}

type handler struct {
	cfg    *Config
	client *http.Client
}

// Channels maps Vumi transport types to Apposit channels (only SMS is
// supported, as in Vumi).
var channels = map[string]string{schemas.TransportSMS: "SMS"}

var expected = []string{"from", "to", "channel", "content", "isTest"}

// HandleRequest implements httprpc.Handler: an inbound message.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	values, errs := s.FieldValues(r.HTTP, expected, nil)
	if errs == nil {
		errs = httprpc.FieldErrors{}
	}
	ttype := ""
	if ch, ok := values["channel"]; ok {
		for t, c := range channels {
			if c == ch {
				ttype = t
			}
		}
		if ttype == "" {
			errs.Add("unsupported_channel", ch)
		}
	}
	if len(errs) > 0 {
		r.Finish(s, errs.JSON(), http.StatusBadRequest)
		return
	}
	m := &schemas.UserMessage{
		Content: schemas.String(values["content"]), FromAddr: schemas.String(values["from"]), ToAddr: schemas.String(values["to"]),
		Provider: schemas.String("apposit"), TransportType: schemas.String(ttype),
		TransportMetadata: schemas.Metadata{"apposit": map[string]any{"isTest": values["isTest"]}},
	}
	s.PublishAnswerID(ctx, r, m)
}

// KnownErrors are Apposit's error response codes.
var KnownErrors = map[string]string{
	"102001": "Username Not Set",
	"102002": "Password Not Set",
	"102003": "Username or password is invalid or not authorized",
	"102004": "Service ID Not Set",
	"102005": "Invalid Service Id",
	"102006": "Service Not Found",
	"102007": "Content not set",
	"102008": "To Address Not Set",
	"102009": "From Address Not Set",
	"102010": "Channel Not Set",
	"102011": "Invalid Channel",
	"102012": "The address provided is not subscribed",
	"102013": "The message content id is unregistered or not approved",
	"102014": "Message Content Public ID and Message Content Set",
	"102015": "Message Content Public ID or Message Content Not Set",
	"102022": "One or more messages failed while sending",
	"102024": "Outbound message routing not allowed for service",
	"102025": "Content or Content ID is not Approved",
	"102999": "Other Runtime Error",
}

// HandleReply implements httprpc.ReplyHandler: every outbound message
// (reply or not) is posted to outbound_url.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	ttype := ""
	if m.TransportType != nil {
		ttype = *m.TransportType
	}
	channel, ok := channels[ttype]
	if !ok {
		return s.PublishNack(ctx, m.MessageID, "No corresponding channel exists for transport type: "+ttype)
	}
	cred := h.cfg.Credentials[m.From()]
	form := url.Values{
		"username": {cred.Username}, "password": {cred.Password}, "serviceId": {cred.ServiceID},
		"fromAddress": {m.From()}, "toAddress": {m.To()}, "content": {m.Text()}, "channel": {channel},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.OutboundURL, strings.NewReader(form.Encode()))
	if err != nil {
		return worker.Permanent(fmt.Errorf("apposit: build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := h.client.Do(req)
	if err != nil {
		// The message may be retried: the failure is temporary.
		return worker.Temporary(fmt.Errorf("apposit: send to %s: %w", req.URL.Redacted(), err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	code := strings.TrimSpace(string(body))
	if resp.StatusCode == http.StatusOK {
		return s.PublishAck(ctx, m.MessageID, m.MessageID)
	}
	reason := "Response with unknown code received: " + code
	if e, ok := KnownErrors[code]; ok {
		reason = fmt.Sprintf("(%s) %s", code, e)
	}
	s.Log.Warn("apposit refused a message", "message_id", m.MessageID, "status", resp.StatusCode, "reason", reason)
	return s.PublishNack(ctx, m.MessageID, reason)
}
