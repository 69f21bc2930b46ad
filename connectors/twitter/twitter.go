// Package twitter is Vumi's Twitter transport: it follows the account's
// user stream (mentions, direct messages, follows) and, when terms are
// configured, a filter stream tracking them; it sends tweets and direct
// messages through the REST API (v1.1 shapes), signing every request with
// OAuth 1.0a HMAC-SHA1.
//
// Addresses are "@screen_name". A tweet that does not start with a mention
// is addressed to NO_USER. Which kind of message an outbound message is
// (tweet or DM) is chosen by its routing endpoint, per the endpoints key.
package twitter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// NoUserAddr is the to_addr of tweets addressed to nobody in particular.
const NoUserAddr = "NO_USER"

// Message types of the endpoints key.
const (
	typeTweets = "tweets"
	typeDMs    = "dms"
)

// Config is Vumi's TwitterTransportConfig.
type Config struct {
	transport.Config `yaml:",inline"`
	// ScreenName of the account (without '@'). Required.
	ScreenName string `yaml:"screen_name"`
	// OAuth 1.0a credentials. All required; never logged.
	ConsumerKey       string `yaml:"consumer_key"`
	ConsumerSecret    string `yaml:"consumer_secret"`
	AccessToken       string `yaml:"access_token"`
	AccessTokenSecret string `yaml:"access_token_secret"`
	// Endpoints maps the message types "tweets" and "dms" to routing
	// endpoints. Default {tweets: default}.
	Endpoints map[string]string `yaml:"endpoints"`
	// Terms to track on the filter stream. Default none.
	Terms []string `yaml:"terms"`
	// Autofollow follows back the users who follow the account.
	Autofollow bool `yaml:"autofollow"`
	// APIURL, StreamURL and UserStreamURL are the bases of the REST,
	// filter stream and user stream APIs.
	APIURL        string `yaml:"api_url"`
	StreamURL     string `yaml:"stream_url"`
	UserStreamURL string `yaml:"userstream_url"`
	// ReconnectDelay is the first delay before reopening a stream, doubled
	// after each failure up to ReconnectMaxDelay. Defaults 1s and 5m.
	ReconnectDelay    time.Duration `yaml:"reconnect_delay"`
	ReconnectMaxDelay time.Duration `yaml:"reconnect_max_delay"`
	// StallTimeout ends a stream that sent nothing (not even a keep-alive
	// newline) for this long. Default 90s.
	StallTimeout time.Duration `yaml:"stall_timeout"`

	api, stream, userStream *url.URL
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	for _, f := range []struct{ key, v string }{
		{"screen_name", c.ScreenName}, {"consumer_key", c.ConsumerKey}, {"consumer_secret", c.ConsumerSecret},
		{"access_token", c.AccessToken}, {"access_token_secret", c.AccessTokenSecret},
	} {
		if f.v == "" {
			return fmt.Errorf("key %s: is required", f.key)
		}
	}
	c.ScreenName = strings.TrimPrefix(c.ScreenName, "@")
	if c.Endpoints == nil {
		c.Endpoints = map[string]string{typeTweets: schemas.DefaultEndpoint}
	}
	for k, v := range c.Endpoints {
		if k != typeTweets && k != typeDMs {
			return fmt.Errorf("key endpoints.%s: unknown message type (want tweets or dms)", k)
		}
		if v == "" {
			return fmt.Errorf("key endpoints.%s: needs an endpoint name", k)
		}
	}
	if len(c.Endpoints) == 0 {
		return errors.New("key endpoints: needs configuration for either dms, tweets or both")
	}
	if d, ok := c.Endpoints[typeDMs]; ok && d == c.Endpoints[typeTweets] {
		return fmt.Errorf("key endpoints: has the same endpoint for dms and tweets: %q", d)
	}
	for i, term := range c.Terms {
		if strings.TrimSpace(term) == "" || strings.Contains(term, ",") {
			return fmt.Errorf("key terms[%d]: %q is not a term (non-empty, no commas)", i, term)
		}
	}
	for _, u := range []struct {
		key string
		v   *string
		def string
		out **url.URL
	}{
		{"api_url", &c.APIURL, "https://api.twitter.com/1.1/", &c.api},
		{"stream_url", &c.StreamURL, "https://stream.twitter.com/1.1/", &c.stream},
		{"userstream_url", &c.UserStreamURL, "https://userstream.twitter.com/1.1/", &c.userStream},
	} {
		if *u.v == "" {
			*u.v = u.def
		}
		if !strings.HasSuffix(*u.v, "/") {
			*u.v += "/"
		}
		p, err := url.Parse(*u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("key %s: %q is not an http(s) URL", u.key, *u.v)
		}
		*u.out = p
	}
	if c.ReconnectDelay == 0 {
		c.ReconnectDelay = time.Second
	}
	if c.ReconnectMaxDelay == 0 {
		c.ReconnectMaxDelay = 5 * time.Minute
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = 90 * time.Second
	}
	if c.ReconnectDelay < 0 || c.StallTimeout < 0 {
		return errors.New("key reconnect_delay: delays must be positive")
	}
	if c.ReconnectMaxDelay < c.ReconnectDelay {
		return fmt.Errorf("key reconnect_max_delay: %v is less than reconnect_delay %v", c.ReconnectMaxDelay, c.ReconnectDelay)
	}
	return nil
}

