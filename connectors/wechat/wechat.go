// Package wechat is Vumi's WeChatTransport: WeChat posts a user's text
// messages and menu events as signed XML to the transport, which answers
// a text message with the application's reply inside the same HTTP
// response (a text or news message), or, when that request is gone, sends
// the reply through WeChat's customer service API with an access token.
// Per-user address masks (which menu the user is in), seen message ids and
// cached replies live in tables shared by every instance.
package wechat

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/internal/endpoint"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's WeChatConfig. The HTTP-RPC options (request_timeout
// and the others) apply too; the port comes from twisted_endpoint.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// APIURL is WeChat's API; default https://api.wechat.com/cgi-bin/.
	APIURL string `yaml:"api_url"`
	// AuthToken signs WeChat's requests. Required.
	AuthToken string `yaml:"auth_token"`
	// TwistedEndpoint to listen on, e.g. "tcp:8080". Required (or the
	// deprecated host and port).
	TwistedEndpoint string `yaml:"twisted_endpoint"`
	Host            string `yaml:"host"`
	Port            int    `yaml:"port"`
	// RedisManager is accepted for compatibility with Vumi configs and
	// ignored: the state lives in tables.
	RedisManager map[string]any `yaml:"redis_manager"`
	// WechatAppID and WechatSecret get access tokens. Required.
	WechatAppID  string `yaml:"wechat_appid"`
	WechatSecret string `yaml:"wechat_secret"`
	// WechatMenu is the menu structure created at start-up, if given.
	WechatMenu map[string]any `yaml:"wechat_menu"`
	// WechatMaskLifetime is how long, in seconds, a user's address mask
	// lasts; default 3600.
	WechatMaskLifetime int `yaml:"wechat_mask_lifetime"`
	// EmbedUserProfile embeds the user's profile in inbound messages.
	EmbedUserProfile bool `yaml:"embed_user_profile"`
	// EmbedUserProfileLang is the profile's language; default "en".
	EmbedUserProfileLang string `yaml:"embed_user_profile_lang"`
	// EmbedUserProfileLifetime caches profiles this many seconds; default
	// 3600.
	EmbedUserProfileLifetime int `yaml:"embed_user_profile_lifetime"`
	// DoubleDeliveryLifetime keeps message ids and replies this many
	// seconds to answer WeChat's retries; default 3600.
	DoubleDeliveryLifetime int `yaml:"double_delivery_lifetime"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.WebPath == "" {
		c.WebPath = "/api/v1/wechat/"
	}
	if c.HealthPath == "" {
		c.HealthPath = "/health/"
	}
	switch {
	case c.TwistedEndpoint != "" && (c.Host != "" || c.Port != 0):
		return errors.New("key twisted_endpoint: give either twisted_endpoint or the deprecated host and port, not both")
	case c.TwistedEndpoint != "" || c.Port != 0:
		if c.WebPort != 0 || c.WebInterface != "" {
			return errors.New("key web_port: give either twisted_endpoint (or host and port) or web_port and web_interface")
		}
		desc := c.TwistedEndpoint
		if desc == "" {
			desc = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
		}
		addr, err := endpoint.Server(desc)
		if err != nil {
			return fmt.Errorf("key twisted_endpoint: %w", err)
		}
		host, port, _ := net.SplitHostPort(addr)
		c.WebInterface = host
		c.WebPort, _ = strconv.Atoi(port)
	case c.WebPort == 0:
		return errors.New("key twisted_endpoint: is required")
	}
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"auth_token", c.AuthToken}, {"wechat_appid", c.WechatAppID}, {"wechat_secret", c.WechatSecret}} {
		if kv[1] == "" {
			return fmt.Errorf("key %s: is required", kv[0])
		}
	}
	if c.APIURL == "" {
		c.APIURL = "https://api.wechat.com/cgi-bin/"
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("key api_url: %q is not an http(s) URL", c.APIURL)
	}
	for _, p := range []struct {
		key string
		v   *int
	}{{"wechat_mask_lifetime", &c.WechatMaskLifetime}, {"embed_user_profile_lifetime", &c.EmbedUserProfileLifetime}, {"double_delivery_lifetime", &c.DoubleDeliveryLifetime}} {
		if *p.v == 0 {
			*p.v = 3600
		}
		if *p.v < 1 {
			return fmt.Errorf("key %s: must be at least 1 second, got %d", p.key, *p.v)
		}
	}
	if c.EmbedUserProfileLang == "" {
		c.EmbedUserProfileLang = "en"
	}
	return nil
}

func masksTopic(n string) string { return n + ".wechat_masks" }
func seenTopic(n string) string  { return n + ".wechat_seen" }

// IO implements topology.WorkerConfig: the HTTP-RPC topics and the two
// tables.
func (c *Config) IO(name string) topology.IO {
	io := c.Config.IO(name)
	for _, t := range []string{masksTopic(c.TransportName), seenTopic(c.TransportName)} {
		s := ussdsession.TableStream(t)
		io.Consumes = append(io.Consumes, s)
		io.Produces = append(io.Produces, s)
	}
	return io
}

// Kind is the WeChat transport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "wechat", Aliases: []string{"vumi.transports.wechat.WeChatTransport", "vumi.transports.wechat.wechat.WeChatTransport"},
		Role: topology.RoleTransport, Summary: "WeChat: signed XML callbacks answered in the response, or through the customer service API",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				h := &handler{cfg: cfg, client: &http.Client{Timeout: 30 * time.Second}, profiles: map[string]profile{}}
				s, err := httprpc.New(deps, spec, &cfg.Config, h, httprpc.Options{ContentType: "text/xml; charset=utf-8"})
				if err != nil {
					return err
				}
				h.log = s.Log
				if h.masks, err = ussdsession.OpenTable(s.Transport.Base, masksTopic(cfg.TransportName), time.Duration(cfg.WechatMaskLifetime)*time.Second); err != nil {
					s.Close()
					return err
				}
				if h.seen, err = ussdsession.OpenTable(s.Transport.Base, seenTopic(cfg.TransportName), time.Duration(cfg.DoubleDeliveryLifetime)*time.Second); err != nil {
					s.Close()
					return err
				}
				if cfg.WechatMenu != nil {
					go h.createMenu(ctx)
				}
				return ussdsession.Serve(ctx, s, h.masks, h.seen)
			}), nil
		},
	}
}

const defaultMask = "default"

type profile struct {
	data    map[string]any
	expires time.Time
}

type handler struct {
	cfg    *Config
	client *http.Client
	log    interface {
		Info(string, ...any)
		Warn(string, ...any)
		Error(string, ...any)
	}
	masks, seen *ussdsession.Store

	mu       sync.Mutex
	token    string
	expires  time.Time
	profiles map[string]profile

	smu  sync.Mutex
	last string
}

// verify checks WeChat's signature: the SHA-1 of timestamp, nonce and the
// auth token, sorted and joined.
func verify(token string, q url.Values) bool {
	sig, ts, nonce := q.Get("signature"), q.Get("timestamp"), q.Get("nonce")
	if !q.Has("signature") || !q.Has("timestamp") || !q.Has("nonce") {
		return false
	}
	parts := []string{ts, nonce, token}
	sort.Strings(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	return subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(sig)) == 1
}

func (h *handler) status(ctx context.Context, s *httprpc.Server, level schemas.StatusLevel, typ, msg string) {
	h.smu.Lock()
	key := string(level) + "/" + typ
	if h.last == key {
		h.smu.Unlock()
		return
	}
	h.last = key
	h.smu.Unlock()
	_ = s.Status(context.WithoutCancel(ctx), "inbound", level, typ, msg, nil)
}

// HandleRequest implements httprpc.Handler.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	q := r.HTTP.URL.Query()
	switch r.HTTP.Method {
	case http.MethodGet:
		// WeChat's URL check: echo echostr when signed.
		if verify(h.cfg.AuthToken, q) {
			r.Finish(s, []byte(q.Get("echostr")), http.StatusOK)
		} else {
			r.Finish(s, nil, http.StatusBadRequest)
		}
		return
	case http.MethodPost:
	default:
		r.Finish(s, nil, http.StatusMethodNotAllowed)
		return
	}
	if !verify(h.cfg.AuthToken, q) {
		h.status(ctx, s, schemas.StatusDown, "bad_request", "Bad request received")
		r.Finish(s, []byte("Bad request for incoming message"), http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.HTTP.Body)
	if err != nil {
		r.Finish(s, []byte("cannot read the body"), http.StatusBadRequest)
		return
	}
	in, err := ParseIncoming(body)
	if err != nil {
		h.status(ctx, s, schemas.StatusDown, "bad_request", "Bad request received")
		f := s.FailureFor(nil, nil, "", worker.Permanent(err))
		f.Raw = body
		_ = s.Base.SendFailure(context.WithoutCancel(ctx), h.cfg.TransportName, f)
		r.Finish(s, []byte(err.Error()), http.StatusBadRequest)
		return
	}
	h.status(ctx, s, schemas.StatusOK, "good_request", "Good request received")
	if in.MsgType == "text" {
		h.text(ctx, s, r, in)
	} else {
		h.event(ctx, s, r, in)
	}
}

func unavailable(s *httprpc.Server, r *httprpc.Request, what string, err error) {
	s.Log.Error(what, "request_id", r.ID, "error", err)
	r.Finish(s, []byte("try again"), http.StatusServiceUnavailable)
}

func timestamp(createTime string) time.Time {
	n, _ := strconv.ParseInt(createTime, 10, 64)
	return time.Unix(n, 0).UTC()
}

// mask is the user's address mask (the menu they are in), or "default".
func (h *handler) mask(user string) (string, error) {
	m, err := h.masks.Get(user)
	if err != nil {
		return "", err
	}
	if m == nil || m["mask"] == "" {
		return defaultMask, nil
	}
	return m["mask"], nil
}

// text is Vumi's handle_inbound_text_message: a message WeChat already
// delivered is answered with the reply given then (or nothing); a new one
// is published and its request waits for the reply.
func (h *handler) text(ctx context.Context, s *httprpc.Server, r *httprpc.Request, in *Incoming) {
	if in.MsgID != "" {
		seen, err := h.seen.Get(in.MsgID)
		if err != nil {
			unavailable(s, r, "double delivery check failed", err)
			return
		}
		if seen != nil {
			h.log.Info("WeChat double delivery of message", "msg_id", in.MsgID)
			r.Finish(s, []byte(seen["reply"]), http.StatusOK)
			return
		}
		if err := h.seen.Put(ctx, in.MsgID, ussdsession.Session{"seen": "1"}); err != nil {
			unavailable(s, r, "message id not recorded", err)
			return
		}
	}
	var up map[string]any
	if h.cfg.EmbedUserProfile {
		var err error
		if up, err = h.userProfile(ctx, in.FromUserName); err != nil {
			h.log.Warn("user profile not fetched", "open_id", in.FromUserName, "error", err)
		}
	}
	if up == nil {
		up = map[string]any{}
	}
	mask, err := h.mask(in.FromUserName)
	if err != nil {
		unavailable(s, r, "address mask lookup failed", err)
		return
	}
	m := &schemas.UserMessage{
		Content: schemas.String(in.Content), FromAddr: schemas.String(in.FromUserName),
		ToAddr: schemas.String(in.ToUserName + "@" + mask), Timestamp: timestamp(in.CreateTime),
		TransportType: schemas.String("wechat"),
		TransportMetadata: schemas.Metadata{"wechat": map[string]any{
			"FromUserName": in.FromUserName, "ToUserName": in.ToUserName, "MsgType": "text",
			"MsgId": in.MsgID, "UserProfile": up,
		}},
	}
	if err := s.Publish(ctx, r, m); err != nil {
		unavailable(s, r, "inbound message not published", err)
	}
}

// event is Vumi's handle_inbound_event_message: view and unsubscribe
// clear the user's mask; other events set it from EventKey and are
// published (subscribe and click start a session). The request is
// answered at once; replies go through the customer service API.
func (h *handler) event(ctx context.Context, s *httprpc.Server, r *httprpc.Request, in *Incoming) {
	ev := strings.ToLower(in.Event)
	if ev == "view" || ev == "unsubscribe" {
		h.log.Info("WeChat user event", "user", in.FromUserName, "event", in.Event, "event_key", in.EventKey)
		if err := h.masks.Delete(ctx, in.FromUserName); err != nil {
			h.log.Warn("address mask not cleared", "error", err)
		}
		r.Finish(s, nil, http.StatusOK)
		return
	}
	mask := in.EventKey
	if mask != "" {
		if err := h.masks.Put(ctx, in.FromUserName, ussdsession.Session{"mask": mask}); err != nil {
			unavailable(s, r, "address mask not stored", err)
			return
		}
	} else {
		var err error
		if mask, err = h.mask(in.FromUserName); err != nil {
			unavailable(s, r, "address mask lookup failed", err)
			return
		}
	}
	m := &schemas.UserMessage{
		FromAddr: schemas.String(in.FromUserName), ToAddr: schemas.String(in.ToUserName + "@" + mask),
		Timestamp: timestamp(in.CreateTime), TransportType: schemas.String("wechat"),
		TransportMetadata: schemas.Metadata{"wechat": map[string]any{
			"FromUserName": in.FromUserName, "ToUserName": in.ToUserName, "MsgType": "event",
			"Event": in.Event, "EventKey": in.EventKey,
		}},
	}
	if ev == "subscribe" || ev == "click" {
		se := schemas.SessionNew
		m.SessionEvent = &se
	}
	if err := s.PublishInbound(ctx, m); err != nil {
		unavailable(s, r, "inbound message not published", err)
		return
	}
	r.Finish(s, nil, http.StatusOK)
}

// HandleReply implements httprpc.ReplyHandler (Vumi's
// handle_outbound_message): the reply goes into its waiting request when
// this instance holds it, and through the customer service API otherwise.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	meta, _ := m.TransportMetadata["wechat"].(map[string]any)
	from := m.From()
	if v, ok := meta["ToUserName"].(string); ok {
		from = v
	}
	out := BuildOutgoing(m.To(), from, strconv.FormatInt(m.Timestamp.Unix(), 10), m.Content)
	user := m.To()
	// A closing reply clears the user's mask before the user can answer
	// (Vumi cleared it after writing the response).
	h.closeMask(ctx, m, user)
	if m.InReplyTo != nil && s.Finish(*m.InReplyTo, out.XML(), http.StatusOK, nil) {
		if err := s.PublishAck(ctx, m.MessageID, m.MessageID); err != nil {
			return err
		}
		if id, _ := meta["MsgId"].(string); id != "" {
			if err := h.seen.Put(ctx, id, ussdsession.Session{"seen": "1", "reply": string(out.XML())}); err != nil {
				h.log.Warn("reply not cached for WeChat's retries", "msg_id", id, "error", err)
			}
		}
		return nil
	}
	return h.push(ctx, s, m, out)
}

func (h *handler) closeMask(ctx context.Context, m *schemas.UserMessage, user string) {
	if m.Session() == schemas.SessionClose {
		if err := h.masks.Delete(ctx, user); err != nil {
			h.log.Warn("address mask not cleared", "error", err)
		}
	}
}

// errAPI is an error answer from WeChat's API (Vumi's
// WeChatApiException).
type errAPI struct{ msg string }

func (e *errAPI) Error() string { return e.msg }

func (h *handler) url(path string, params url.Values) string {
	return h.cfg.APIURL + path + "?" + params.Encode()
}

// push sends a message through the customer service API.
func (h *handler) push(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage, out *Outgoing) error {
	token, err := h.accessToken(ctx)
	if err != nil {
		var api *errAPI
		if errors.As(err, &api) {
			return s.PublishNack(ctx, m.MessageID, err.Error())
		}
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url("message/custom/send", url.Values{"access_token": {token}}), bytes.NewReader(out.JSON()))
	if err != nil {
		return worker.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return worker.Temporary(fmt.Errorf("customer service API: %w", err))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return s.PublishNack(ctx, m.MessageID, fmt.Sprintf("Received status code: %d", resp.StatusCode))
	}
	var res struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if json.Unmarshal(body, &res) == nil && res.ErrCode != nil && *res.ErrCode != 0 {
		if *res.ErrCode == 40001 || *res.ErrCode == 42001 {
			h.dropToken(token)
		}
		return s.PublishNack(ctx, m.MessageID, fmt.Sprintf("Received errcode: %d, errmsg: %s", *res.ErrCode, res.ErrMsg))
	}
	return s.PublishAck(ctx, m.MessageID, m.MessageID)
}

func (h *handler) dropToken(t string) {
	h.mu.Lock()
	if h.token == t {
		h.token = ""
	}
	h.mu.Unlock()
}

// accessToken returns a cached token (kept for 90% of its life, as in
// Vumi) or asks for a new one.
func (h *handler) accessToken(ctx context.Context) (string, error) {
	h.mu.Lock()
	if h.token != "" && time.Now().Before(h.expires) {
		t := h.token
		h.mu.Unlock()
		return t, nil
	}
	h.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url("token", url.Values{
		"grant_type": {"client_credential"}, "appid": {h.cfg.WechatAppID}, "secret": {h.cfg.WechatSecret},
	}), nil)
	if err != nil {
		return "", err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return "", worker.Temporary(fmt.Errorf("access token: %w", err))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", &errAPI{fmt.Sprintf("Received HTTP status code %d when requesting access token.", resp.StatusCode)}
	}
	var tok struct {
		AccessToken string      `json:"access_token"`
		ExpiresIn   json.Number `json:"expires_in"`
		ErrCode     *int        `json:"errcode"`
		ErrMsg      string      `json:"errmsg"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", worker.Temporary(fmt.Errorf("access token: unreadable answer: %w", err))
	}
	if tok.ErrCode != nil {
		return "", &errAPI{fmt.Sprintf("Error when requesting access token. Errcode: %d, Errmsg: %s.", *tok.ErrCode, tok.ErrMsg)}
	}
	secs, err := tok.ExpiresIn.Int64()
	if err != nil || tok.AccessToken == "" {
		return "", worker.Temporary(errors.New("access token: answer without access_token and expires_in"))
	}
	h.mu.Lock()
	h.token, h.expires = tok.AccessToken, time.Now().Add(time.Duration(float64(secs)*0.9)*time.Second)
	h.mu.Unlock()
	return tok.AccessToken, nil
}

