// Package httpapi is Vumi's HttpApiTransport: a native HTTP API for getting
// messages in. With reply_expected the request waits for the application's
// reply and answers with its content; otherwise it answers at once with
// the new message's id.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// DefaultAllowedFields are the request parameters accepted by default.
var DefaultAllowedFields = []string{"content", "to_addr", "from_addr", "group", "session_event"}

// settable are the message fields a request (or field_defaults) may set.
var settable = map[string]bool{"content": true, "to_addr": true, "from_addr": true, "group": true, "session_event": true,
	"to_addr_type": true, "from_addr_type": true, "provider": true, "in_reply_to": true}

// Config is Vumi's HttpApiConfig.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// ReplyExpected makes requests wait for the application's reply.
	ReplyExpected bool `yaml:"reply_expected"`
	// AllowedFields a request may contain; default content, to_addr,
	// from_addr, group, session_event.
	AllowedFields []string `yaml:"allowed_fields"`
	// FieldDefaults for fields the client does not send.
	FieldDefaults map[string]string `yaml:"field_defaults"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	if c.AllowedFields == nil {
		c.AllowedFields = append([]string(nil), DefaultAllowedFields...)
	}
	var errs []error
	for _, f := range c.AllowedFields {
		if !settable[f] {
			errs = append(errs, fmt.Errorf("key allowed_fields: %q is not a message field a request may set", f))
		}
	}
	for f := range c.FieldDefaults {
		if !settable[f] {
			errs = append(errs, fmt.Errorf("key field_defaults.%s: not a message field a request may set", f))
		}
	}
	if v, ok := c.FieldDefaults["session_event"]; ok && !schemas.SessionEvent(v).Valid() {
		errs = append(errs, fmt.Errorf("key field_defaults.session_event: %q is not new, resume or close", v))
	}
	return errors.Join(errs...)
}

// Kind is the HttpApiTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "http_api", Aliases: []string{"vumi.transports.api.HttpApiTransport", "vumi.transports.api.api.HttpApiTransport"},
		Role: topology.RoleTransport, Summary: "native HTTP API: a request becomes an inbound message (optionally waiting for the reply)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return httprpc.Worker(deps, spec, &cfg.Config, func() httprpc.Handler { return &api{cfg: cfg} }, httprpc.Options{ContentType: "text/plain"}), nil
		},
	}
}

type api struct{ cfg *Config }

// HandleRequest implements httprpc.Handler (Vumi's handle_raw_inbound_message).
func (a *api) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	values := map[string]string{}
	for k, v := range a.cfg.FieldDefaults {
		values[k] = v
	}
	allowed := map[string]bool{}
	for _, f := range a.cfg.AllowedFields {
		allowed[f] = true
	}
	errs := httprpc.FieldErrors{}
	for field, vals := range r.Args() {
		if !allowed[field] {
			errs.Add("unexpected_parameter", field)
			continue
		}
		if len(vals) > 0 {
			values[field] = vals[0]
		}
	}
	for _, f := range []string{"content", "to_addr", "from_addr"} {
		if _, ok := values[f]; !ok && allowed[f] {
			errs.Add("missing_parameter", f)
		}
	}
	if se, ok := values["session_event"]; ok && !schemas.SessionEvent(se).Valid() {
		errs.Add("invalid_parameter", "session_event")
	}
	if len(errs) > 0 {
		r.Finish(s, errs.JSON(), http.StatusBadRequest)
		return
	}
	m := &schemas.UserMessage{TransportType: schemas.String(schemas.TransportHTTPAPI)}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := m.SetString(k, values[k]); err != nil {
			r.Finish(s, httprpc.FieldErrors{"invalid_parameter": {k}}.JSON(), http.StatusBadRequest)
			return
		}
	}
	if err := s.Publish(ctx, r, m); err != nil {
		s.Log.Error("inbound message not published", "request_id", r.ID, "error", err)
		r.Finish(s, []byte(`{"error": "message not accepted, try again"}`), http.StatusServiceUnavailable)
		return
	}
	if !a.cfg.ReplyExpected {
		body, _ := json.Marshal(map[string]string{"message_id": r.ID})
		r.Finish(s, body, http.StatusOK)
	}
}

// HandleReply implements httprpc.ReplyHandler: replies are only expected
// with reply_expected; otherwise they are nacked, as no request waits.
func (a *api) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	if !a.cfg.ReplyExpected {
		s.Log.Info("dropping reply: reply_expected is false", "message_id", m.MessageID)
		return s.PublishNack(ctx, m.MessageID, "HttpApiTransport does not expect replies (reply_expected is false)")
	}
	return s.DefaultReply(ctx, m)
}
