package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Identity is one user of the old HTTP APIs: a password, and optionally
// the transport_name its messages default to.
type Identity struct {
	Password         string `yaml:"password"`
	DefaultTransport string `yaml:"default_transport"`
}

// UnmarshalYAML accepts Vumi's "user: password" form and the mapping
// form {password, default_transport}.
func (i *Identity) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		i.Password = n.Value
		return nil
	}
	type plain Identity
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*i = Identity(p)
	return nil
}

// OldConfig configures OldSimpleHttpTransport and OldTemplateHttpTransport.
type OldConfig struct {
	httprpc.Config `yaml:",inline"`
	// Identities that may send, by user name; none means no auth.
	Identities map[string]Identity `yaml:"identities"`
}

// Validate implements topology.WorkerConfig.
func (c *OldConfig) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	for user, id := range c.Identities {
		if id.Password == "" {
			return fmt.Errorf("key identities.%s: a password is required", user)
		}
	}
	return nil
}

// OldKinds returns OldSimpleHttpTransport and OldTemplateHttpTransport,
// the API of Vumi's Django-era SMS loader.
func OldKinds() []*topology.Kind {
	build := func(template bool) func(*topology.Deps, *topology.WorkerSpec) (topology.Worker, error) {
		return func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*OldConfig)
			return httprpc.Worker(deps, spec, &cfg.Config, func() httprpc.Handler { return &oldAPI{cfg: cfg, template: template} },
				httprpc.Options{ContentType: "application/json; charset=utf-8"}), nil
		}
	}
	return []*topology.Kind{
		{
			Name: "old_simple_http", Aliases: []string{"vumi.transports.api.OldSimpleHttpTransport", "vumi.transports.api.oldapi.OldSimpleHttpTransport"},
			Role: topology.RoleTransport, Summary: "Vumi's old simple HTTP API: message to one or more to_msisdn",
			NewConfig: func() topology.WorkerConfig { return &OldConfig{} }, Build: build(false),
		},
		{
			Name: "old_template_http", Aliases: []string{"vumi.transports.api.OldTemplateHttpTransport", "vumi.transports.api.oldapi.OldTemplateHttpTransport"},
			Role: topology.RoleTransport, Summary: "Vumi's old template HTTP API: a {{ template }} filled per to_msisdn",
			NewConfig: func() topology.WorkerConfig { return &OldConfig{} }, Build: build(true),
		},
	}
}

type oldAPI struct {
	cfg      *OldConfig
	template bool
}

func (o *oldAPI) authorize(r *http.Request) (string, bool) {
	user, pass, _ := r.BasicAuth()
	if len(o.cfg.Identities) == 0 {
		return user, true
	}
	id, ok := o.cfg.Identities[user]
	if !ok {
		// Compare anyway so that unknown users take as long as known ones.
		subtle.ConstantTimeCompare([]byte(pass), []byte(pass+"x"))
		return user, false
	}
	return user, subtle.ConstantTimeCompare([]byte(pass), []byte(id.Password)) == 1
}

var (
	templateOpen  = regexp.MustCompile(`\{\{ *`)
	templateClose = regexp.MustCompile(` *\}\}`)
	templateVar   = regexp.MustCompile(`\{\{ *([A-Za-z0-9_]+) *\}\}`)
)

// HandleRequest implements httprpc.Handler.
func (o *oldAPI) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	user, ok := o.authorize(r.HTTP)
	if !ok {
		r.Finish(s, []byte("Not Authorized"), http.StatusUnauthorized)
		return
	}
	args := r.Args()
	to := args["to_msisdn"]
	from := args.Get("from_msisdn")
	if len(to) == 0 {
		r.Finish(s, httprpc.FieldErrors{"missing_parameter": {"to_msisdn"}}.JSON(), http.StatusBadRequest)
		return
	}
	field, transportType := "message", "old_simple_http"
	if o.template {
		field, transportType = "template", "old_template_http"
	}
	text, present := args[field]
	if !present || len(text) == 0 {
		r.Finish(s, httprpc.FieldErrors{"missing_parameter": {field}}.JSON(), http.StatusBadRequest)
		return
	}
	type sent struct {
		Message    string `json:"message"`
		ToMSISDN   string `json:"to_msisdn"`
		FromMSISDN string `json:"from_msisdn"`
		ID         string `json:"id"`
	}
	// Build every message before publishing any, so that a bad request
	// publishes nothing.
	contents := make([]string, len(to))
	for i := range to {
		contents[i] = text[0]
		if o.template {
			var err error
			if contents[i], err = fillTemplate(text[0], args, i); err != nil {
				r.Finish(s, httprpc.FieldErrors{"invalid_parameter": {err.Error()}}.JSON(), http.StatusBadRequest)
				return
			}
		}
	}
	out := []sent{}
	for i, addr := range to {
		content := contents[i]
		m := schemas.NewUserMessage()
		m.Content, m.ToAddr, m.FromAddr = schemas.String(content), schemas.String(addr), schemas.String(from)
		m.Provider, m.TransportType = schemas.String("vumi"), schemas.String(transportType)
		m.TransportMetadata = schemas.Metadata{"http_user": user}
		if id := o.cfg.Identities[user]; id.DefaultTransport != "" {
			m.HelperMetadata = schemas.Metadata{"default_transport": id.DefaultTransport}
		}
		if err := s.PublishInbound(ctx, m); err != nil {
			s.Log.Error("inbound message not published", "error", err)
			r.Finish(s, []byte(`{"error": "message not accepted, try again"}`), http.StatusServiceUnavailable)
			return
		}
		out = append(out, sent{Message: content, ToMSISDN: addr, FromMSISDN: from, ID: m.MessageID})
	}
	body, _ := json.Marshal(out)
	r.Finish(s, body, http.StatusOK)
}

// fillTemplate expands {{ name }} with the i-th value of template_name.
func fillTemplate(tpl string, args map[string][]string, i int) (string, error) {
	var missing []string
	outText := templateVar.ReplaceAllStringFunc(tpl, func(m string) string {
		name := "template_" + templateVar.FindStringSubmatch(m)[1]
		vals := args[name]
		if i >= len(vals) {
			missing = append(missing, name)
			return m
		}
		return vals[i]
	})
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("%s has no value for recipient %d", strings.Join(missing, ", "), i+1)
	}
	if templateOpen.MatchString(outText) && templateClose.MatchString(outText) {
		return "", fmt.Errorf("template has an unclosed or invalid {{ }} placeholder")
	}
	return outText, nil
}

// HandleReply implements httprpc.ReplyHandler: the old simple API acks
// outbound messages as Vumi did; the template API sends nothing out and
// nacks them.
func (o *oldAPI) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	if o.template {
		return s.PublishNack(ctx, m.MessageID, "OldTemplateHttpTransport does not send outbound messages")
	}
	return s.PublishAck(ctx, m.MessageID, m.MessageID)
}