// userProfile fetches (and caches for embed_user_profile_lifetime) a
// user's profile.
func (h *handler) userProfile(ctx context.Context, openID string) (map[string]any, error) {
	h.mu.Lock()
	if p, ok := h.profiles[openID]; ok && time.Now().Before(p.expires) {
		h.mu.Unlock()
		return p.data, nil
	}
	h.mu.Unlock()
	token, err := h.accessToken(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url("user/info", url.Values{
		"access_token": {token}, "openid": {openID}, "lang": {h.cfg.EmbedUserProfileLang},
	}), nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("user/info: HTTP %d, unreadable answer", resp.StatusCode)
	}
	h.mu.Lock()
	if len(h.profiles) > 10000 {
		h.profiles = map[string]profile{} // bound the cache
	}
	h.profiles[openID] = profile{p, time.Now().Add(time.Duration(h.cfg.EmbedUserProfileLifetime) * time.Second)}
	h.mu.Unlock()
	return p, nil
}

// createMenu creates wechat_menu at start-up (without holding it up).
func (h *handler) createMenu(ctx context.Context) {
	err := func() error {
		token, err := h.accessToken(ctx)
		if err != nil {
			return err
		}
		body, err := json.Marshal(h.cfg.WechatMenu)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url("menu/create", url.Values{"access_token": {token}}), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := h.client.Do(req)
		if err != nil {
			return err
		}
		rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("Received HTTP code: %d when creating the menu.", resp.StatusCode)
		}
		var res struct {
			ErrCode int    `json:"errcode"`
			ErrMsg  string `json:"errmsg"`
		}
		if err := json.Unmarshal(rb, &res); err != nil {
			return fmt.Errorf("unreadable answer when creating the menu: %w", err)
		}
		if res.ErrCode != 0 {
			return fmt.Errorf("Received errcode: %d, errmsg: %s when creating WeChat Menu.", res.ErrCode, res.ErrMsg)
		}
		return nil
	}()
	if err != nil {
		h.log.Error("WeChat menu not created", "error", err)
		return
	}
	h.log.Info("WeChat Menu created successfully")
}
