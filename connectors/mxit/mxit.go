// Package mxit is Vumi's MxitTransport: Mxit's Mobi Portal calls the
// transport's web path with the user's details in X-Mxit-* headers and
// waits for an HTML page (the application's reply, its numbered menu items
// as links); messages that are not replies go out through Mxit's
// Messaging API, authorised with an OAuth2 client-credentials token.
package mxit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's MxitTransportConfig.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// ClientID and ClientSecret are the OAuth2 client credentials.
	// Required.
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// Timeout of Messaging API calls in seconds; default 30.
	Timeout int `yaml:"timeout"`
	// RedisManager is accepted for compatibility with Vumi configs and
	// ignored (Vumi required it to cache the access token; each instance
	// keeps its own token here).
	RedisManager map[string]any `yaml:"redis_manager"`
	// APISendURL is the Messaging API's send URL; default
	// https://api.mxit.com/message/send/.
	APISendURL string `yaml:"api_send_url"`
	// APIAuthURL is the authentication API; tokens come from
	// <api_auth_url>/token. Default https://auth.mxit.com.
	APIAuthURL string `yaml:"api_auth_url"`
	// APIAuthScopes are the scopes asked for; default [message/send].
	APIAuthScopes []string `yaml:"api_auth_scopes"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	if c.ClientID == "" {
		return errors.New("key client_id: is required")
	}
	if c.ClientSecret == "" {
		return errors.New("key client_secret: is required")
	}
	if c.Timeout == 0 {
		c.Timeout = 30
	}
	if c.Timeout < 1 {
		return fmt.Errorf("key timeout: must be at least 1 second, got %d", c.Timeout)
	}
	if c.APISendURL == "" {
		c.APISendURL = "https://api.mxit.com/message/send/"
	}
	if c.APIAuthURL == "" {
		c.APIAuthURL = "https://auth.mxit.com"
	}
	for _, kv := range [][2]string{{"api_send_url", c.APISendURL}, {"api_auth_url", c.APIAuthURL}} {
		if u, err := url.Parse(kv[1]); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("key %s: %q is not an http(s) URL", kv[0], kv[1])
		}
	}
	if c.APIAuthScopes == nil {
		c.APIAuthScopes = []string{"message/send"}
	}
	return nil
}

// Kind is the Mxit transport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "mxit", Aliases: []string{"vumi.transports.mxit.MxitTransport", "vumi.transports.mxit.mxit.MxitTransport"},
		Role: topology.RoleTransport, Summary: "Mxit: Mobi Portal requests answered with HTML menus; sends through the Messaging API (OAuth2)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return httprpc.Worker(deps, spec, &cfg.Config, func() httprpc.Handler {
				return &handler{cfg: cfg, client: &http.Client{Timeout: time.Duration(cfg.Timeout) * time.Second}}
			}, httprpc.Options{ContentType: "text/html; charset=utf-8"}), nil
		},
	}
}

// accessTokenAutoDecay: a token is used for this fraction of its life.
const accessTokenAutoDecay = 0.95

type handler struct {
	cfg    *Config
	client *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

var locationFields = []string{"country_code", "country_name", "subdivision_code", "subdivision_name", "city_code", "city", "network_operator_id", "client_features_bitset", "cell_id"}
var profileFields = []string{"language_code", "country_code", "date_of_birth", "gender", "tariff_plan"}

// zip pairs names with the comma-separated values (the shorter wins).
func zip(names []string, value string) map[string]any {
	vals := strings.Split(value, ",")
	out := map[string]any{}
	for i := 0; i < len(names) && i < len(vals); i++ {
		out[names[i]] = vals[i]
	}
	return out
}

// requestData is Vumi's get_request_data: the Mxit headers, some parsed.
func requestData(h http.Header) map[string]any {
	data := map[string]any{}
	for _, name := range []string{"X-Device-User-Agent", "X-Mxit-Contact", "X-Mxit-USERID-R", "X-Mxit-Nick", "X-Mxit-Location", "X-Mxit-Profile", "X-Mxit-User-Input"} {
		vs := h.Values(name)
		if len(vs) == 0 {
			continue
		}
		v := vs[0]
		switch name {
		case "X-Mxit-Location":
			data[name] = zip(locationFields, v)
		case "X-Mxit-Profile":
			data[name] = zip(profileFields, v)
		case "X-Mxit-User-Input":
			data[name] = html.UnescapeString(v)
		default:
			data[name] = v
		}
	}
	return data
}

// requestContent is Vumi's get_request_content: the X-Mxit-User-Input
// header (URL-decoded), else the "input" parameter, else none.
func requestContent(r *http.Request) *string {
	if v := r.Header.Get("X-Mxit-User-Input"); v != "" {
		if s, err := url.QueryUnescape(v); err == nil {
			return &s
		}
		return &v
	}
	if vs, ok := r.Form["input"]; ok && len(vs) > 0 {
		return &vs[0]
	}
	return nil
}

// HandleRequest implements httprpc.Handler (Vumi's
// handle_raw_inbound_message).
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	if r.HTTP.Header.Get("X-Mxit-Contact") == "" {
		r.Finish(s, []byte("Bad Request"), http.StatusBadRequest)
		return
	}
	data := requestData(r.HTTP.Header)
	m := &schemas.UserMessage{
		Content:        requestContent(r.HTTP),
		ToAddr:         schemas.String(r.HTTP.Header.Get("X-Mxit-Contact")),
		FromAddr:       schemas.String(r.HTTP.Header.Get("X-Mxit-USERID-R")),
		Provider:       schemas.String("mxit"),
		TransportType:  schemas.String("mxit"),
		HelperMetadata: schemas.Metadata{"mxit_info": data},
	}
	if err := s.Publish(ctx, r, m); err != nil {
		s.Log.Error("inbound message not published", "request_id", r.ID, "error", err)
		r.Finish(s, []byte("Service Unavailable"), http.StatusServiceUnavailable)
	}
}

// HandleReply implements httprpc.ReplyHandler: a reply answers its request
// with the rendered page; anything else is sent through the Messaging API.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	if m.InReplyTo == nil {
		return h.send(ctx, s, m)
	}
	if *m.InReplyTo == "" {
		return s.PublishNack(ctx, m.MessageID, "Missing fields: in_reply_to")
	}
	return s.Deliver(ctx, m, RenderResponse(m.Text()), http.StatusOK, nil)
}

var (
	headerRe = regexp.MustCompile(`^(.*)[\r\n]{1,2}\d?`)
	itemRe   = regexp.MustCompile(`(?m)^(\d+)\. (.+?)\r?$`)
)

// ParseResponse is Vumi's ResponseParser: the first line is the header
// when more lines follow, and lines "<n>. <text>" are menu items.
func ParseResponse(content string) (header string, items [][2]string) {
	if m := headerRe.FindStringSubmatch(content); m != nil {
		header = m[1]
		for _, it := range itemRe.FindAllStringSubmatch(content, -1) {
			items = append(items, [2]string{it[1], it[2]})
		}
		return header, items
	}
	return content, nil
}

// RenderResponse is Vumi's response.xml template: a page that clears the
// screen, shows the header and links each menu item to ?input=<n>.
func RenderResponse(content string) []byte {
	header, items := ParseResponse(content)
	var b bytes.Buffer
	b.WriteString("<html>\n    <head>\n        <meta name=\"mxit\" content=\"clearscreen\" />\n    </head>\n    <body>\n        <div>\n            <p>")
	b.WriteString(html.EscapeString(header))
	b.WriteString("</p>\n        </div>\n        ")
	if len(items) > 0 {
		b.WriteString("<div>\n            <ul>\n                ")
		for _, it := range items {
			fmt.Fprintf(&b, "<li>\n                    <a href=\"?input=%s\">\n                        %s. %s\n                    </a>\n                </li>", html.EscapeString(it[0]), html.EscapeString(it[0]), html.EscapeString(it[1]))
		}
		b.WriteString("\n            </ul>\n        </div>")
	}
	b.WriteString("\n    </body>\n</html>")
	return b.Bytes()
}

// errAPI is an error answer from a Mxit API (Vumi's
// MxitTransportException).
type errAPI struct{ msg string }

func (e *errAPI) Error() string { return e.msg }

// accessToken returns a cached token, or asks for a new one.
func (h *handler) accessToken(ctx context.Context) (string, error) {
	h.mu.Lock()
	if h.token != "" && time.Now().Before(h.expires) {
		t := h.token
		h.mu.Unlock()
		return t, nil
	}
	h.mu.Unlock()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {strings.Join(h.cfg.APIAuthScopes, " ")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(h.cfg.APIAuthURL, "/")+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(h.cfg.ClientID, h.cfg.ClientSecret)
	resp, err := h.client.Do(req)
	if err != nil {
		return "", worker.Temporary(fmt.Errorf("access token: %w", err))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return "", worker.Temporary(fmt.Errorf("access token: %w", err))
	}
	var tok struct {
		AccessToken      string          `json:"access_token"`
		ExpiresIn        json.Number     `json:"expires_in"`
		Error            *string         `json:"error"`
		ErrorDescription json.RawMessage `json:"error_description"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", worker.Temporary(fmt.Errorf("access token: HTTP %d with an unreadable body", resp.StatusCode))
	}
	if tok.Error != nil {
		var desc string
		_ = json.Unmarshal(tok.ErrorDescription, &desc)
		return "", &errAPI{fmt.Sprintf("%s: %s.", *tok.Error, desc)}
	}
	secs, err := tok.ExpiresIn.Int64()
	if tok.AccessToken == "" || err != nil {
		return "", worker.Temporary(fmt.Errorf("access token: HTTP %d without access_token and expires_in", resp.StatusCode))
	}
	h.mu.Lock()
	h.token = tok.AccessToken
	h.expires = time.Now().Add(time.Duration(float64(secs)*accessTokenAutoDecay) * time.Second)
	h.mu.Unlock()
	return tok.AccessToken, nil
}

