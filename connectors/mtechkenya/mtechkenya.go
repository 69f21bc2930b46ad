// Package mtechkenya is Vumi's MTechKenyaTransport (and V2): SMS through
// MTECH Kenya. MTECH sends inbound messages (shortCode, MSISDN, MESSAGE,
// messageID, optionally linkID, gateway, message_type) to web_path and
// gets {"message_id": ...} back; outbound messages are POSTs to
// outbound_url with the account's user and pass — in the query string
// (MTechKenyaTransport) or as a form body (MTechKenyaTransportV2) — acked
// on 200 and nacked with MTECH's meaning of the status code otherwise.
package mtechkenya

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

// Config is Vumi's MTechKenyaTransportConfig.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// MtUsername and MtPassword are sent with outbound messages. Required.
	MtUsername string `yaml:"mt_username"`
	MtPassword string `yaml:"mt_password"`
	// Outbound is outbound_url (required) and outbound_timeout.
	httpsend.Outbound `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	var errs []error
	if err := httpsend.CheckURL("outbound_url", c.OutboundURL); err != nil {
		errs = append(errs, err)
	}
	if c.MtUsername == "" {
		errs = append(errs, errors.New("key mt_username: is required"))
	}
	if c.MtPassword == "" {
		errs = append(errs, errors.New("key mt_password: is required"))
	}
	if err := c.ValidateTimeout(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Kinds are MTechKenyaTransport (parameters in the query string) and
// MTechKenyaTransportV2 (parameters in a form body).
func Kinds() []*topology.Kind {
	return []*topology.Kind{kind(false), kind(true)}
}

func kind(v2 bool) *topology.Kind {
	name, class, summary := "mtech_kenya", "MTechKenyaTransport", "MTECH Kenya SMS (inbound over HTTP, outbound POSTs with query parameters)"
	if v2 {
		name, class, summary = "mtech_kenya_v2", "MTechKenyaTransportV2", "MTECH Kenya SMS (inbound over HTTP, outbound form posts)"
	}
	return &topology.Kind{
		Name: name, Aliases: []string{"vumi.transports.mtech_kenya." + class, "vumi.transports.mtech_kenya.mtech_kenya." + class},
		Role: topology.RoleTransport, Summary: summary,
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			client := cfg.HTTPClient()
			return httprpc.Worker(deps, spec, &cfg.Config, func() httprpc.Handler {
				return &handler{cfg: cfg, v2: v2, send: httpsend.New("mtech kenya", client)}
			}, httprpc.Options{ContentType: "application/json"}), nil
		},
	}
}

type handler struct {
	cfg  *Config
	v2   bool
	send *httpsend.Client
}

var (
	expected = []string{"shortCode", "MSISDN", "MESSAGE", "messageID"}
	optional = []string{"linkID", "gateway", "message_type"}
)

// HandleRequest implements httprpc.Handler: an inbound message.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	values, errs := s.FieldValues(r.HTTP, expected, optional)
	if errs != nil {
		s.Log.Info("bad inbound request", "request_id", r.ID, "errors", errs)
		r.Finish(s, errs.JSON(), http.StatusBadRequest)
		return
	}
	meta := schemas.Metadata{"transport_message_id": values["messageID"]}
	if link, ok := values["linkID"]; ok {
		meta["linkID"] = link
	}
	m := &schemas.UserMessage{
		MessageID: r.ID, Content: schemas.String(values["MESSAGE"]), ToAddr: schemas.String(values["shortCode"]),
		FromAddr: schemas.String(values["MSISDN"]), TransportType: schemas.String(schemas.TransportSMS), TransportMetadata: meta,
	}
	s.PublishAnswerID(ctx, r, m)
}

// KnownErrors are MTECH's meanings of HTTP status codes.
var KnownErrors = map[int]string{
	401: "Invalid username or password",
	403: "Invalid mobile number",
}

// HandleReply implements httprpc.ReplyHandler: every outbound message
// (reply or not) is posted to outbound_url.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	params := url.Values{
		"user": {h.cfg.MtUsername}, "pass": {h.cfg.MtPassword}, "messageID": {m.MessageID},
		"shortCode": {m.From()}, "MSISDN": {m.To()}, "MESSAGE": {m.Text()},
	}
	if link, ok := m.TransportMetadata["linkID"]; ok && link != nil {
		params.Set("linkID", fmt.Sprint(link))
	}
	u, err := url.Parse(h.cfg.OutboundURL)
	if err != nil {
		return worker.Permanent(fmt.Errorf("mtech kenya: outbound_url: %w", err))
	}
	public := httpsend.Public(u)
	var body io.Reader
	if h.v2 {
		body = strings.NewReader(params.Encode())
	} else {
		q := u.Query()
		for k, v := range params {
			q[k] = v
		}
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return worker.Permanent(fmt.Errorf("mtech kenya: build request to %s: invalid request", public))
	}
	if h.v2 {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := h.send.Do(ctx, s.Transport, req)
	if err != nil {
		return err
	}
	if resp.Status == http.StatusOK {
		return s.PublishAck(ctx, m.MessageID, m.MessageID)
	}
	reason, ok := KnownErrors[resp.Status]
	if !ok {
		reason = fmt.Sprintf("Unknown response code: %d", resp.Status)
	}
	s.Log.Warn("mtech kenya refused a message", "message_id", m.MessageID, "status", resp.Status, "reason", reason)
	return s.PublishNack(ctx, m.MessageID, reason)
}
