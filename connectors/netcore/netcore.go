// Package netcore is Vumi's NetcoreTransport: inbound SMS from Netcore.
// Netcore posts to_addr, from_addr, content, circle and source to web_path
// and gets the new message's id back. Netcore is inbound only, as in Vumi:
// outbound messages are nacked and go to the failures topic.
package netcore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/endpoint"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's NetcoreTransportConfig.
type Config struct {
	transport.Config `yaml:",inline"`
	// TwistedEndpoint to listen on ("tcp:port=8080:interface=0.0.0.0").
	// Required, unless the deprecated host and port are given.
	TwistedEndpoint string `yaml:"twisted_endpoint"`
	// Host and Port are the deprecated alternative to twisted_endpoint.
	Host string `yaml:"host"`
	Port *int   `yaml:"port"`
	// WebPath serves Netcore's posts; default "/api/v1/netcore/".
	WebPath string `yaml:"web_path"`
	// HealthPath answers "OK"; default "/health/".
	HealthPath string `yaml:"health_path"`
	// RejectNone rejects messages whose content is the string "None"
	// (Python's str(None) on Netcore's side); default true.
	RejectNone *bool `yaml:"reject_none"`
	// Publish is publish_timeout, which bounds, in seconds, publishing an
	// inbound message: when Kafka is unreachable Netcore gets a 503 this
	// soon; default 1.
	httprpc.Publish `yaml:",inline"`

	addr string
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.WebPath == "" {
		c.WebPath = "/api/v1/netcore/"
	}
	if c.HealthPath == "" {
		c.HealthPath = "/health/"
	}
	if c.RejectNone == nil {
		t := true
		c.RejectNone = &t
	}
	var errs []error
	if err := c.ValidateBase(); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.TwistedEndpoint != "" && (c.Host != "" || c.Port != nil):
		errs = append(errs, errors.New("key twisted_endpoint: give either twisted_endpoint or the deprecated host and port, not both"))
	case c.TwistedEndpoint != "":
		addr, err := endpoint.Server(c.TwistedEndpoint)
		if err != nil {
			errs = append(errs, fmt.Errorf("key twisted_endpoint: %w", err))
		}
		c.addr = addr
	case c.Port != nil:
		if *c.Port < 0 || *c.Port > 65535 {
			errs = append(errs, fmt.Errorf("key port: %d is not a port", *c.Port))
		}
		c.addr = net.JoinHostPort(c.Host, strconv.Itoa(*c.Port))
	default:
		errs = append(errs, errors.New("key twisted_endpoint: is required (or the deprecated host and port)"))
	}
	if trim(c.WebPath) == trim(c.HealthPath) {
		errs = append(errs, errors.New("key health_path: must differ from web_path"))
	}
	if err := c.ValidatePublish(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func trim(p string) string { return strings.Trim(p, "/") }

// Kind is the NetcoreTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "netcore", Aliases: []string{"vumi.transports.netcore.NetcoreTransport", "vumi.transports.netcore.netcore.NetcoreTransport"},
		Role: topology.RoleTransport, Summary: "Netcore SMS (inbound over HTTP only)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				t, err := transport.New(deps, spec, &cfg.Config)
				if err != nil {
					return err
				}
				defer t.Close()
				return (&handler{cfg: cfg, t: t}).run(ctx)
			}), nil
		},
	}
}

type handler struct {
	cfg *Config
	t   *transport.Transport
}

