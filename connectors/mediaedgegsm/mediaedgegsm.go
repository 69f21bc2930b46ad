// Package mediaedgegsm is Vumi's MediaEdgeGSMTransport: SMS with
// MediaEdgeGSM (Ghana) over HTTP. MediaEdgeGSM calls web_path with USN
// and PWD (the account's credentials), PhoneNumber, ServiceNumber,
// Operator and SMSBODY, and waits for the application's reply, answered
// as the response body. Messages that are not replies are sent as GET
// requests to outbound_url, acked on HTTP 200 and nacked otherwise.
package mediaedgegsm

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/httpsend"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// OperatorMappings maps MSISDN prefixes to operator names, or to nested
// mappings of longer prefixes (Vumi's get_operator_name).
type OperatorMappings map[string]OperatorMapping

// OperatorMapping is an operator name or a nested mapping.
type OperatorMapping struct {
	Name   string
	Nested OperatorMappings
}

// UnmarshalYAML implements yaml.Unmarshaler: a scalar is a name, a
// mapping nests (prefixes may be written as numbers).
func (m *OperatorMapping) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		m.Name = n.Value
		return nil
	case yaml.MappingNode:
		return n.Decode(&m.Nested)
	}
	return fmt.Errorf("line %d: an operator mapping is a name or a mapping of prefixes", n.Line)
}

// Operator is the operator of msisdn: the longest matching prefix's name,
// searched in nested mappings; "UNKNOWN" when none matches.
func (ms OperatorMappings) Operator(msisdn string) string {
	prefixes := make([]string, 0, len(ms))
	for p := range ms {
		prefixes = append(prefixes, p)
	}
	sort.Slice(prefixes, func(i, j int) bool {
		return len(prefixes[i]) > len(prefixes[j]) || (len(prefixes[i]) == len(prefixes[j]) && prefixes[i] < prefixes[j])
	})
	for _, p := range prefixes {
		if strings.HasPrefix(msisdn, p) {
			if m := ms[p]; m.Nested != nil {
				return m.Nested.Operator(msisdn)
			}
			return ms[p].Name
		}
	}
	return "UNKNOWN"
}

