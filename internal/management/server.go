package management

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/topology"
)

// Options configure the management plane of a process.
type Options struct {
	// Logs is the process's log buffer (installed with Tee), for the logs
	// endpoints; nil serves no logs.
	Logs *LogBuffer
	// Serve serves the API and dashboard at management.addr; a process
	// that does not serve still runs the control topic's workers.
	Serve bool
	// Listening, if set, is told the address the API listens on.
	Listening func(net.Addr)
	// Reconciled, if set, is the reconciler's period (tests); default 5s.
	ReconcileInterval time.Duration
}

// Hook returns the RunOptions.OnRunning hook of a process with a
// management section: it follows the control topic and runs its channels
// and routers, and (with Serve) serves the API and dashboard; it returns
// when ctx is done.
func Hook(opts Options) func(ctx context.Context, rt *topology.Runtime) error {
	return func(ctx context.Context, rt *topology.Runtime) error {
		return run(ctx, rt, opts)
	}
}

// Server is the management API and dashboard of one process.
type Server struct {
	rt      *topology.Runtime
	cfg     *topology.ManagementConfig
	control *Control
	rec     *Reconciler
	mon     *Monitor
	logs    *LogBuffer
	prod    *kgo.Client
	log     *slog.Logger
	started time.Time
}

func run(ctx context.Context, rt *topology.Runtime, opts Options) error {
	mc := &rt.Config.Management
	control, err := OpenControl(ctx, rt)
	if err != nil {
		return fmt.Errorf("management: %w", err)
	}
	defer control.Close()
	rec := NewReconciler(rt, control)
	if opts.ReconcileInterval > 0 {
		rec.Interval = opts.ReconcileInterval
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec.Run(ctx)
	}()
	defer func() { <-done }()
	if !opts.Serve || mc.Addr == "" {
		<-ctx.Done()
		return nil
	}
	s := &Server{rt: rt, cfg: mc, control: control, rec: rec, logs: opts.Logs, log: rt.Logger.With("component", "management"), started: time.Now()}
	s.mon = NewMonitor(rt.Deps, mc.Lookback, mc.SampleInterval, s.transportNames, s.log)
	s.prod, err = kgo.NewClient(append(rt.Deps.KafkaOpts("management"), kgo.ProducerLinger(0))...)
	if err != nil {
		return fmt.Errorf("management: kafka client: %w", err)
	}
	defer s.prod.Close()
	go func() {
		if err := s.mon.Run(ctx); err != nil {
			s.log.Error("dashboard monitor stopped", "error", err)
		}
	}()
	ln, err := net.Listen("tcp", mc.Addr)
	if err != nil {
		// As with /metrics, the workers matter more than their console
		// (the default port may be taken on a developer's machine): they
		// run on, and the control topic is still followed.
		s.log.Error("not serving the management API and dashboard", "addr", mc.Addr, "error", err)
		<-ctx.Done()
		return nil
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		// Streams end with the process.
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	s.log.Info("management API listening", "addr", ln.Addr().String(), "dashboard", mc.DashboardOn())
	if opts.Listening != nil {
		opts.Listening(ln.Addr())
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("management API: %w", err)
	}
	return nil
}

// Handler is the API and dashboard, behind auth.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	return s.auth(mux)
}

// auth accepts the configured bearer token or basic credentials, compared
// in constant time; anything else is 401.
func (s *Server) auth(next http.Handler) http.Handler {
	eq := func(a, b string) bool {
		// Hash first so that the comparison does not leak the length.
		ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
		return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := false
		h := r.Header.Get("Authorization")
		if tok, found := strings.CutPrefix(h, "Bearer "); found && s.cfg.BearerToken != "" {
			ok = eq(strings.TrimSpace(tok), s.cfg.BearerToken)
		} else if u, p, found := r.BasicAuth(); found && s.cfg.Username != "" {
			// Both compared, always, so that timing says nothing about
			// which one was wrong.
			okU, okP := eq(u, s.cfg.Username), eq(p, s.cfg.Password)
			ok = okU && okP
		}
		if !ok {
			if s.cfg.Username != "" {
				w.Header().Add("WWW-Authenticate", `Basic realm="vumi management", charset="UTF-8"`)
			}
			if s.cfg.BearerToken != "" {
				w.Header().Add("WWW-Authenticate", `Bearer realm="vumi management"`)
			}
			writeError(w, http.StatusUnauthorized, "authentication required (bearer token or basic auth)", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// envelope is Junebug's response shape.
type envelope struct {
	Status      int    `json:"status"`
	Code        string `json:"code"`
	Description string `json:"description"`
	Result      any    `json:"result"`
}

func writeJSON(w http.ResponseWriter, status int, description string, result any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(envelope{Status: status, Code: http.StatusText(status), Description: description, Result: result})
}

func writeError(w http.ResponseWriter, status int, description string, errs []string) {
	var result any = map[string]any{}
	if len(errs) > 0 {
		result = map[string]any{"errors": errs}
	}
	writeJSON(w, status, description, result)
}