func (h *handler) run(ctx context.Context) error {
	ln, err := net.Listen("tcp", h.cfg.addr)
	if err != nil {
		_ = h.t.Status(ctx, "http", schemas.StatusDown, "listen_failed", err.Error(), nil)
		return fmt.Errorf("netcore: listen on %s: %w", h.cfg.addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(h.serve), ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	h.t.Log.Info("netcore transport listening", "addr", ln.Addr().String(), "web_path", h.cfg.WebPath)
	_ = h.t.Status(ctx, "http", schemas.StatusOK, "listening", "Listening on "+ln.Addr().String(), nil)
	err = h.t.Run(ctx, transport.HandlerFunc(h.outbound))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	<-served
	return err
}

// ErrOutbound is why outbound messages fail: Netcore takes none.
var ErrOutbound = errors.New("netcore: outbound messages are not supported (Netcore is inbound only)")

func (h *handler) outbound(ctx context.Context, m *schemas.UserMessage) error {
	if err := h.t.PublishNack(ctx, m.MessageID, "Outbound messages are not supported by the Netcore transport"); err != nil {
		return err
	}
	return worker.Permanent(ErrOutbound)
}

func reply(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	path := trim(r.URL.Path)
	switch {
	case path == trim(h.cfg.HealthPath) && r.Method == http.MethodGet:
		reply(w, http.StatusOK, "OK")
		return
	case path != trim(h.cfg.WebPath) && !strings.HasPrefix(path, trim(h.cfg.WebPath)+"/"):
		http.NotFound(w, r)
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", "POST")
		reply(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		reply(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return
	}
	in, err := ParseInbound(r.Form, *h.cfg.RejectNone)
	if err != nil {
		h.t.Log.Info("bad inbound request", "error", err)
		reply(w, http.StatusBadRequest, err.Error())
		return
	}
	m := &schemas.UserMessage{
		Content: schemas.String(in.Content), FromAddr: schemas.String(in.FromAddr), ToAddr: schemas.String(in.ToAddr),
		TransportType:     schemas.String(schemas.TransportSMS),
		TransportMetadata: schemas.Metadata{"netcore": map[string]any{"circle": in.Circle, "source": in.Source}},
	}
	ctx, cancel := h.cfg.PublishContext(r.Context())
	defer cancel()
	if err := h.t.PublishMessage(ctx, m); err != nil {
		h.t.Log.Error("inbound message not published", "error", err)
		reply(w, http.StatusServiceUnavailable, "message not accepted, try again")
		return
	}
	reply(w, http.StatusOK, m.MessageID)
}

// Inbound is one message from Netcore.
type Inbound struct {
	ToAddr, FromAddr, Content, Circle, Source string
}

// Expected are Netcore's parameters: exactly these, each with a value.
var Expected = []string{"to_addr", "from_addr", "content", "circle", "source"}

// ParseInbound checks Netcore's parameters the way Vumi did and returns
// the message; errors carry Vumi's 400 texts. A from_addr without a
// leading 0 gets one (normalisation middleware handles national numbers).
func ParseInbound(args url.Values, rejectNone bool) (*Inbound, error) {
	received := make([]string, 0, len(args))
	for k := range args {
		received = append(received, k)
	}
	sort.Strings(received)
	same := len(received) == len(Expected)
	for _, k := range Expected {
		if _, ok := args[k]; !ok {
			same = false
		}
	}
	if !same {
		return nil, fmt.Errorf("Not all expected parameters received. Only allowing: %s, received: %s", pyList(Expected), pyList(received))
	}
	values := make([]string, 0, len(Expected))
	empty := false
	for _, k := range received {
		v := args.Get(k)
		values = append(values, v)
		empty = empty || v == ""
	}
	if empty {
		sort.Strings(values)
		return nil, fmt.Errorf("Not all parameters have values. Received: %s", pyList(values))
	}
	in := &Inbound{ToAddr: args.Get("to_addr"), FromAddr: args.Get("from_addr"), Content: args.Get("content"),
		Circle: args.Get("circle"), Source: args.Get("source")}
	if rejectNone && in.Content == "None" {
		return nil, errors.New(`"None" string literal not allowed for content parameter.`)
	}
	if !strings.HasPrefix(in.FromAddr, "0") {
		in.FromAddr = "0" + in.FromAddr
	}
	return in, nil
}

// pyList formats strings as a Python list, as Vumi's messages show them.
func pyList(items []string) string {
	parts := make([]string, len(items))
	for i, s := range items {
		parts[i] = pyRepr(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func pyRepr(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, c := range s {
		switch {
		case c == '\\' || c == '\'':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
