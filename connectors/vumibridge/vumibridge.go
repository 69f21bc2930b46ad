// Package vumibridge is Vumi's Vumi Bridge transport: it bridges this
// installation and a Vumi Go conversation through Vumi Go's HTTP API.
// Sends go out as PUT <base_url>/<conversation_key>/messages.json (HTTP
// Basic auth: account_key and access_token); the id Vumi Go gives the
// message is mapped back to ours for message_life_time seconds, in a table
// every instance shares, so that Vumi Go's events find their message.
//
// Messages and events come in one of two ways: the streaming client
// (vumi_bridge_client, Vumi's GoConversationClientTransport) keeps GET
// requests on messages.json and events.json open and reads one JSON
// object per line, reconnecting with initial_delay, factor, jitter,
// max_reconnect_delay and max_retries; the push server (vumi_bridge,
// Vumi's GoConversationTransport for the non-streaming API) takes PUT or
// POST requests on <web_path>/messages.json and <web_path>/events.json.
package vumibridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/connectors/tcpclient"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

const (
	modePush   = "push"
	modeStream = "stream"

	defaultPushURL   = "https://go.vumi.org/api/v1/go/http_api_nostream/"
	defaultStreamURL = "https://go.vumi.org/api/v1/go/http_api/"
)

// Config is Vumi's VumiBridgeTransportConfig.
type Config struct {
	transport.Config `yaml:",inline"`
	// AccountKey, ConversationKey and AccessToken identify the Vumi Go
	// conversation. Required.
	AccountKey      string `yaml:"account_key"`
	ConversationKey string `yaml:"conversation_key"`
	AccessToken     string `yaml:"access_token"`
	// BaseURL of the HTTP API; default
	// https://go.vumi.org/api/v1/go/http_api_nostream/ (push) or
	// https://go.vumi.org/api/v1/go/http_api/ (streaming client).
	BaseURL string `yaml:"base_url"`
	// MessageLifeTime is how long, in seconds, a sent message's Vumi Go id
	// is remembered for its events. Default 172800 (48 hours).
	MessageLifeTime int `yaml:"message_life_time"`
	// RedisManager is accepted for compatibility with Vumi configs and
	// ignored: message ids live in a table.
	RedisManager map[string]any `yaml:"redis_manager"`
	// Reconnecting the streams (streaming client): the first delay is
	// InitialDelay (default 0.1 s); each later one is the previous times
	// Factor (default e), capped at MaxReconnectDelay (default 3600 s), and
	// varied by Jitter (a fraction, default 0.11962656472). After
	// MaxRetries consecutive failures (default: no limit) it gives up.
	MaxReconnectDelay int      `yaml:"max_reconnect_delay"`
	MaxRetries        *int     `yaml:"max_retries"`
	InitialDelay      float64  `yaml:"initial_delay"`
	Factor            float64  `yaml:"factor"`
	Jitter            *float64 `yaml:"jitter"`
	// WebPort, WebPath and HealthPath are the push server's: it listens
	// on WebPort (default 0: any free port) for <web_path>/messages.json
	// and <web_path>/events.json, and answers health checks on
	// HealthPath (default "health"). WebPath is required for the push
	// server.
	WebPort    int    `yaml:"web_port"`
	WebPath    string `yaml:"web_path"`
	HealthPath string `yaml:"health_path"`
	// WebInterface is the address the push server listens on (an
	// extension; default all interfaces).
	WebInterface string `yaml:"web_interface"`

	mode string
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if err := tcpclient.Required([2]string{"account_key", c.AccountKey}, [2]string{"conversation_key", c.ConversationKey}, [2]string{"access_token", c.AccessToken}); err != nil {
		return err
	}
	if strings.ContainsAny(c.ConversationKey, "/?#") {
		return fmt.Errorf("key conversation_key: %q may not contain '/', '?' or '#'", c.ConversationKey)
	}
	if c.BaseURL == "" {
		c.BaseURL = defaultPushURL
		if c.mode == modeStream {
			c.BaseURL = defaultStreamURL
		}
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("key base_url: %q is not an http(s) URL", c.BaseURL)
	}
	if c.MessageLifeTime == 0 {
		c.MessageLifeTime = 48 * 60 * 60
	}
	if c.MessageLifeTime < 1 {
		return fmt.Errorf("key message_life_time: must be at least 1 second, got %d", c.MessageLifeTime)
	}
	if c.MaxReconnectDelay == 0 {
		c.MaxReconnectDelay = 3600
	}
	if c.InitialDelay == 0 {
		c.InitialDelay = 0.1
	}
	if c.Factor == 0 {
		c.Factor = math.E
	}
	if c.Jitter == nil {
		j := 0.11962656472
		c.Jitter = &j
	}
	switch {
	case c.MaxReconnectDelay < 0:
		return fmt.Errorf("key max_reconnect_delay: must be positive, got %d", c.MaxReconnectDelay)
	case c.InitialDelay < 0:
		return fmt.Errorf("key initial_delay: must be positive, got %v", c.InitialDelay)
	case c.Factor < 1:
		return fmt.Errorf("key factor: must be at least 1, got %v", c.Factor)
	case *c.Jitter < 0 || *c.Jitter > 1:
		return fmt.Errorf("key jitter: must be between 0 and 1, got %v", *c.Jitter)
	case c.MaxRetries != nil && *c.MaxRetries < 0:
		return fmt.Errorf("key max_retries: must be positive, got %d", *c.MaxRetries)
	}
	if c.HealthPath == "" {
		c.HealthPath = "health"
	}
	if c.mode == modePush {
		if c.WebPath == "" {
			return errors.New("key web_path: is required")
		}
		if c.WebPort < 0 || c.WebPort > 65535 {
			return fmt.Errorf("key web_port: must be between 0 and 65535, got %d", c.WebPort)
		}
		if strings.Trim(c.WebPath, "/") == strings.Trim(c.HealthPath, "/") {
			return errors.New("key health_path: must differ from web_path")
		}
	} else if c.WebPath != "" || c.WebPort != 0 || c.WebInterface != "" {
		return errors.New("key web_path: the streaming client takes no web server keys (web_port, web_path, web_interface); use vumi_bridge for Vumi Go pushing to a web server")
	}
	return nil
}