func (c *Config) credentials() Credentials {
	return Credentials{ConsumerKey: c.ConsumerKey, ConsumerSecret: c.ConsumerSecret, AccessToken: c.AccessToken, AccessSecret: c.AccessTokenSecret}
}

// Kinds returns the Twitter transport kind.
func Kinds() []*topology.Kind {
	return []*topology.Kind{{
		Name: "twitter", Aliases: []string{"vumi.transports.twitter.TwitterTransport", "vumi.transports.twitter.twitter.TwitterTransport"},
		Role: topology.RoleTransport, Summary: "Twitter: mentions, tracked terms and direct messages in, tweets and DMs out",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return &Transport{deps: deps, spec: spec, cfg: spec.Config.(*Config), http: &http.Client{}}, nil
		},
	}}
}

// Transport is the Twitter transport worker.
type Transport struct {
	deps *topology.Deps
	spec *topology.WorkerSpec
	cfg  *Config
	http *http.Client
	t    *transport.Transport
}

// Run opens the streams and consumes outbound messages until ctx is
// cancelled.
func (tr *Transport) Run(ctx context.Context) error {
	t, err := transport.New(tr.deps, tr.spec, &tr.cfg.Config)
	if err != nil {
		return err
	}
	defer t.Close()
	tr.t = t
	t.Log = t.Log.With("screen_name", tr.cfg.ScreenName)
	streamCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	n := 1
	go func() {
		tr.streamLoop(streamCtx, "user_stream", func(ctx context.Context) (*http.Request, error) {
			return tr.newRequest(ctx, http.MethodGet, tr.cfg.userStream, "user.json", url.Values{"with": {"user"}})
		}, tr.handleUserStream)
		done <- struct{}{}
	}()
	if len(tr.cfg.Terms) > 0 {
		n++
		go func() {
			tr.streamLoop(streamCtx, "track_stream", func(ctx context.Context) (*http.Request, error) {
				return tr.newRequest(ctx, http.MethodPost, tr.cfg.stream, "statuses/filter.json", url.Values{"track": {strings.Join(tr.cfg.Terms, ",")}})
			}, tr.handleTrackStream)
			done <- struct{}{}
		}()
	}
	runErr := t.Run(ctx, transport.HandlerFunc(tr.handleOutbound))
	stop()
	for range n {
		<-done
	}
	return runErr
}

// newRequest builds a signed request; params go in the query of a GET and
// in the form body of a POST.
func (tr *Transport) newRequest(ctx context.Context, method string, base *url.URL, path string, params url.Values) (*http.Request, error) {
	u := base.ResolveReference(&url.URL{Path: path})
	var body io.Reader
	var form url.Values
	if method == http.MethodGet {
		u.RawQuery = params.Encode()
	} else {
		form = params
		body = strings.NewReader(encodeForm(params))
	}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.Header.Set("User-Agent", "vumi-kafka")
	tr.cfg.credentials().Sign(r, form)
	return r, nil
}

