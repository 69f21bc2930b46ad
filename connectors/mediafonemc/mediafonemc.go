// Package mediafonemc is Vumi's MediafoneTransport: SMS through Mediafone
// Cameroun. Mediafone sends inbound messages (to, from, sms) to web_path
// and gets {"message_id": ...} back; outbound messages are GET requests to
// outbound_url with the account's username and password, acked on 200 and
// nacked with the status code otherwise.
package mediafonemc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/httpsend"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the MediafoneTransport's config.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// Username and Password of the Mediafone account, sent with every
	// outbound message. Required.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Outbound is outbound_url (required) and outbound_timeout.
	httpsend.Outbound `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	var errs []error
	if c.Username == "" {
		errs = append(errs, errors.New("key username: is required"))
	}
	if c.Password == "" {
		errs = append(errs, errors.New("key password: is required"))
	}
	errs = append(errs, c.ValidateOutbound())
	return errors.Join(errs...)
}

// Kind is the MediafoneTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "mediafonemc", Aliases: []string{"vumi.transports.mediafonemc.MediafoneTransport", "vumi.transports.mediafonemc.mediafonemc.MediafoneTransport"},
		Role: topology.RoleTransport, Summary: "Mediafone Cameroun SMS (inbound over HTTP, outbound GET requests)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			client := cfg.HTTPClient()
			return httprpc.Worker(deps, spec, &cfg.Config, func() httprpc.Handler {
				return &handler{cfg: cfg, send: httpsend.New("mediafone", client)}
			}, httprpc.Options{ContentType: "application/json"}), nil
		},
	}
}

type handler struct {
	cfg  *Config
	send *httpsend.Client
}

var expected = []string{"to", "from", "sms"}

// HandleRequest implements httprpc.Handler: an inbound message.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	values, errs := s.FieldValues(r.HTTP, expected, nil)
	if errs != nil {
		s.Log.Info("bad inbound request", "request_id", r.ID, "errors", errs)
		r.Finish(s, errs.JSON(), http.StatusBadRequest)
		return
	}
	m := &schemas.UserMessage{
		MessageID: r.ID, Content: schemas.String(values["sms"]), ToAddr: schemas.String(values["to"]),
		FromAddr: schemas.String(values["from"]), Provider: schemas.String("vumi"), TransportType: schemas.String(schemas.TransportSMS),
	}
	s.PublishAnswerID(ctx, r, m)
}

// HandleReply implements httprpc.ReplyHandler: every outbound message
// (reply or not) is sent to outbound_url.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	u, err := url.Parse(h.cfg.OutboundURL)
	if err != nil {
		return worker.Permanent(fmt.Errorf("mediafone: outbound_url: %w", err))
	}
	q := u.Query()
	q.Set("username", h.cfg.Username)
	q.Set("password", h.cfg.Password)
	q.Set("phone", m.To())
	q.Set("msg", m.Text())
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return worker.Permanent(fmt.Errorf("mediafone: build request to %s: invalid request", httpsend.Public(u)))
	}
	resp, err := h.send.Do(ctx, s.Transport, req)
	if err != nil {
		return err
	}
	if resp.Status == http.StatusOK {
		return s.PublishAck(ctx, m.MessageID, m.MessageID)
	}
	reason := fmt.Sprintf("Unexpected response code: %d", resp.Status)
	s.Log.Warn("mediafone refused a message", "message_id", m.MessageID, "status", resp.Status, "body", string(resp.Body))
	return s.PublishEvent(ctx, &schemas.Event{EventType: schemas.EventNack, UserMessageID: m.MessageID,
		SentMessageID: schemas.String(m.MessageID), NackReason: &reason})
}
