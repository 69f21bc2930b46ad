// Package opera is Vumi's OperaTransport: SMS through Opera's (Praekelt's
// "dragon") EAPIGateway. Outbound messages are XML-RPC calls of
// EAPIGateway.SendSMS, acked with the Identifier Opera returns; that
// identifier is mapped to the message id in a keyed table (a compacted
// topic read through a goka view, shared by every instance) for
// message_id_lifetime, so that Opera's delivery receipts, posted as XML
// to web_receipt_path, become delivery reports. Inbound messages arrive
// as XML (<bspostevent>) on web_receive_path.
package opera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/httpsend"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// DefaultMessageIDLifetime is a week, as in Vumi.
const DefaultMessageIDLifetime = 7 * 24 * 60 * 60

// Config is the OperaTransport's config.
type Config struct {
	transport.Config `yaml:",inline"`
	// MessageIDLifetime is how long, in seconds, Opera's identifiers are
	// mapped to message ids; receipts arriving later cannot be matched.
	// Default a week.
	MessageIDLifetime int `yaml:"message_id_lifetime"`
	// WebReceiptPath and WebReceivePath are where Opera posts receipts and
	// inbound messages. Required.
	WebReceiptPath string `yaml:"web_receipt_path"`
	WebReceivePath string `yaml:"web_receive_path"`
	// WebPort to listen on (0: any free port). Required.
	WebPort *int `yaml:"web_port"`
	// WebInterface to listen on; default all interfaces.
	WebInterface string `yaml:"web_interface"`
	// URL of Opera's XML-RPC gateway. Required.
	URL string `yaml:"url"`
	// Channel, Password and Service identify the Opera account. Required.
	Channel  string `yaml:"channel"`
	Password string `yaml:"password"`
	Service  string `yaml:"service"`
	// MaxSegments a message may be split into, 1 to 9; default 9.
	MaxSegments int `yaml:"max_segments"`
	// RedisManager is Vumi's Redis config, accepted and ignored: the id
	// map lives in a Kafka table.
	RedisManager map[string]any `yaml:"redis_manager"`
	// Timeout is outbound_timeout: how long, in seconds, one XML-RPC call
	// may take; default 30.
	httpsend.Timeout `yaml:",inline"`
	// Publish is publish_timeout, which bounds, in seconds, publishing what
	// Opera posts; Opera gets a 503 this soon when Kafka is unreachable;
	// default 1.
	httprpc.Publish `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.MessageIDLifetime == 0 {
		c.MessageIDLifetime = DefaultMessageIDLifetime
	}
	if c.MaxSegments == 0 {
		c.MaxSegments = 9
	}
	var errs []error
	if err := c.ValidateBase(); err != nil {
		errs = append(errs, err)
	}
	for _, k := range []struct{ key, v string }{{"web_receipt_path", c.WebReceiptPath}, {"web_receive_path", c.WebReceivePath},
		{"channel", c.Channel}, {"password", c.Password}, {"service", c.Service}} {
		if k.v == "" {
			errs = append(errs, fmt.Errorf("key %s: is required", k.key))
		}
	}
	if err := httpsend.CheckURL("url", c.URL); err != nil {
		errs = append(errs, err)
	}
	if c.WebPort == nil {
		errs = append(errs, errors.New("key web_port: is required"))
	} else if *c.WebPort < 0 || *c.WebPort > 65535 {
		errs = append(errs, fmt.Errorf("key web_port: %d is not a port", *c.WebPort))
	}
	if c.WebReceiptPath != "" && trim(c.WebReceiptPath) == trim(c.WebReceivePath) {
		errs = append(errs, errors.New("key web_receive_path: must differ from web_receipt_path"))
	}
	if c.WebReceivePath != "" && (trim(c.WebReceivePath) == "health" || trim(c.WebReceiptPath) == "health") {
		errs = append(errs, errors.New("key web_receive_path: \"health\" is the health check's path"))
	}
	if c.MessageIDLifetime < 0 {
		errs = append(errs, fmt.Errorf("key message_id_lifetime: must be positive, got %d", c.MessageIDLifetime))
	}
	if c.MaxSegments < 1 || c.MaxSegments > 9 {
		errs = append(errs, fmt.Errorf("key max_segments: must be between 1 and 9, got %d", c.MaxSegments))
	}
	if err := c.ValidateTimeout(); err != nil {
		errs = append(errs, err)
	}
	if err := c.ValidatePublish(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func trim(p string) string { return strings.Trim(p, "/") }

// IDTopic is the table of a transport's Opera identifiers.
func IDTopic(transportName string) string { return transportName + ".opera_message_ids" }

// IO implements topology.WorkerConfig: the transport's topics and its id
// table.
func (c *Config) IO(name string) topology.IO {
	io := c.Config.IO(name)
	s := ussdsession.TableStream(IDTopic(c.TransportName))
	io.Consumes = append(io.Consumes, s)
	io.Produces = append(io.Produces, s)
	return io
}

// Kind is the OperaTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "opera", Aliases: []string{"vumi.transports.opera.OperaTransport", "vumi.transports.opera.opera.OperaTransport"},
		Role: topology.RoleTransport, Summary: "Opera SMS (XML-RPC sends, XML inbound and delivery receipts)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			client := cfg.HTTPClient()
			return topology.WorkerFunc(func(ctx context.Context) error {
				t, err := transport.New(deps, spec, &cfg.Config)
				if err != nil {
					return err
				}
				defer t.Close()
				ids, err := ussdsession.OpenTable(t.Base, IDTopic(cfg.TransportName), time.Duration(cfg.MessageIDLifetime)*time.Second)
				if err != nil {
					return err
				}
				h := &handler{cfg: cfg, t: t, ids: ids, send: httpsend.New("opera", client), now: time.Now}
				return h.run(ctx)
			}), nil
		},
	}
}

type handler struct {
	cfg  *Config
	t    *transport.Transport
	ids  *ussdsession.Store
	send *httpsend.Client
	now  func() time.Time
}

// run loads the id table, then serves Opera's posts and sends outbound
// messages until ctx ends.
func (h *handler) run(ctx context.Context) error {
	if h.cfg.RedisManager != nil {
		h.t.Log.Info("redis_manager is ignored: Opera's message ids are kept in a Kafka table", "table", IDTopic(h.cfg.TransportName))
	}
	tableCtx, stopTable := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTable()
	tableErr := make(chan error, 1)
	go func() { tableErr <- h.ids.Run(tableCtx) }()
	waitCtx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	loaded := make(chan error, 1)
	go func() { loaded <- h.ids.Wait(waitCtx) }()
	select {
	case <-loaded:
	case err := <-tableErr:
		if err == nil {
			err = errors.New("opera: id table stopped before loading")
		}
		return err
	}
	if ctx.Err() != nil {
		stopTable()
		<-tableErr
		return nil
	}

	addr := net.JoinHostPort(h.cfg.WebInterface, strconv.Itoa(*h.cfg.WebPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = h.t.Status(ctx, "http", schemas.StatusDown, "listen_failed", err.Error(), nil)
		return fmt.Errorf("opera: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(h.serve), ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	h.t.Log.Info("opera transport listening", "addr", ln.Addr().String())
	// Should the table stop on its own, stop the transport too, so that
	// the supervisor restarts the worker with a fresh one.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var tableFailed error
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case err := <-tableErr:
			if runCtx.Err() == nil {
				tableFailed = fmt.Errorf("opera: id table stopped: %v", err)
				h.t.Log.Error("id table stopped; restarting the transport", "error", err)
				stopRun()
			}
			tableErr <- err
		case <-runCtx.Done():
		}
	}()
	err = h.t.Run(runCtx, transport.HandlerFunc(h.outbound))
	stopRun()
	<-watched
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer done()
	_ = srv.Shutdown(shutdownCtx)
	<-served
	stopTable()
	select {
	case <-tableErr:
	case <-time.After(10 * time.Second):
	}
	if err == nil && tableFailed != nil && ctx.Err() == nil {
		err = tableFailed
	}
	return err
}

func reply(w http.ResponseWriter, code int, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

const textPlain = "text/plain; charset=utf8"

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	path := trim(r.URL.Path)
	receipt, receive := path == trim(h.cfg.WebReceiptPath), path == trim(h.cfg.WebReceivePath)
	switch {
	case path == "health":
		reply(w, http.StatusOK, textPlain, "OK")
		return
	case !receipt && !receive:
		http.NotFound(w, r)
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", "POST")
		reply(w, http.StatusMethodNotAllowed, textPlain, "method not allowed")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		reply(w, http.StatusBadRequest, textPlain, "invalid request: "+err.Error())
		return
	}
	doc, err := XMLBody(body)
	if err == nil {
		if receipt {
			err = h.receipts(r.Context(), doc)
		} else {
			err = h.receive(r.Context(), doc)
		}
	}
	var bad *BadRequestError
	switch {
	case errors.As(err, &bad):
		h.t.Log.Info("bad request from Opera", "path", r.URL.Path, "error", err)
		reply(w, http.StatusBadRequest, textPlain, bad.Msg)
	case err != nil:
		h.t.Log.Error("post from Opera not published", "path", r.URL.Path, "error", err)
		reply(w, http.StatusServiceUnavailable, textPlain, "not accepted, try again")
	case receipt:
		reply(w, http.StatusOK, textPlain, "")
	default:
		// Vumi echoed the message back.
		reply(w, http.StatusOK, "text/xml; charset=utf8", string(doc))
	}
}

// receive publishes an inbound message.
func (h *handler) receive(ctx context.Context, doc []byte) error {
	f, err := ParsePostEvent(doc)
	if err != nil {
		return err
	}
	m := &schemas.UserMessage{
		MessageID: f["MessageID"], Content: schemas.String(f["Text"]), TransportType: schemas.String(schemas.TransportSMS),
		ToAddr:            schemas.String(middleware.NormalizeMSISDN(f["Local"], "27")),
		FromAddr:          schemas.String(middleware.NormalizeMSISDN(f["Remote"], "27")),
		TransportMetadata: schemas.Metadata{"provider": f["MobileNetwork"]},
	}
	if strings.TrimSpace(m.MessageID) == "" {
		return badRequest("Empty field: MessageID")
	}
	ctx, cancel := h.cfg.PublishContext(ctx)
	defer cancel()
	return h.t.PublishMessage(ctx, m)
}

// receipts publishes a delivery report for every receipt whose reference
// maps to a message id; the others are logged and counted.
func (h *handler) receipts(ctx context.Context, doc []byte) error {
	rs, err := ParseReceipts(doc)
	if err != nil {
		return err
	}
	for _, rc := range rs {
		ref := strings.TrimSpace(rc.Reference)
		id, err := h.lookup(ctx, ref)
		if err != nil {
			return err
		}
		if id == "" {
			h.t.Log.Warn("receipt for an unknown or expired Opera identifier dropped", "reference", ref, "status", rc.Status,
				"message_id_lifetime", h.cfg.MessageIDLifetime)
			h.t.Count("receipts_unmatched", 1)
			continue
		}
		meta := schemas.Metadata{"opera": map[string]any{"msgid": rc.MsgID, "reference": ref, "msisdn": rc.MSISDN,
			"status": rc.Status, "timestamp": rc.Timestamp, "billed": rc.Billed}}
		pctx, cancel := h.cfg.PublishContext(ctx)
		err = h.t.PublishDeliveryReport(pctx, id, schemas.DeliveryStatus(DeliveryStatus(rc.Status)), meta)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// lookupWait bounds how long a receipt waits for its identifier to show
// up in this instance's copy of the table, when another instance sent the
// message moments ago and the copy has not caught up yet.
const lookupWait = 3 * time.Second

// lookup returns the message id of an Opera identifier ("" when unknown
// or expired).
func (h *handler) lookup(ctx context.Context, ref string) (string, error) {
	deadline := time.Now().Add(lookupWait)
	for {
		entry, err := h.ids.Get(ref)
		if err != nil {
			return "", err
		}
		if id := entry["message_id"]; id != "" || time.Now().After(deadline) {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Time formats accepted for transport_metadata.deliver_at and expire_at:
// Vumi's JSON datetime, ISO 8601 and XML-RPC's.
var timeFormats = []string{"2006-01-02 15:04:05.999999", time.RFC3339Nano, "2006-01-02T15:04:05.999999", TimeFormat}

func metaTime(meta schemas.Metadata, key string) (time.Time, bool, error) {
	v, ok := meta[key]
	if !ok || v == nil {
		return time.Time{}, false, nil
	}
	s, isString := v.(string)
	if isString {
		for _, f := range timeFormats {
			if t, err := time.Parse(f, s); err == nil {
				return t, true, nil
			}
		}
	}
	return time.Time{}, false, fmt.Errorf("transport_metadata.%s: %v is not a time (want e.g. \"2011-01-01 00:00:00\")", key, v)
}

func metaString(meta schemas.Metadata, key, def string) string {
	if v, ok := meta[key]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return def
}

// Payload is the EAPIGateway.SendSMS struct for a message.
func (h *handler) Payload(m *schemas.UserMessage) (map[string]any, error) {
	delivery, ok, err := metaTime(m.TransportMetadata, "deliver_at")
	if err != nil {
		return nil, err
	}
	if !ok {
		delivery = h.now().UTC()
	}
	expiry, ok, err := metaTime(m.TransportMetadata, "expire_at")
	if err != nil {
		return nil, err
	}
	if !ok {
		expiry = delivery.Add(24 * time.Hour)
	}
	var text any = m.Text()
	for _, c := range m.Text() {
		if c > 127 {
			// Opera takes non-ASCII text as UTF-8 in base64.
			text = Binary(m.Text())
			break
		}
	}
	return map[string]any{
		"Service": h.cfg.Service, "Password": h.cfg.Password, "Channel": h.cfg.Channel,
		"Numbers": m.To(), "SMSText": text, "Delivery": DateTime(delivery), "Expiry": DateTime(expiry),
		"Priority": metaString(m.TransportMetadata, "priority", "standard"), "Receipt": metaString(m.TransportMetadata, "receipt", "Y"),
		"MaxSegments": h.cfg.MaxSegments,
	}, nil
}

// nackFail nacks a message and returns err for the failures topic.
func (h *handler) nackFail(ctx context.Context, m *schemas.UserMessage, reason string, err error) error {
	if perr := h.t.PublishNack(ctx, m.MessageID, reason); perr != nil {
		return perr
	}
	return err
}

// outbound sends a message with EAPIGateway.SendSMS. An XML-RPC fault is
// a temporary failure (Opera misbehaving; the failure worker retries); an
// HTTP error status is nacked and a permanent failure; an unreadable
// answer is nacked and a failure of unspecified kind, as in Vumi.
func (h *handler) outbound(ctx context.Context, m *schemas.UserMessage) error {
	if !utf8.ValidString(m.Text()) {
		return h.nackFail(ctx, m, "content is not valid UTF-8", worker.Permanent(errors.New("opera: content is not valid UTF-8")))
	}
	payload, err := h.Payload(m)
	if err != nil {
		return h.nackFail(ctx, m, err.Error(), worker.Permanent(fmt.Errorf("opera: %w", err)))
	}
	call, err := EncodeCall("EAPIGateway.SendSMS", payload)
	if err != nil {
		return h.nackFail(ctx, m, err.Error(), worker.Permanent(fmt.Errorf("opera: %w", err)))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, strings.NewReader(string(call)))
	if err != nil {
		return worker.Permanent(fmt.Errorf("opera: build request: %w", err))
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "Vumi Opera Transport")
	resp, err := h.send.Do(ctx, h.t, req)
	if err != nil {
		return err
	}
	if resp.Status != http.StatusOK {
		reason := fmt.Sprintf("%d %s", resp.Status, http.StatusText(resp.Status))
		return h.nackFail(ctx, m, reason, worker.Permanent(fmt.Errorf("opera: %s answered %s", httpsend.Public(req.URL), reason)))
	}
	result, err := DecodeResponse(resp.Body)
	var fault *Fault
	if errors.As(err, &fault) {
		h.send.Status(ctx, h.t, schemas.StatusDegraded, "xmlrpc_fault", fault.Error())
		return worker.Temporary(fmt.Errorf("opera: %w", fault))
	}
	if err == nil && strings.TrimSpace(result["Identifier"]) == "" {
		err = fmt.Errorf("%w: no Identifier", ErrResponse)
	}
	if err != nil {
		return h.nackFail(ctx, m, err.Error(), fmt.Errorf("opera: %w", err))
	}
	ident := strings.TrimSpace(result["Identifier"])
	// The message is sent: a failure to record its identifier loses its
	// receipts, but must not make it be sent again.
	if err := h.ids.Put(ctx, ident, ussdsession.Session{"message_id": m.MessageID}); err != nil {
		h.t.Log.Error("Opera identifier not recorded; its receipts will not be matched", "identifier", ident, "message_id", m.MessageID, "error", err)
	}
	return h.t.PublishAck(ctx, m.MessageID, ident)
}