// encodeForm encodes a form body with RFC 3986 percent-encoding (as the
// signature does), sorted by key.
func encodeForm(v url.Values) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		for _, x := range v[k] {
			parts = append(parts, percentEncode(k)+"="+percentEncode(x))
		}
	}
	return strings.Join(parts, "&")
}

// apiError is a failed REST call.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("twitter API: HTTP %d: %s", e.Status, e.Message)
}

// call POSTs to the REST API and decodes the JSON answer.
func (tr *Transport) call(ctx context.Context, path string, params url.Values) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := tr.newRequest(ctx, http.MethodPost, tr.cfg.api, path, params)
	if err != nil {
		return nil, err
	}
	resp, err := tr.http.Do(r)
	if err != nil {
		return nil, fmt.Errorf("twitter API %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("twitter API %s: %w", path, err)
	}
	obj, _ := decodeObject(b)
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(b))
		if errs, ok := obj["errors"].([]any); ok && len(errs) > 0 {
			if e, ok := errs[0].(map[string]any); ok {
				msg = str(e, "message")
			}
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return nil, &apiError{Status: resp.StatusCode, Message: msg}
	}
	if obj == nil {
		return nil, fmt.Errorf("twitter API %s: answer is not a JSON object", path)
	}
	return obj, nil
}

func decodeObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// streamLoop keeps one streaming connection open, reconnecting with
// exponential backoff.
func (tr *Transport) streamLoop(ctx context.Context, name string, req func(context.Context) (*http.Request, error), handle func(context.Context, map[string]any)) {
	pub := context.WithoutCancel(ctx)
	delay := tr.cfg.ReconnectDelay
	downReported := false
	for ctx.Err() == nil {
		opened, err := tr.streamOnce(ctx, name, req, handle)
		if ctx.Err() != nil {
			return
		}
		if opened {
			delay = tr.cfg.ReconnectDelay
			downReported = false
		}
		if !downReported {
			_ = tr.t.Status(pub, name, schemas.StatusDown, "disconnected", name+" ended: "+err.Error(), nil)
			downReported = true
		}
		tr.t.Log.Warn("stream ended; reconnecting", "stream", name, "error", err, "delay", delay)
		d := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		delay = min(delay*2, tr.cfg.ReconnectMaxDelay)
	}
}

func (tr *Transport) streamOnce(ctx context.Context, name string, newReq func(context.Context) (*http.Request, error), handle func(context.Context, map[string]any)) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := newReq(sctx)
	if err != nil {
		return false, err
	}
	resp, err := tr.http.Do(r)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, &apiError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	pub := context.WithoutCancel(ctx)
	_ = tr.t.Status(pub, name, schemas.StatusOK, "connected", name+" connected", nil)
	stall := time.AfterFunc(tr.cfg.StallTimeout, cancel)
	defer stall.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		stall.Reset(tr.cfg.StallTimeout)
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue // keep-alive
		}
		msg, err := decodeObject(line)
		if err != nil {
			tr.t.Log.Warn("undecodable stream message", "stream", name, "error", err)
			continue
		}
		handle(pub, msg)
	}
	if err := sc.Err(); err != nil {
		if sctx.Err() != nil && ctx.Err() == nil {
			return true, fmt.Errorf("stalled: nothing for %v", tr.cfg.StallTimeout)
		}
		return true, err
	}
	return true, errors.New("stream closed by the server")
}

