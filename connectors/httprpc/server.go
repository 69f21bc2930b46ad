package httprpc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Handler turns HTTP requests into inbound messages. HandleRequest
// either publishes (Server.Publish) and leaves the request pending until
// the reply, or finishes it (Request.Finish) itself, e.g. with a 400.
type Handler interface {
	HandleRequest(ctx context.Context, s *Server, r *Request)
}

// ReplyHandler is implemented by transports that answer replies in their
// own way (headers, JSON bodies, dropping them). Without it a reply needs
// in_reply_to and content, and its content becomes the response body.
type ReplyHandler interface {
	HandleReply(ctx context.Context, s *Server, m *schemas.UserMessage) error
}

// Options are a transport's constants.
type Options struct {
	// ContentType of responses; default "text/plain".
	ContentType string
	// GoneNackReason, when set, nacks a reply whose request is no longer
	// waiting anywhere with this reason (as some of Vumi's transports did)
	// instead of sending it to failures.
	GoneNackReason string
	// Health, when set, adds its fields to the health check's answer.
	Health func() map[string]any
}

// Request is one pending HTTP request.
type Request struct {
	// ID is the request's id: the message_id of the inbound message it
	// produces, and so the in_reply_to of its reply.
	ID string
	// HTTP is the request, with its form already parsed.
	HTTP  *http.Request
	Start time.Time

	w      http.ResponseWriter
	done   chan struct{}
	once   sync.Once
	toAddr string
	code   int
}

// Args returns the request's query and form parameters.
func (r *Request) Args() url.Values { return r.HTTP.Form }

// Server is a running HTTP-RPC transport instance.
type Server struct {
	*transport.Transport
	cfg      *Config
	opts     Options
	handler  Handler
	instance string

	mu      sync.Mutex
	pending map[string]*Request

	statusMu   sync.Mutex
	lastStatus map[string]string // component -> status/type last published

	ln   net.Listener
	srv  *http.Server
	rpc  *forwarder
	next http.Handler
}

// New builds an HTTP-RPC transport around handler.
func New(deps *topology.Deps, spec *topology.WorkerSpec, cfg *Config, handler Handler, opts Options) (*Server, error) {
	t, err := transport.New(deps, spec, &cfg.Config)
	if err != nil {
		return nil, err
	}
	if opts.ContentType == "" {
		opts.ContentType = "text/plain"
	}
	s := &Server{Transport: t, cfg: cfg, opts: opts, handler: handler, instance: schemas.GenerateID()[:16],
		pending: map[string]*Request{}, lastStatus: map[string]string{}}
	return s, nil
}

// Worker returns a topology.Worker that runs a fresh Server each time.
func Worker(deps *topology.Deps, spec *topology.WorkerSpec, cfg *Config, newHandler func() Handler, opts Options) topology.Worker {
	return topology.WorkerFunc(func(ctx context.Context) error {
		s, err := New(deps, spec, cfg, newHandler(), opts)
		if err != nil {
			return err
		}
		return s.Run(ctx)
	})
}

// Config returns the transport's config.
func (s *Server) Config() *Config { return s.cfg }

// Instance is this instance's id (in the replies' transport_metadata).
func (s *Server) Instance() string { return s.instance }

// Addr is the listening address once Run has started listening.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Pending is the number of requests waiting for a reply.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Run serves HTTP and consumes replies until ctx is cancelled.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	// Reach Kafka first, so that the port only opens once requests can be
	// served (and answered 503 should Kafka go away later).
	var err error
	s.rpc, err = newForwarder(ctx, s)
	if err != nil {
		return err
	}
	defer s.rpc.close()
	addr := net.JoinHostPort(s.cfg.WebInterface, strconv.Itoa(s.cfg.WebPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = s.Status(ctx, "http", schemas.StatusDown, "listen_failed", err.Error(), nil)
		return fmt.Errorf("http rpc: listen on %s: %w", addr, err)
	}
	s.ln = ln
	mux := http.NewServeMux()
	mux.Handle("/"+strings.TrimLeft(s.cfg.HealthPath, "/"), http.HandlerFunc(s.health))
	mux.Handle("/", s.authenticated(http.HandlerFunc(s.serveRPC)))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.srv.Serve(ln) }()
	s.Log.Info("http rpc transport listening", "addr", ln.Addr().String(), "web_path", s.cfg.WebPath, "instance", s.instance)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.cfg.RequestCleanupInterval >= 1 {
		go s.cleanup(runCtx, time.Duration(s.cfg.RequestCleanupInterval)*time.Second)
	}
	go s.rpc.run(runCtx)
	err = s.Transport.Run(ctx, transport.HandlerFunc(s.handleOutbound))

	// Stop taking requests, and answer the pending ones as timed out.
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	s.mu.Lock()
	for id := range s.pending {
		go s.timeout(id)
	}
	s.mu.Unlock()
	_ = s.srv.Shutdown(shutdownCtx)
	<-serveErr
	return err
}