// idsTopic is the table of Vumi Go message ids (not prefixed).
func idsTopic(transportName string) string { return transportName + ".vumi_go_message_ids" }

// IO implements topology.WorkerConfig: the transport's topics and its
// message id table.
func (c *Config) IO(name string) topology.IO {
	io := c.Config.IO(name)
	s := ussdsession.TableStream(idsTopic(c.TransportName))
	io.Consumes = append(io.Consumes, s)
	io.Produces = append(io.Produces, s)
	return io
}

// Kinds returns the push server and streaming client kinds.
func Kinds() []*topology.Kind {
	k := func(name, mode, summary string, aliases ...string) *topology.Kind {
		return &topology.Kind{
			Name: name, Aliases: aliases, Role: topology.RoleTransport, Summary: summary,
			NewConfig: func() topology.WorkerConfig { return &Config{mode: mode} },
			Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
				return &Transport{deps: deps, spec: spec, cfg: spec.Config.(*Config)}, nil
			},
		}
	}
	return []*topology.Kind{
		k("vumi_bridge", modePush, "Vumi Go conversation over its HTTP API: Vumi Go pushes messages and events to a web server; sends are PUT",
			"vumi.transports.vumi_bridge.GoConversationTransport", "vumi.transports.vumi_bridge.vumi_bridge.GoConversationTransport",
			"vumi.transports.vumi_bridge.GoConversationServerTransport", "vumi.transports.vumi_bridge.vumi_bridge.GoConversationServerTransport"),
		k("vumi_bridge_client", modeStream, "Vumi Go conversation over its streaming HTTP API: messages and events streamed in with reconnects; sends are PUT",
			"vumi.transports.vumi_bridge.GoConversationClientTransport", "vumi.transports.vumi_bridge.vumi_bridge.GoConversationClientTransport"),
	}
}

// Timings and limits that are not Vumi config; tests shorten them.
var (
	httpTimeout = 30 * time.Second
	idGrace     = 3 * time.Second
)