// str, obj and arr read JSON fields without panicking on odd input.
func str(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

func obj(m map[string]any, k string) map[string]any {
	v, _ := m[k].(map[string]any)
	return v
}

func arr(m map[string]any, k string) []any {
	v, _ := m[k].([]any)
	return v
}

func isTweet(m map[string]any) bool {
	_, text := m["text"]
	return text && obj(m, "user") != nil
}

func isDM(m map[string]any) bool {
	_, text := m["text"]
	return text && obj(m, "sender") != nil && obj(m, "recipient") != nil
}

func screenNameAsAddr(s string) string { return "@" + s }

func addrAsScreenName(a string) string { return strings.TrimPrefix(a, "@") }

func mentions(tweet map[string]any) []any { return arr(obj(tweet, "entities"), "user_mentions") }

// tweetToAddr is the mentioned user when the tweet starts with a mention.
func tweetToAddr(tweet map[string]any) string {
	ms := mentions(tweet)
	if len(ms) == 0 {
		return NoUserAddr
	}
	m, _ := ms[0].(map[string]any)
	idx := arr(m, "indices")
	if len(idx) == 0 {
		return NoUserAddr
	}
	if n, ok := idx[0].(json.Number); ok && n.String() == "0" {
		if sn := str(m, "screen_name"); sn != "" {
			return screenNameAsAddr(sn)
		}
	}
	return NoUserAddr
}

func tweetContent(tweet map[string]any) string {
	to, content := tweetToAddr(tweet), str(tweet, "text")
	if to != NoUserAddr && strings.HasPrefix(content, to) {
		content = strings.TrimLeft(content[len(to):], " \t\r\n")
	}
	return content
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// tweetMessage is Vumi's publish_tweet.
func (c *Config) tweetMessage(tweet map[string]any) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.Content = schemas.String(tweetContent(tweet))
	m.ToAddr = schemas.String(tweetToAddr(tweet))
	m.FromAddr = schemas.String(screenNameAsAddr(str(obj(tweet, "user"), "screen_name")))
	m.ToAddrType = schemas.String(schemas.AddrTwitterHandle)
	m.FromAddrType = schemas.String(schemas.AddrTwitterHandle)
	m.TransportName = schemas.String(c.TransportName)
	m.TransportType = schemas.String(schemas.TransportTwitter)
	m.SetEndpoint(c.Endpoints[typeTweets])
	m.TransportMetadata = schemas.Metadata{"twitter": map[string]any{"status_id": str(tweet, "id_str")}}
	ms := mentions(tweet)
	if ms == nil {
		ms = []any{}
	}
	m.HelperMetadata = schemas.Metadata{"twitter": map[string]any{
		"in_reply_to_status_id":   nullable(str(tweet, "in_reply_to_status_id_str")),
		"in_reply_to_screen_name": nullable(str(tweet, "in_reply_to_screen_name")),
		"user_mentions":           ms,
	}}
	return m
}

// dmMessage is Vumi's publish_dm.
func (c *Config) dmMessage(dm map[string]any) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.Content = schemas.String(str(dm, "text"))
	m.ToAddr = schemas.String(screenNameAsAddr(str(obj(dm, "recipient"), "screen_name")))
	m.FromAddr = schemas.String(screenNameAsAddr(str(obj(dm, "sender"), "screen_name")))
	m.ToAddrType = schemas.String(schemas.AddrTwitterHandle)
	m.FromAddrType = schemas.String(schemas.AddrTwitterHandle)
	m.TransportName = schemas.String(c.TransportName)
	m.TransportType = schemas.String(schemas.TransportTwitter)
	m.SetEndpoint(c.Endpoints[typeDMs])
	ms := mentions(dm)
	if ms == nil {
		ms = []any{}
	}
	m.HelperMetadata = schemas.Metadata{"dm_twitter": map[string]any{"id": str(dm, "id_str"), "user_mentions": ms}}
	return m
}

func (tr *Transport) publish(ctx context.Context, m *schemas.UserMessage) {
	if err := tr.t.PublishMessage(ctx, m); err != nil {
		tr.t.Log.Error("cannot publish inbound message", "from_addr", m.From(), "error", err)
	}
}