// authenticated wraps h with HTTP Basic auth when web_username is set.
func (s *Server) authenticated(h http.Handler) http.Handler {
	if s.cfg.WebUsername == "" {
		return h
	}
	wantUser, wantPass := []byte(s.cfg.WebUsername), []byte(s.cfg.WebPassword)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		userOK := subtle.ConstantTimeCompare([]byte(user), wantUser) == 1
		passOK := subtle.ConstantTimeCompare([]byte(pass), wantPass) == 1
		if !ok || !userOK || !passOK {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", s.cfg.WebAuthDomain))
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	out := map[string]any{"pending_requests": s.Pending(), "instance": s.instance}
	if s.opts.Health != nil {
		for k, v := range s.opts.Health() {
			out[k] = v
		}
	}
	_ = json.NewEncoder(w).Encode(out)
}

// serveRPC handles a request on web_path and waits until it is finished.
func (s *Server) serveRPC(w http.ResponseWriter, hr *http.Request) {
	if !pathMatches(hr.URL.Path, s.cfg.WebPath) {
		http.NotFound(w, hr)
		return
	}
	switch hr.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut:
	default:
		w.Header().Set("Allow", "GET, POST, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hr.Body = http.MaxBytesReader(w, hr.Body, 1<<20)
	if err := hr.ParseForm(); err != nil {
		http.Error(w, fmt.Sprintf("invalid request: %v", err), http.StatusBadRequest)
		return
	}
	r := &Request{ID: schemas.GenerateID(), HTTP: hr, Start: time.Now(), w: w, done: make(chan struct{})}
	w.Header().Set("Content-Type", s.opts.ContentType)
	s.mu.Lock()
	s.pending[r.ID] = r
	s.mu.Unlock()
	if s.cfg.Noisy {
		s.Log.Debug("http rpc request", "request_id", r.ID, "method", hr.Method, "path", hr.URL.Path, "query", redact(hr.Form))
	}
	s.handler.HandleRequest(hr.Context(), s, r)
	select {
	case <-r.done:
	case <-hr.Context().Done():
		// The client went away: forget the request; a late reply goes to
		// failures.
		s.remove(r.ID)
	}
}

func pathMatches(path, webPath string) bool {
	p := "/" + strings.Trim(webPath, "/")
	if p == "/" {
		return true // web_path "/" serves every path
	}
	return path == p || path == p+"/" || strings.HasPrefix(path, p+"/")
}

// redact hides values of parameters that look secret in noisy logs.
func redact(v url.Values) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		val := v.Get(k)
		lk := strings.ToLower(k)
		if strings.Contains(lk, "pass") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") || strings.Contains(lk, "key") {
			val = "***"
		}
		fmt.Fprintf(&b, "%s=%q ", k, val)
	}
	return strings.TrimSpace(b.String())
}

func (s *Server) remove(id string) *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.pending[id]
	delete(s.pending, id)
	return r
}

// Finish answers a pending request held by this instance; false when it
// is not (any more) here.
func (s *Server) Finish(id string, body []byte, code int, headers http.Header) bool {
	_, ok := s.finishTimed(id, body, code, headers)
	return ok
}

// finishTimed is Finish, also returning how long the request was open.
func (s *Server) finishTimed(id string, body []byte, code int, headers http.Header) (time.Duration, bool) {
	r := s.remove(id)
	if r == nil {
		return 0, false
	}
	r.finish(body, code, headers)
	s.responseTime(r)
	return time.Since(r.Start), true
}

// Finish answers this request directly (for errors found while parsing).
func (r *Request) Finish(s *Server, body []byte, code int) {
	s.Finish(r.ID, body, code, nil)
}