const (
	maxBody   = 1 << 20
	lanes     = 8
	laneDepth = 4
)

// Transport is the Vumi Bridge worker.
type Transport struct {
	deps *topology.Deps
	spec *topology.WorkerSpec
	cfg  *Config

	t      *transport.Transport
	log    *slog.Logger
	ids    *ussdsession.Store
	client *http.Client
	auth   string

	smu  sync.Mutex
	last map[string]string // component -> last published status+type
}

// Run serves until ctx ends.
func (tr *Transport) Run(ctx context.Context) error {
	t, err := transport.New(tr.deps, tr.spec, &tr.cfg.Config)
	if err != nil {
		return err
	}
	defer t.Close()
	tr.t, tr.log = t, t.Log
	tr.client = &http.Client{Timeout: httpTimeout}
	tr.last = map[string]string{}
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.SetBasicAuth(tr.cfg.AccountKey, tr.cfg.AccessToken)
	tr.auth = req.Header.Get("Authorization")
	tr.ids, err = ussdsession.OpenTable(t.Base, idsTopic(tr.cfg.TransportName), time.Duration(tr.cfg.MessageLifeTime)*time.Second)
	if err != nil {
		return err
	}
	stopIDs, err := tcpclient.StartTable(ctx, tr.ids, "message id table")
	if stopIDs == nil {
		return err
	}
	defer stopIDs()
	inCtx, stopIn := context.WithCancel(context.WithoutCancel(ctx))
	var inWG sync.WaitGroup
	var srv *http.Server
	var serveErr chan error
	if tr.cfg.mode == modeStream {
		for _, s := range []stream{{"messages.json", "messages", tr.inboundMessage}, {"events.json", "events", tr.inboundEvent}} {
			inWG.Add(1)
			go func() {
				defer inWG.Done()
				tr.runStream(inCtx, s)
			}()
		}
	} else {
		srv, serveErr, err = tr.serve(ctx)
		if err != nil {
			stopIn()
			return err
		}
	}
	runErr := t.Run(ctx, transport.HandlerFunc(tr.handleOutbound))
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
		<-serveErr
	}
	stopIn()
	inWG.Wait()
	if err := stopIDs(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// updateStatus publishes a status unless it repeats the component's last
// one (Vumi's StatusEdgeDetector).
func (tr *Transport) updateStatus(ctx context.Context, component string, level schemas.StatusLevel, typ, msg string) {
	tr.smu.Lock()
	key := string(level) + "/" + typ
	if tr.last[component] == key {
		tr.smu.Unlock()
		return
	}
	tr.last[component] = key
	tr.smu.Unlock()
	_ = tr.t.Status(context.WithoutCancel(ctx), component, level, typ, msg, nil)
}

func (tr *Transport) url(path string) string {
	return strings.TrimRight(tr.cfg.BaseURL, "/") + "/" + tr.cfg.ConversationKey + "/" + path
}

// peerName names Vumi Go in log lines.
const peerName = "Vumi Go"

func bg(ctx context.Context) (context.Context, context.CancelFunc) {
	return tcpclient.PublishContext(ctx)
}

// inboundMessage publishes a message from Vumi Go as it came (Vumi's
// publish_message(**message.payload)), with this transport's name. A
// permanent error means the message cannot be read.
func (tr *Transport) inboundMessage(ctx context.Context, raw []byte) error {
	m, err := schemas.ParseUserMessage(raw)
	if err != nil {
		return worker.Permanent(fmt.Errorf("invalid message from Vumi Go: %w", err))
	}
	m.TransportName = schemas.String(tr.cfg.TransportName)
	return tcpclient.Publish(ctx, tr.log, peerName, "inbound message not published", func(c context.Context) error {
		m2 := *m
		return tr.t.PublishMessage(c, &m2)
	})
}

// inboundEvent publishes an event from Vumi Go about one of our messages:
// user_message_id becomes our id, sent_message_id Vumi Go's.
func (tr *Transport) inboundEvent(ctx context.Context, raw []byte) error {
	e, err := schemas.ParseEvent(raw)
	if err != nil {
		return worker.Permanent(fmt.Errorf("invalid event from Vumi Go: %w", err))
	}
	remote := e.UserMessageID
	local, err := tr.localID(ctx, remote)
	if err != nil {
		return err
	}
	if local == "" {
		return worker.Permanent(fmt.Errorf("event %s for Vumi Go message %q, which is not one of ours (or older than message_life_time %ds)", e.EventID, remote, tr.cfg.MessageLifeTime))
	}
	e.UserMessageID = local
	e.SentMessageID = &remote
	e.TransportName = schemas.String(tr.cfg.TransportName)
	return tcpclient.Publish(ctx, tr.log, peerName, "event not published", func(c context.Context) error {
		e2 := *e
		return tr.t.PublishEvent(c, &e2)
	})
}

// localID finds our id for a Vumi Go message id, giving another
// instance's fresh mapping a moment to arrive.
func (tr *Transport) localID(ctx context.Context, remote string) (string, error) {
	s, err := tcpclient.GetWithGrace(ctx, tr.ids, remote, idGrace)
	return s["message_id"], err
}

// failed logs what could not be handled and publishes it to failures.
func (tr *Transport) failed(ctx context.Context, raw []byte, err error) {
	tr.log.Warn("inbound from Vumi Go not handled", "error", err)
	tcpclient.SendFailure(ctx, tr.t, tr.cfg.TransportName, raw, "", err)
}

// handleOutbound sends a message to Vumi Go (Vumi's
// handle_outbound_message).
func (tr *Transport) handleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	params := map[string]any{
		"to_addr": m.ToAddr, "content": m.Content, "message_id": m.MessageID,
		"in_reply_to": m.InReplyTo, "session_event": m.SessionEvent,
	}
	if m.HelperMetadata != nil {
		params["helper_metadata"] = map[string]any(m.HelperMetadata) // Metadata marshals as text
	}
	body, err := json.Marshal(params)
	if err != nil {
		return tr.t.PublishNack(ctx, m.MessageID, "message cannot be encoded: "+err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, tr.url("messages.json"), bytes.NewReader(body))
	if err != nil {
		return worker.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", tr.auth)
	resp, err := tr.client.Do(req)
	if err != nil {
		tr.updateStatus(ctx, "submitted-to-vumi-go", schemas.StatusDown, "request_failed", "Vumi Go cannot be reached")
		return worker.Temporary(fmt.Errorf("PUT messages.json: %w", err))
	}
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		return worker.Temporary(fmt.Errorf("PUT messages.json: reading the response: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		tr.log.Warn("unexpected status code", "status", resp.StatusCode, "body", string(respBody[:min(len(respBody), 500)]))
		tr.updateStatus(ctx, "submitted-to-vumi-go", schemas.StatusDown, "bad_request", "Message submission rejected by Vumi Go")
		return tr.t.PublishNack(ctx, m.MessageID, fmt.Sprintf("Unexpected status code: %d", resp.StatusCode))
	}
	var remote struct {
		MessageID string `json:"message_id"`
	}
	if err := json.Unmarshal(respBody, &remote); err != nil || remote.MessageID == "" {
		// Sent, but its events cannot be matched.
		tr.log.Error("Vumi Go accepted the message without a message_id in its answer", "message_id", m.MessageID, "body", string(respBody[:min(len(respBody), 500)]))
		tr.updateStatus(ctx, "submitted-to-vumi-go", schemas.StatusOK, "good_request", "Message accepted by Vumi Go")
		return tr.t.PublishAck(ctx, m.MessageID, m.MessageID)
	}
	pctx, cancel := bg(ctx)
	if err := tr.ids.Put(pctx, remote.MessageID, ussdsession.Session{"message_id": m.MessageID}); err != nil {
		tr.log.Error("Vumi Go message id not recorded; its events will not find the message", "message_id", m.MessageID, "error", err)
	}
	cancel()
	tr.updateStatus(ctx, "submitted-to-vumi-go", schemas.StatusOK, "good_request", "Message accepted by Vumi Go")
	return tr.t.PublishAck(ctx, m.MessageID, remote.MessageID)
}
