// Package rapidsms is Vumi's RapidSMSRelay: inbound user messages are
// posted as Vumi JSON to RapidSMS's HTTP backend (rapidsms_url), and
// RapidSMS sends messages — new ones, or replies with in_reply_to — by
// calling the relay's own HTTP endpoint (web_path on web_port).
//
// Messages that may be replied to are kept, for vumi_reply_timeout, in a
// compacted topic (<worker>.messages, keyed by message_id) read through a
// goka view, so any instance can answer a reply to a message another
// instance relayed. The HTTP calls to RapidSMS are made in a franz-go
// consumer group, as in the HTTP relay. docs/rapidsms.md has more.
package rapidsms

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/processors/apps/internal/relayhttp"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is RapidSMSRelay's config.
type Config struct {
	app.Config `yaml:",inline"`
	// WebPath RapidSMS sends messages to (GET, POST or PUT). Required.
	WebPath string `yaml:"web_path"`
	// WebPort to listen on (0: any free port). WebInterface defaults to
	// all interfaces.
	WebPort      int    `yaml:"web_port"`
	WebInterface string `yaml:"web_interface"`
	// RedisManager is accepted for Vumi compatibility and ignored: the
	// messages kept for replies live in a compacted topic.
	RedisManager map[string]any `yaml:"redis_manager"`
	// AllowReplies: RapidSMS may reply with in_reply_to; default true.
	AllowReplies *bool `yaml:"allow_replies"`
	// VumiUsername and VumiPassword required of RapidSMS when it calls
	// web_path (default: no authentication); VumiAuthMethod: basic only.
	VumiUsername   string `yaml:"vumi_username"`
	VumiPassword   string `yaml:"vumi_password"`
	VumiAuthMethod string `yaml:"vumi_auth_method"`
	// VumiReplyTimeout: seconds a message may be replied to; default 600.
	VumiReplyTimeout int `yaml:"vumi_reply_timeout"`
	// AllowedEndpoints RapidSMS may send from; default [default].
	AllowedEndpoints []string `yaml:"allowed_endpoints"`
	// RapidSMSURL is RapidSMS's HTTP backend. Required.
	RapidSMSURL string `yaml:"rapidsms_url"`
	// RapidSMSUsername and RapidSMSPassword for rapidsms_url (default: no
	// authentication); RapidSMSAuthMethod: basic only.
	RapidSMSUsername   string `yaml:"rapidsms_username"`
	RapidSMSPassword   string `yaml:"rapidsms_password"`
	RapidSMSAuthMethod string `yaml:"rapidsms_auth_method"`
	// RapidSMSHTTPMethod for rapidsms_url; default POST.
	RapidSMSHTTPMethod string `yaml:"rapidsms_http_method"`
	// Timeout, MaxRetries and RetryBackoff of calls to rapidsms_url:
	// defaults 10s, 3 and 500ms (doubling).
	Timeout      time.Duration `yaml:"timeout"`
	MaxRetries   int           `yaml:"max_retries"`
	RetryBackoff time.Duration `yaml:"retry_backoff"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	var errs []error
	if err := c.ValidateBase(); err != nil {
		errs = append(errs, err)
	}
	if c.AllowReplies == nil {
		t := true
		c.AllowReplies = &t
	}
	if c.VumiAuthMethod == "" {
		c.VumiAuthMethod = "basic"
	}
	if c.RapidSMSAuthMethod == "" {
		c.RapidSMSAuthMethod = "basic"
	}
	if c.RapidSMSHTTPMethod == "" {
		c.RapidSMSHTTPMethod = http.MethodPost
	}
	c.RapidSMSHTTPMethod = strings.ToUpper(c.RapidSMSHTTPMethod)
	if c.VumiReplyTimeout == 0 {
		c.VumiReplyTimeout = 600
	}
	if len(c.AllowedEndpoints) == 0 {
		c.AllowedEndpoints = []string{schemas.DefaultEndpoint}
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 3
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
	if c.WebPath == "" {
		errs = append(errs, errors.New("key web_path: is required"))
	}
	c.WebPath = "/" + strings.Trim(c.WebPath, "/")
	if c.WebPath == "/health" {
		errs = append(errs, errors.New("key web_path: /health is the health check"))
	}
	if c.WebPort < 0 || c.WebPort > 65535 {
		errs = append(errs, fmt.Errorf("key web_port: %d is not a port", c.WebPort))
	}
	if c.RapidSMSURL == "" {
		errs = append(errs, errors.New("key rapidsms_url: is required"))
	} else if !relayhttp.ValidURL(c.RapidSMSURL) {
		errs = append(errs, fmt.Errorf("key rapidsms_url: %q is not an http(s) URL", c.RapidSMSURL))
	}
	for key, m := range map[string]string{"vumi_auth_method": c.VumiAuthMethod, "rapidsms_auth_method": c.RapidSMSAuthMethod} {
		if m != "basic" {
			errs = append(errs, fmt.Errorf("key %s: HTTP Authentication method %q not supported (want basic)", key, m))
		}
	}
	if c.VumiPassword != "" && c.VumiUsername == "" {
		errs = append(errs, errors.New("key vumi_password: set vumi_username too"))
	}
	switch c.RapidSMSHTTPMethod {
	case http.MethodPost, http.MethodPut, http.MethodGet, http.MethodPatch:
	default:
		errs = append(errs, fmt.Errorf("key rapidsms_http_method: %q is not one of POST, PUT, PATCH, GET", c.RapidSMSHTTPMethod))
	}
	if c.VumiReplyTimeout < 0 || c.Timeout < 0 || c.MaxRetries < 0 || c.RetryBackoff < 0 {
		errs = append(errs, errors.New("key vumi_reply_timeout: vumi_reply_timeout, timeout, max_retries and retry_backoff must not be negative"))
	}
	return errors.Join(errs...)
}

// MessagesTopic keeps the messages that may be replied to.
func MessagesTopic(worker string) string { return worker + ".messages" }

// IO implements topology.WorkerConfig.
func (c *Config) IO(name string) topology.IO {
	n := c.TransportName
	msgs := topology.Stream{Topic: MessagesTopic(name), Kind: "user_message", Compacted: true}
	return topology.IO{
		Consumes: []topology.Stream{{Topic: n + topology.SuffixInbound, Kind: "user_message"}, msgs},
		Produces: []topology.Stream{msgs, {Topic: n + topology.SuffixOutbound, Kind: "user_message"}, {Topic: n + topology.SuffixFailures, Kind: "failure"}},
	}
}

// Kind is the RapidSMS relay worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name:    "rapidsms_relay",
		Aliases: []string{"vumi.application.rapidsms_relay.RapidSMSRelay", "vumi.application.RapidSMSRelay"},
		Role:    topology.RoleApplication,
		Summary: "relays messages to and from RapidSMS's HTTP backend",
		NewConfig: func() topology.WorkerConfig {
			return &Config{}
		},
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				b, err := worker.NewBase(deps, spec, cfg.Common)
				if err != nil {
					return err
				}
				defer b.Close()
				return (&Relay{Base: b, cfg: cfg}).Run(ctx)
			}), nil
		},
	}
}

// Relay is a running RapidSMS relay.
type Relay struct {
	*worker.Base
	cfg    *Config
	view   *goka.View
	msgs   string
	client *relayhttp.Client

	mu sync.Mutex
	ln net.Listener
}

// Addr is the listening address once the relay runs (nil before).
func (r *Relay) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		return nil
	}
	return r.ln.Addr()
}

// Run serves until ctx is cancelled.
func (r *Relay) Run(ctx context.Context) error {
	r.msgs = r.Deps.Names.Prefix + MessagesTopic(r.Name)
	r.client = &relayhttp.Client{HTTP: &http.Client{Timeout: r.cfg.Timeout}, Method: r.cfg.RapidSMSHTTPMethod,
		Username: r.cfg.RapidSMSUsername, Password: r.cfg.RapidSMSPassword, MaxRetries: r.cfg.MaxRetries,
		Backoff: r.cfg.RetryBackoff, Log: r.Log, Retried: func() { r.Count("http.retries", 1) }}
	var err error
	if r.view, err = r.NewView(goka.Table(r.msgs), new(gokacodec.Bytes)); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(r.cfg.WebInterface, strconv.Itoa(r.cfg.WebPort)))
	if err != nil {
		return fmt.Errorf("rapidsms relay: listen on port %d: %w", r.cfg.WebPort, err)
	}
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK") })
	mux.HandleFunc(r.cfg.WebPath, r.handleSend)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	go func() { errs <- r.view.Run(runCtx) }()
	go func() { errs <- r.consume(runCtx) }()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- err
		}
	}()
	go r.RunHeartbeat(runCtx)
	r.Log.Info("rapidsms relay listening", "addr", ln.Addr().String(), "path", r.cfg.WebPath)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	cancel()
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = srv.Shutdown(shutdown)
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return fmt.Errorf("rapidsms relay %s: %w", r.Name, runErr)
	}
	return nil
}

// consume posts inbound messages to RapidSMS, storing each first so that
// it may be replied to.
func (r *Relay) consume(ctx context.Context) error {
	n := r.Deps.Names
	cl, err := kgo.NewClient(append(r.Deps.KafkaOpts(r.Name+".consumer"),
		kgo.ConsumerGroup(n.Prefix+r.Name),
		kgo.ConsumeTopics(n.Inbound(r.cfg.TransportName)),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			r.Log.Warn("fetch error", "topic", t, "partition", p, "error", err)
		})
		var wg sync.WaitGroup
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, rec := range p.Records {
					if ctx.Err() != nil {
						return
					}
					r.relay(ctx, rec)
				}
			}()
		})
		wg.Wait()
		if ctx.Err() != nil {
			return nil
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			r.Log.Warn("offsets not committed; some messages may be relayed again", "error", err)
		}
	}
}

func (r *Relay) mw(p middleware.Phase) middleware.Context {
	return middleware.Context{Phase: p, Connector: r.cfg.TransportName, Worker: r.Name}
}

func (r *Relay) relay(ctx context.Context, rec *kgo.Record) {
	var m schemas.UserMessage
	if err := r.Deps.Codecs.UserMessage.DecodeContext(r.RegistryWait(ctx), rec.Value, &m); err != nil {
		if schemas.IsRegistryUnavailable(err) {
			return // stopping while the registry is down: left uncommitted
		}
		r.fail(ctx, rec, nil, worker.Permanent(fmt.Errorf("undecodable record: %w", err)))
		return
	}
	r.Count("inbound", 1)
	in, err := r.Stack.Inbound(ctx, &m, r.mw(middleware.Consume))
	if err != nil || in == nil {
		if err != nil {
			r.fail(ctx, rec, &m, err)
		}
		return
	}
	if *r.cfg.AllowReplies {
		// The message's timestamp is when it expires from: stored with
		// the time it was relayed.
		kept := *in
		kept.Timestamp = schemas.Now()
		if err := worker.Produce(ctx, r.Base, r.Deps.Codecs.UserMessage, r.msgs, []byte(in.MessageID), &kept); err != nil {
			if ctx.Err() == nil {
				r.fail(ctx, rec, in, err)
			}
			return
		}
	}
	body, err := in.MarshalJSON()
	if err != nil {
		r.fail(ctx, rec, in, worker.Permanent(err))
		return
	}
	resp, err := r.client.Do(ctx, r.cfg.RapidSMSURL, body)
	if err != nil {
		if ctx.Err() == nil {
			r.fail(ctx, rec, in, err)
		}
		return
	}
	r.Log.Info("relayed to rapidsms", "message_id", in.MessageID, "status", resp.Status)
}

func (r *Relay) fail(ctx context.Context, rec *kgo.Record, decoded interface{ MarshalJSON() ([]byte, error) }, cause error) {
	if err := r.SendFailure(ctx, r.cfg.TransportName, r.FailureFor(rec, decoded, schemas.TypeUserMessage, cause)); err != nil {
		r.Log.Error("failure not published", "error", err)
	}
}

// errBadRequest marks errors answered with 400.
var errBadRequest = errors.New("bad request")

type sendRequest struct {
	Content   *string         `json:"content"`
	ToAddr    json.RawMessage `json:"to_addr"`
	InReplyTo *string         `json:"in_reply_to"`
	Endpoint  *string         `json:"endpoint"`
}

func (r *Relay) authorized(req *http.Request) bool {
	if r.cfg.VumiUsername == "" {
		return true
	}
	u, p, ok := req.BasicAuth()
	return ok && subtle.ConstantTimeCompare([]byte(u), []byte(r.cfg.VumiUsername)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(r.cfg.VumiPassword)) == 1
}

func (r *Relay) handleSend(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != r.cfg.WebPath {
		http.NotFound(w, req)
		return
	}
	if !r.authorized(req) {
		w.Header().Set("WWW-Authenticate", `Basic realm="RapidSMS Relay"`)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	switch req.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut:
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	msgs, err := r.send(req)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, errBadRequest) {
			code = http.StatusBadRequest
		}
		r.Log.Warn("send request failed", "status", code, "error", err)
		w.WriteHeader(code)
		_, _ = io.WriteString(w, strings.TrimPrefix(err.Error(), errBadRequest.Error()+": "))
		return
	}
	out := make([]json.RawMessage, 0, len(msgs))
	for _, m := range msgs {
		b, err := m.MarshalJSON()
		if err == nil {
			out = append(out, b)
		}
	}
	_ = json.NewEncoder(w).Encode(out)
}

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func (r *Relay) send(req *http.Request) ([]*schemas.UserMessage, error) {
	var sr sendRequest
	dec := json.NewDecoder(io.LimitReader(req.Body, 1<<20))
	if err := dec.Decode(&sr); err != nil {
		return nil, bad("Invalid JSON: %v", err)
	}
	if sr.Content == nil {
		return nil, bad("Missing `content`.")
	}
	var to []string
	if err := json.Unmarshal(sr.ToAddr, &to); err != nil {
		return nil, bad("Supplied `to_addr` (%s) was not a list.", string(sr.ToAddr))
	}
	ctx := req.Context()
	if sr.InReplyTo != nil {
		return r.reply(ctx, *sr.Content, to, *sr.InReplyTo)
	}
	endpoint := schemas.DefaultEndpoint
	if sr.Endpoint != nil && *sr.Endpoint != "" {
		endpoint = *sr.Endpoint
	}
	allowed := false
	for _, e := range r.cfg.AllowedEndpoints {
		allowed = allowed || e == endpoint
	}
	if !allowed {
		return nil, bad("Endpoint %q not defined in list of allowed endpoints %v", endpoint, r.cfg.AllowedEndpoints)
	}
	var sent []*schemas.UserMessage
	for _, addr := range to {
		m := schemas.NewUserMessage()
		m.ToAddr, m.Content = schemas.String(addr), schemas.String(*sr.Content)
		m.TransportName = schemas.String(r.cfg.TransportName)
		for k, v := range r.cfg.SendTo[endpoint] {
			if err := m.SetString(k, v); err != nil {
				return sent, fmt.Errorf("send_to.%s: %w", endpoint, err)
			}
		}
		m.SetEndpoint(endpoint)
		out, err := r.publish(ctx, m)
		if err != nil {
			return sent, err
		}
		if out != nil {
			sent = append(sent, out)
		}
	}
	return sent, nil
}

func (r *Relay) reply(ctx context.Context, content string, to []string, inReplyTo string) ([]*schemas.UserMessage, error) {
	if !*r.cfg.AllowReplies {
		return nil, bad("Support for `in_reply_to` not configured.")
	}
	orig, err := r.load(ctx, inReplyTo)
	if err != nil {
		return nil, err
	}
	if orig == nil {
		return nil, bad("Original message %q not found.", inReplyTo)
	}
	if len(to) > 1 || (len(to) == 1 && to[0] != orig.From()) {
		return nil, bad("Supplied `to_addrs` don't match `from_addr` of original message %q", inReplyTo)
	}
	out, err := r.publish(ctx, orig.Reply(content, true))
	if err != nil || out == nil {
		return nil, err
	}
	return []*schemas.UserMessage{out}, nil
}

// load finds a stored message that has not expired; the view may lag
// the store by a moment, so a miss is retried briefly.
func (r *Relay) load(ctx context.Context, id string) (*schemas.UserMessage, error) {
	deadline := time.Now().Add(time.Second)
	for {
		v, err := r.view.Get(id)
		if err != nil {
			return nil, fmt.Errorf("message store: %w", err)
		}
		if raw, ok := v.([]byte); ok && raw != nil {
			var m schemas.UserMessage
			if err := r.Deps.Codecs.UserMessage.DecodeContext(ctx, raw, &m); err != nil {
				return nil, fmt.Errorf("message store: %w", err)
			}
			if time.Since(m.Timestamp) > time.Duration(r.cfg.VumiReplyTimeout)*time.Second {
				return nil, nil
			}
			return &m, nil
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *Relay) publish(ctx context.Context, m *schemas.UserMessage) (*schemas.UserMessage, error) {
	out, err := r.Stack.Outbound(ctx, m, r.mw(middleware.Publish))
	if err != nil || out == nil {
		return nil, err
	}
	if err := worker.Produce(ctx, r.Base, r.Deps.Codecs.UserMessage, r.Deps.Names.Outbound(r.cfg.TransportName), topology.OutboundKey(out), out); err != nil {
		return nil, err
	}
	r.Count("outbound", 1)
	return out, nil
}