func (r *Request) finish(body []byte, code int, headers http.Header) {
	r.once.Do(func() {
		for k, vs := range headers {
			for _, v := range vs {
				r.w.Header().Add(k, v)
			}
		}
		r.code = code
		r.w.WriteHeader(code)
		_, _ = r.w.Write(body)
		close(r.done)
	})
}

// Publish publishes m as the inbound message of request r: its message_id
// is the request id, and transport_metadata.http_rpc records which
// instance holds the request and until when, so that the reply finds it.
func (s *Server) Publish(ctx context.Context, r *Request, m *schemas.UserMessage) error {
	m.MessageID = r.ID
	if m.TransportMetadata == nil {
		m.TransportMetadata = schemas.Metadata{}
	}
	m.TransportMetadata["http_rpc"] = map[string]any{
		"instance": s.instance,
		"deadline": json.Number(strconv.FormatInt(r.Start.Add(s.cfg.requestTimeout()).UnixMilli(), 10)),
	}
	r.toAddr = m.To()
	return s.PublishInbound(ctx, m)
}

// PublishInbound publishes an inbound message within publish_timeout, so
// that a request fails fast (and its handler can answer 503) when Kafka is
// unreachable; for messages not bound to a waiting request.
func (s *Server) PublishInbound(ctx context.Context, m *schemas.UserMessage) error {
	pctx, cancel := context.WithTimeout(ctx, secs(s.cfg.PublishTimeout))
	defer cancel()
	return s.PublishMessage(pctx, m)
}

// cleanup closes requests older than request_timeout.
func (s *Server) cleanup(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var expired []string
		now := time.Now()
		s.mu.Lock()
		for id, r := range s.pending {
			if now.Sub(r.Start) > s.cfg.requestTimeout() {
				expired = append(expired, id)
			}
		}
		s.mu.Unlock()
		for _, id := range expired {
			s.timeout(id)
		}
	}
}

func (s *Server) timeout(id string) {
	r := s.remove(id)
	if r == nil {
		return
	}
	s.Log.Warn("timing out request", "request_id", id, "to_addr", r.toAddr, "after", time.Since(r.Start).Round(time.Millisecond))
	r.finish([]byte(s.cfg.RequestTimeoutBody), s.cfg.RequestTimeoutStatusCode, nil)
	s.Count("timeouts", 1)
	s.addStatus(schemas.Status{Component: "response", Status: schemas.StatusDown, Type: "timeout", Message: "Response timed out",
		Reasons: []string{fmt.Sprintf("Response took longer than %ds", s.cfg.RequestTimeout)},
		Details: schemas.Metadata{"response_time": time.Since(r.Start).Seconds()}})
}

// responseTime publishes the response status for a finished request.
func (s *Server) responseTime(r *Request) {
	if r.code < 200 || r.code >= 300 {
		return
	}
	took := time.Since(r.Start)
	details := schemas.Metadata{"response_time": took.Seconds()}
	switch {
	case took > secs(s.cfg.ResponseTimeDown):
		s.addStatus(schemas.Status{Component: "response", Status: schemas.StatusDown, Type: "very_slow_response", Message: "Very slow response",
			Reasons: []string{fmt.Sprintf("Response took longer than %gs", s.cfg.ResponseTimeDown)}, Details: details})
	case took > secs(s.cfg.ResponseTimeDegraded):
		s.addStatus(schemas.Status{Component: "response", Status: schemas.StatusDegraded, Type: "slow_response", Message: "Slow response",
			Reasons: []string{fmt.Sprintf("Response took longer than %gs", s.cfg.ResponseTimeDegraded)}, Details: details})
	default:
		s.addStatus(schemas.Status{Component: "response", Status: schemas.StatusOK, Type: "response_sent", Message: "Response sent", Details: details})
	}
}

// addStatus publishes a status only when it differs from the component's
// previous one (Vumi's StatusEdgeDetector).
func (s *Server) addStatus(st schemas.Status) {
	key := string(st.Status) + "/" + st.Type
	s.statusMu.Lock()
	same := s.lastStatus[st.Component] == key
	s.lastStatus[st.Component] = key
	s.statusMu.Unlock()
	if same {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Status(ctx, st.Component, st.Status, st.Type, st.Message, st.Details); err != nil {
			s.Log.Warn("status not published", "error", err)
		}
	}()
}

// handleOutbound routes a reply to the request it answers.
func (s *Server) handleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	if s.cfg.Noisy {
		s.Log.Debug("http rpc reply", "message_id", m.MessageID, "in_reply_to", m.InReplyTo)
	}
	if rh, ok := s.handler.(ReplyHandler); ok {
		return rh.HandleReply(ctx, s, m)
	}
	return s.DefaultReply(ctx, m)
}