func (h *handler) dropToken(t string) {
	h.mu.Lock()
	if h.token == t {
		h.token = ""
	}
	h.mu.Unlock()
}

// send is Vumi's handle_outbound_send: POST the message to the Messaging
// API with a bearer token. (Vumi published no event; here a 2xx answer
// acks, an error answer nacks.)
func (h *handler) send(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	body, _ := json.Marshal(map[string]any{
		"Body": m.Text(), "ContainsMarkup": "true", "From": m.FromAddr, "To": m.ToAddr, "Spool": "true",
	})
	for attempt := 0; ; attempt++ {
		token, err := h.accessToken(ctx)
		if err != nil {
			var api *errAPI
			if errors.As(err, &api) {
				s.Log.Error("Mxit refused the access token request", "error", err)
				return s.PublishNack(ctx, m.MessageID, "Mxit authentication failed: "+err.Error())
			}
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.APISendURL, bytes.NewReader(body))
		if err != nil {
			return worker.Permanent(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := h.client.Do(req)
		if err != nil {
			return worker.Temporary(fmt.Errorf("message send: %w", err))
		}
		rb, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2:
			return s.PublishAck(ctx, m.MessageID, m.MessageID)
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0:
			h.dropToken(token) // revoked or expired early: one more try with a new one
			continue
		case resp.StatusCode >= 500:
			return worker.Temporary(fmt.Errorf("message send: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(rb))))
		default:
			return s.PublishNack(ctx, m.MessageID, fmt.Sprintf("Mxit message send failed: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(rb))))
		}
	}
}