func (tr *Transport) handleTrackStream(ctx context.Context, msg map[string]any) {
	if !isTweet(msg) {
		tr.t.Log.Debug("non-tweet on the track stream")
		return
	}
	if str(obj(msg, "user"), "screen_name") == tr.cfg.ScreenName {
		tr.t.Log.Debug("tracked own tweet", "id", str(msg, "id_str"))
		return
	}
	tr.publish(ctx, tr.cfg.tweetMessage(msg))
}

func (tr *Transport) handleUserStream(ctx context.Context, msg map[string]any) {
	switch {
	case isTweet(msg):
		switch {
		case str(obj(msg, "user"), "screen_name") == tr.cfg.ScreenName:
			tr.t.Log.Debug("own tweet on the user stream", "id", str(msg, "id_str"))
		case tr.cfg.Endpoints[typeTweets] == "":
			tr.t.Log.Info("discarding tweet: no endpoint configured for tweets", "id", str(msg, "id_str"))
		default:
			tr.publish(ctx, tr.cfg.tweetMessage(msg))
		}
	case isDM(obj(msg, "direct_message")):
		dm := obj(msg, "direct_message")
		switch {
		case str(obj(dm, "sender"), "screen_name") == tr.cfg.ScreenName:
			tr.t.Log.Debug("own DM on the user stream", "id", str(dm, "id_str"))
		case tr.cfg.Endpoints[typeDMs] == "":
			tr.t.Log.Info("discarding DM: no endpoint configured for DMs", "id", str(dm, "id_str"))
		default:
			tr.publish(ctx, tr.cfg.dmMessage(dm))
		}
	case str(msg, "event") == "follow":
		source := str(obj(msg, "source"), "screen_name")
		if source == "" || source == tr.cfg.ScreenName {
			return
		}
		tr.t.Log.Info("followed", "by", screenNameAsAddr(source))
		if tr.cfg.Autofollow {
			if _, err := tr.call(ctx, "friendships/create.json", url.Values{"screen_name": {source}}); err != nil {
				tr.t.Log.Error("cannot follow back", "screen_name", source, "error", err)
			} else {
				tr.t.Log.Info("followed back", "screen_name", source)
			}
		}
	default:
		tr.t.Log.Debug("unhandled user stream message")
	}
}

// outboundRequest is the REST call for an outbound message: a DM or a
// tweet depending on the endpoint it was sent to.
func (c *Config) outboundRequest(m *schemas.UserMessage) (string, url.Values, error) {
	kind := ""
	for k, ep := range c.Endpoints {
		if ep == m.Endpoint() {
			kind = k
		}
	}
	switch kind {
	case typeDMs:
		if m.To() == "" || m.To() == NoUserAddr {
			return "", nil, errors.New("a direct message needs a to_addr")
		}
		return "direct_messages/new.json", url.Values{"screen_name": {addrAsScreenName(m.To())}, "text": {m.Text()}}, nil
	case typeTweets:
		content := m.Text()
		if m.To() != "" && m.To() != NoUserAddr {
			content = m.To() + " " + content
		}
		v := url.Values{"status": {content}}
		if tw, ok := m.TransportMetadata["twitter"].(map[string]any); ok {
			if id := str(tw, "status_id"); id != "" {
				v.Set("in_reply_to_status_id", id)
			}
		}
		return "statuses/update.json", v, nil
	}
	return "", nil, fmt.Errorf("no message type (tweets or dms) is configured for endpoint %q", m.Endpoint())
}

// handleOutbound sends a tweet or DM: acked with the new status id, or
// nacked with the API's reason, as Vumi does.
func (tr *Transport) handleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	path, params, err := tr.cfg.outboundRequest(m)
	if err != nil {
		return worker.Permanent(err)
	}
	res, err := tr.call(ctx, path, params)
	if err != nil {
		tr.t.Log.Warn("outbound twitter message failed", "message_id", m.MessageID, "error", err)
		return tr.t.PublishNack(ctx, m.MessageID, err.Error())
	}
	id := str(res, "id_str")
	if id == "" {
		return tr.t.PublishNack(ctx, m.MessageID, "twitter API answered without an id_str")
	}
	return tr.t.PublishAck(ctx, m.MessageID, id)
}