// DefaultReply is Vumi's HttpRpcTransport reply: in_reply_to and content
// are required (a nack otherwise); the content is the response body.
func (s *Server) DefaultReply(ctx context.Context, m *schemas.UserMessage) error {
	if missing := MissingFields(m, "in_reply_to", "content"); missing != "" {
		return s.PublishNack(ctx, m.MessageID, "Missing fields: "+missing)
	}
	return s.Deliver(ctx, m, []byte(*m.Content), http.StatusOK, nil)
}

// MissingFields is Vumi's ensure_message_values: the named fields
// (in_reply_to, content, to_addr, from_addr) that are absent or empty in
// m, comma-separated ("" when none is).
func MissingFields(m *schemas.UserMessage, fields ...string) string {
	var missing []string
	for _, f := range fields {
		var v *string
		switch f {
		case "in_reply_to":
			v = m.InReplyTo
		case "content":
			v = m.Content
		case "to_addr":
			v = m.ToAddr
		case "from_addr":
			v = m.FromAddr
		}
		if v == nil || *v == "" {
			missing = append(missing, f)
		}
	}
	return strings.Join(missing, ", ")
}

// ErrRequestGone is the cause of the failure published for a reply whose
// request is no longer waiting anywhere.
var ErrRequestGone = errors.New("no pending request for this reply")

// Deliver answers the request m replies to with body, wherever the
// request is held: here, by finishing it; on another live instance, by
// forwarding m there; nowhere, by publishing a failure. It acks m once the
// response is written.
func (s *Server) Deliver(ctx context.Context, m *schemas.UserMessage, body []byte, code int, headers http.Header) error {
	target, deadline := holderOf(m)
	if target == "" || target == s.instance {
		return s.deliverHere(ctx, m, body, code, headers)
	}
	if time.Now().After(deadline) {
		return s.gone(ctx, nil, m, fmt.Errorf("%w: the request timed out before the reply arrived", ErrRequestGone))
	}
	if !s.rpc.alive(target) {
		return s.gone(ctx, nil, m, fmt.Errorf("%w: instance %s that held the request is gone", ErrRequestGone, target))
	}
	return s.rpc.forward(ctx, target, m)
}

// deliverHere finishes a locally held request and acks the reply, or sends
// the reply to failures when the request is gone.
func (s *Server) deliverHere(ctx context.Context, m *schemas.UserMessage, body []byte, code int, headers http.Header) error {
	id := ""
	if m.InReplyTo != nil {
		id = *m.InReplyTo
	}
	open, ok := s.finishTimed(id, body, code, headers)
	if !ok {
		return s.gone(ctx, nil, m, fmt.Errorf("%w: request %s timed out or its client disconnected", ErrRequestGone, id))
	}
	// The protocol record `vumi trace` shows under the ack: the HTTP
	// response written and how long the request waited for it.
	return s.PublishAckRecord(ctx, m.MessageID, m.MessageID, schemas.Metadata{
		"http_response": map[string]any{"status": code, "bytes": len(body), "request_ms": open.Milliseconds()},
	})
}

// gone handles a reply whose request is waiting nowhere: a nack with
// Options.GoneNackReason when set, else a failure.
func (s *Server) gone(ctx context.Context, rec *kgo.Record, m *schemas.UserMessage, cause error) error {
	if s.opts.GoneNackReason != "" {
		s.Log.Warn("reply nacked", "message_id", m.MessageID, "error", cause)
		return s.PublishNack(ctx, m.MessageID, s.opts.GoneNackReason)
	}
	return s.SendFailure(ctx, rec, m, worker.Permanent(cause))
}

// holderOf reads transport_metadata.http_rpc of a reply.
func holderOf(m *schemas.UserMessage) (instance string, deadline time.Time) {
	meta, _ := m.TransportMetadata["http_rpc"].(map[string]any)
	if meta == nil {
		return "", time.Time{}
	}
	instance, _ = meta["instance"].(string)
	switch d := meta["deadline"].(type) {
	case json.Number:
		if ms, err := d.Int64(); err == nil {
			deadline = time.UnixMilli(ms)
		}
	case float64:
		deadline = time.UnixMilli(int64(d))
	}
	return instance, deadline
}
