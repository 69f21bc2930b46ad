package smsc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
	"github.com/vumi-kafka/vumi/internal/endpoint"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the smsc worker's config: the simulator runs inside a
// deployment (the embedded demo) like any worker.
type Config struct {
	// TwistedEndpoint is where SMPP clients connect; default
	// "tcp:port=2775:interface=127.0.0.1".
	TwistedEndpoint string `yaml:"twisted_endpoint"`
	// HTTPEndpoint serves the HTTP API; default
	// "tcp:port=8775:interface=127.0.0.1"; "none" disables it.
	HTTPEndpoint string `yaml:"http_endpoint"`
	// Credentials maps system_id to password; empty accepts any bind.
	Credentials map[string]string `yaml:"credentials"`
	// ReceiptDelay before delivery receipts; default 0.
	ReceiptDelay time.Duration `yaml:"receipt_delay"`
	// ReceiptStatus of receipts, e.g. DELIVRD (default), UNDELIV, REJECTD.
	ReceiptStatus string `yaml:"receipt_status"`
	// ReceiptTLVs adds receipted_message_id and message_state; default false.
	ReceiptTLVs bool `yaml:"receipt_tlvs"`
	// KeepMessages is how many accepted messages the HTTP API's
	// GET /messages lists (the most recent); default 10000. A simulator
	// left running must not keep every message it was sent.
	KeepMessages int `yaml:"keep_messages"`

	listen, http string
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.TwistedEndpoint == "" {
		c.TwistedEndpoint = "tcp:port=2775:interface=127.0.0.1"
	}
	addr, err := endpoint.Server(c.TwistedEndpoint)
	if err != nil {
		return fmt.Errorf("key twisted_endpoint: %w", err)
	}
	c.listen = addr
	if c.HTTPEndpoint == "" {
		c.HTTPEndpoint = "tcp:port=8775:interface=127.0.0.1"
	}
	if c.HTTPEndpoint != "none" {
		if c.http, err = endpoint.Server(c.HTTPEndpoint); err != nil {
			return fmt.Errorf("key http_endpoint: %w", err)
		}
	}
	if c.KeepMessages < 0 {
		return errors.New("key keep_messages: must not be negative")
	}
	if c.KeepMessages == 0 {
		c.KeepMessages = 10000
	}
	if c.ReceiptDelay < 0 {
		return errors.New("key receipt_delay: must not be negative")
	}
	if c.ReceiptStatus != "" && stateOf(c.ReceiptStatus) == 7 && c.ReceiptStatus != "UNKNOWN" {
		return fmt.Errorf("key receipt_status: %q is not DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN, REJECTD or ENROUTE", c.ReceiptStatus)
	}
	for id, pw := range c.Credentials {
		if len(id) > pdu.MaxSystemID-1 || len(pw) > pdu.MaxPassword-1 {
			return fmt.Errorf("key credentials.%s: system_id at most 15 and password at most 8 characters", id)
		}
	}
	return nil
}

// IO implements topology.WorkerConfig: the simulator touches no topic.
func (c *Config) IO(string) topology.IO { return topology.IO{} }

// Kind is the smsc worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "smsc", Role: topology.RoleSink,
		Summary:   "SMSC simulator: an SMPP server with an HTTP API to inject messages and misbehave",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				return Serve(ctx, cfg, Options{
					Credentials: cfg.Credentials, ReceiptDelay: cfg.ReceiptDelay, ReceiptStatus: cfg.ReceiptStatus,
					ReceiptTLVs: cfg.ReceiptTLVs, KeepSubmitted: cfg.KeepMessages, Logger: deps.WorkerLogger(spec.Name),
				})
			}), nil
		},
	}
}

// Serve runs a simulator with its HTTP API until ctx is cancelled.
func Serve(ctx context.Context, cfg *Config, opts Options) error {
	s, err := Listen(cfg.listen, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	opts.Logger.Info("SMSC simulator listening", "smpp", s.Addr())
	if cfg.http == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", cfg.http)
	if err != nil {
		return fmt.Errorf("smsc: http: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	opts.Logger.Info("SMSC simulator HTTP API listening", "http", ln.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