// Config is the MediaEdgeGSMTransport's config.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// Username and Password, when set, must be the USN and PWD of every
	// request.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// OutboundURL is where messages that are not replies are sent. Without
	// it they are nacked.
	OutboundURL string `yaml:"outbound_url"`
	// OutboundUsername and OutboundPassword are the USN and PWD of those
	// requests; default "".
	OutboundUsername string `yaml:"outbound_username"`
	OutboundPassword string `yaml:"outbound_password"`
	// OperatorMappings names the Operator of outbound requests by the
	// number's prefix.
	OperatorMappings OperatorMappings `yaml:"operator_mappings"`
	// Timeout is outbound_timeout: how long, in seconds, one outbound
	// request may take; default 30.
	httpsend.Timeout `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	var errs []error
	if c.OutboundURL != "" {
		if err := httpsend.CheckHostURL("outbound_url", c.OutboundURL); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.ValidateTimeout(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Kind is the MediaEdgeGSMTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "mediaedgegsm", Aliases: []string{"vumi.transports.mediaedgegsm.MediaEdgeGSMTransport", "vumi.transports.mediaedgegsm.mediaedgegsm.MediaEdgeGSMTransport"},
		Role: topology.RoleTransport, Summary: "MediaEdgeGSM (Ghana) SMS over HTTP (replies in the response, others as GET requests)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			client := cfg.HTTPClient()
			return httprpc.Worker(deps, spec, &cfg.Config, func() httprpc.Handler { return &handler{cfg: cfg, client: client} },
				httprpc.Options{ContentType: "text/plain; charset=utf-8"}), nil
		},
	}
}

type handler struct {
	cfg    *Config
	client *http.Client
}

var expected = []string{"USN", "PWD", "PhoneNumber", "ServiceNumber", "Operator", "SMSBODY"}

// Request is one inbound message's parameters.
type Request struct {
	USN, PWD, PhoneNumber, ServiceNumber, Operator, SMSBody string
}

// ParseRequest reads an inbound message and checks its credentials
// (when username or password is set). errs is Vumi's 400 body.
func ParseRequest(form url.Values, strict bool, username, password string) (Request, map[string]any) {
	v, ferrs := httprpc.Fields(form, expected, nil, strict)
	errs := ferrs.Map()
	if username != "" && subtle.ConstantTimeCompare([]byte(v["USN"]), []byte(username)) != 1 {
		errs["credentials"] = "invalid"
	}
	if password != "" && subtle.ConstantTimeCompare([]byte(v["PWD"]), []byte(password)) != 1 {
		errs["credentials"] = "invalid"
	}
	if len(errs) > 0 {
		return Request{}, errs
	}
	return Request{USN: v["USN"], PWD: v["PWD"], PhoneNumber: v["PhoneNumber"], ServiceNumber: v["ServiceNumber"], Operator: v["Operator"], SMSBody: v["SMSBODY"]}, nil
}

// HandleRequest implements httprpc.Handler: an inbound message, waiting
// for its reply.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	req, errs := ParseRequest(r.Args(), s.Config().ValidationMode == httprpc.Strict, h.cfg.Username, h.cfg.Password)
	if errs != nil {
		body, _ := json.Marshal(errs)
		s.Log.Warn("unhappy incoming message", "errors", string(body))
		r.Finish(s, body, http.StatusBadRequest)
		return
	}
	m := &schemas.UserMessage{
		Content: schemas.String(req.SMSBody), ToAddr: schemas.String(req.ServiceNumber), FromAddr: schemas.String(req.PhoneNumber),
		Provider: schemas.String(req.Operator), TransportType: schemas.String(schemas.TransportSMS),
	}
	if err := s.Publish(ctx, r, m); err != nil {
		s.Log.Error("inbound message not published", "request_id", r.ID, "error", err)
		r.Finish(s, []byte("Service unavailable, please try again"), http.StatusServiceUnavailable)
	}
}

// HandleReply implements httprpc.ReplyHandler: a reply (in_reply_to and
// content set) answers its request; anything else goes to outbound_url.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	if m.InReplyTo != nil && *m.InReplyTo != "" && m.Content != nil {
		return s.DefaultReply(ctx, m)
	}
	if h.cfg.OutboundURL == "" {
		return s.PublishNack(ctx, m.MessageID, "No outbound_url configured for messages that are not replies")
	}
	msisdn := strings.TrimLeft(m.To(), "+")
	q := url.Values{"USN": {h.cfg.OutboundUsername}, "PWD": {h.cfg.OutboundPassword}, "SmsID": {m.MessageID},
		"PhoneNumber": {msisdn}, "Operator": {h.cfg.OperatorMappings.Operator(msisdn)}, "SmsBody": {m.Text()}}
	u, err := url.Parse(h.cfg.OutboundURL)
	if err != nil {
		return worker.Permanent(fmt.Errorf("mediaedgegsm: outbound_url: %w", err))
	}
	public := u.Redacted()
	if u.RawQuery != "" {
		u.RawQuery += "&" + q.Encode()
	} else {
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return worker.Permanent(fmt.Errorf("mediaedgegsm: build request to %s: invalid request", public))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// The error text would carry the URL with the password: keep only
		// its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return worker.Temporary(fmt.Errorf("mediaedgegsm: send to %s: %w", public, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	s.Log.Info("mediaedgegsm response", "message_id", m.MessageID, "status", resp.StatusCode, "body", string(body))
	if resp.StatusCode == http.StatusOK {
		return s.PublishAck(ctx, m.MessageID, m.MessageID)
	}
	return s.PublishNack(ctx, m.MessageID, fmt.Sprintf("Unexpected response code: %d", resp.StatusCode))
}
