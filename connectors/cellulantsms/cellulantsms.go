// Package cellulantsms is Vumi's CellulantSmsTransport: SMS through
// Cellulant. Cellulant sends inbound messages (SOURCEADDR, DESTADDR,
// MESSAGE, ID) to web_path and gets {"message_id": ...} back; outbound
// messages are GET requests to outbound_url with the credentials
// configured for their from_addr, acked when Cellulant answers "1" and
// nacked with its error code otherwise.
package cellulantsms

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

// Credentials are one sender address's Cellulant account.
type Credentials struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Config is Vumi's CellulantSmsTransportConfig.
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

// Kind is the CellulantSmsTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "cellulant_sms", Aliases: []string{"vumi.transports.cellulant.CellulantSmsTransport", "vumi.transports.cellulant.cellulant_sms.CellulantSmsTransport"},
		Role: topology.RoleTransport, Summary: "Cellulant SMS (inbound over HTTP, outbound GET requests)",
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

var (
	expected = []string{"SOURCEADDR", "DESTADDR", "MESSAGE", "ID"}
	ignored  = []string{"channelID", "keyword", "CHANNELID", "serviceID", "SERVICEID", "unsub", "transactionID"}
)

// HandleRequest implements httprpc.Handler: an inbound message.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	values, errs := s.FieldValues(r.HTTP, expected, ignored)
	if errs != nil {
		r.Finish(s, errs.JSON(), http.StatusBadRequest)
		return
	}
	m := &schemas.UserMessage{
		MessageID: r.ID, Content: schemas.String(values["MESSAGE"]), ToAddr: schemas.String(values["DESTADDR"]),
		FromAddr: schemas.String(values["SOURCEADDR"]), Provider: schemas.String("vumi"), TransportType: schemas.String(schemas.TransportSMS),
		TransportMetadata: schemas.Metadata{"transport_message_id": values["ID"]},
	}
	s.PublishAnswerID(ctx, r, m)
}

// KnownErrors are Cellulant's error responses.
var KnownErrors = map[string]string{
	"E0":   "Insufficient HTTP Params passed",
	"E1":   "Invalid username or password",
	"E2":   "Credits have expired or run out",
	"1005": "Suspect source address",
}

// HandleReply implements httprpc.ReplyHandler: every outbound message
// (reply or not) is sent to outbound_url.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	cred := h.cfg.Credentials[m.From()]
	q := url.Values{"username": {cred.Username}, "password": {cred.Password}, "source": {m.From()},
		"destination": {m.To()}, "message": {m.Text()}}
	u, err := url.Parse(h.cfg.OutboundURL)
	if err != nil {
		return worker.Permanent(fmt.Errorf("cellulant sms: outbound_url: %w", err))
	}
	public := u.Redacted() // for errors and logs: without the credentials
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return worker.Permanent(fmt.Errorf("cellulant sms: build request to %s: %w", public, errors.New("invalid request")))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// The error text would carry the URL with the password: keep
		// only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return worker.Temporary(fmt.Errorf("cellulant sms: send to %s: %w", public, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	content := strings.TrimSpace(string(body))
	// One message per request: "1" is its acknowledgement.
	if content == "1" {
		return s.PublishAck(ctx, m.MessageID, m.MessageID)
	}
	reason, ok := KnownErrors[content]
	if !ok {
		reason = "Unknown response code: " + content
	}
	s.Log.Warn("cellulant refused a message", "message_id", m.MessageID, "status", resp.StatusCode, "reason", reason)
	return s.PublishNack(ctx, m.MessageID, reason)
}
