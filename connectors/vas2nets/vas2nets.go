// Package vas2nets is Vumi's Vas2NetsTransport: SMS through Vas2Nets.
// Vas2Nets posts inbound messages to web_receive_path and delivery
// receipts to web_receipt_path; outbound messages are form posts to url,
// acked with the id in the response's X-Nth-Smsid header (header). Message
// text is checked against Vas2Nets' character set before sending.
package vas2nets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/connectors/httpsend"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the Vas2NetsTransport's config.
type Config struct {
	transport.Config `yaml:",inline"`
	// URL outbound messages are posted to. Required.
	URL string `yaml:"url"`
	// Username, Password, Owner and Service identify the account.
	// Required.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	Owner    string `yaml:"owner"`
	Service  string `yaml:"service"`
	// Subservice, when set, is sent for every message instead of the
	// inbound keyword in transport_metadata.keyword.
	Subservice *string `yaml:"subservice"`
	// Header of the send response carrying Vas2Nets' message id; default
	// X-Nth-Smsid.
	Header string `yaml:"header"`
	// WebPort to listen on for inbound messages and receipts. Required
	// (0: any free port).
	WebPort *int `yaml:"web_port"`
	// WebInterface to listen on; default all interfaces.
	WebInterface string `yaml:"web_interface"`
	// WebReceivePath and WebReceiptPath are the paths of inbound messages
	// and of delivery receipts. Required.
	WebReceivePath string `yaml:"web_receive_path"`
	WebReceiptPath string `yaml:"web_receipt_path"`
	// WebHealthPath answers health checks; default "health".
	WebHealthPath string `yaml:"web_health_path"`
	// Timeout is outbound_timeout: how long, in seconds, one outbound
	// request may take; default 30.
	httpsend.Timeout `yaml:",inline"`
	// Publish is publish_timeout, which bounds, in seconds, publishing an
	// inbound message or receipt: when Kafka is unreachable Vas2Nets gets a
	// 503 this soon; default 1.
	httprpc.Publish `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.Header == "" {
		c.Header = "X-Nth-Smsid"
	}
	if c.WebHealthPath == "" {
		c.WebHealthPath = "health"
	}
	var errs []error
	if err := c.ValidateBase(); err != nil {
		errs = append(errs, err)
	}
	if err := httpsend.CheckURL("url", c.URL); err != nil {
		errs = append(errs, err)
	}
	for _, k := range []struct{ key, v string }{{"username", c.Username}, {"password", c.Password}, {"owner", c.Owner},
		{"service", c.Service}, {"web_receive_path", c.WebReceivePath}, {"web_receipt_path", c.WebReceiptPath}} {
		if k.v == "" {
			errs = append(errs, fmt.Errorf("key %s: is required", k.key))
		}
	}
	if c.WebPort == nil {
		errs = append(errs, errors.New("key web_port: is required"))
	} else if *c.WebPort < 0 || *c.WebPort > 65535 {
		errs = append(errs, fmt.Errorf("key web_port: %d is not a port", *c.WebPort))
	}
	if c.WebReceivePath != "" && trim(c.WebReceivePath) == trim(c.WebReceiptPath) {
		errs = append(errs, errors.New("key web_receipt_path: must differ from web_receive_path"))
	}
	if err := c.ValidateTimeout(); err != nil {
		errs = append(errs, err)
	}
	if err := c.ValidatePublish(); err != nil {
		errs = append(errs, err)
	}
	if trim(c.WebHealthPath) == trim(c.WebReceivePath) || trim(c.WebHealthPath) == trim(c.WebReceiptPath) {
		errs = append(errs, errors.New("key web_health_path: must differ from web_receive_path and web_receipt_path"))
	}
	return errors.Join(errs...)
}

func trim(p string) string { return strings.Trim(p, "/") }

// IO implements topology.WorkerConfig: IO is the base transport's.

// Kind is the Vas2NetsTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "vas2nets", Aliases: []string{"vumi.transports.vas2nets.Vas2NetsTransport", "vumi.transports.vas2nets.vas2nets.Vas2NetsTransport"},
		Role: topology.RoleTransport, Summary: "Vas2Nets SMS (inbound and receipts over HTTP, outbound form posts)",
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
				return (&handler{cfg: cfg, client: client, t: t}).run(ctx)
			}), nil
		},
	}
}

type handler struct {
	cfg    *Config
	client *http.Client
	t      *transport.Transport
}

// run serves Vas2Nets' requests and sends outbound messages until ctx
// ends.
func (h *handler) run(ctx context.Context) error {
	addr := net.JoinHostPort(h.cfg.WebInterface, strconv.Itoa(*h.cfg.WebPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = h.t.Status(ctx, "http", schemas.StatusDown, "listen_failed", err.Error(), nil)
		return fmt.Errorf("vas2nets: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", h.serve)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	h.t.Log.Info("vas2nets transport listening", "addr", ln.Addr().String())
	err = h.t.Run(ctx, transport.HandlerFunc(h.send))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	<-served
	return err
}

// Timestamp converts Vas2Nets' "2006.01.02 15:04:05" to ISO 8601 ("" stays
// "").
func Timestamp(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	t, err := time.Parse("2006.01.02 15:04:05", v)
	if err != nil {
		return "", fmt.Errorf("time %q does not match format YYYY.MM.DD hh:mm:ss", v)
	}
	return t.Format("2006-01-02T15:04:05"), nil
}

// reply writes a plain-text response.
func reply(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// missing answers 400 naming the missing request keys.
func missing(w http.ResponseWriter, args url.Values, keys ...string) bool {
	var absent []string
	for _, k := range keys {
		if _, ok := args[k]; !ok {
			absent = append(absent, k)
		}
	}
	if len(absent) == 0 {
		return false
	}
	reply(w, http.StatusBadRequest, "Need more request keys to complete this request. \n\nMissing request key: "+strings.Join(absent, ", "))
	return true
}

// serve handles inbound messages, receipts and health checks.
func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	path := trim(r.URL.Path)
	if path == trim(h.cfg.WebHealthPath) {
		reply(w, http.StatusOK, "OK")
		return
	}
	if path != trim(h.cfg.WebReceivePath) && path != trim(h.cfg.WebReceiptPath) {
		http.NotFound(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		reply(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return
	}
	ctx, cancel := h.cfg.PublishContext(r.Context())
	defer cancel()
	if path == trim(h.cfg.WebReceivePath) {
		h.receive(ctx, w, r.Form)
	} else {
		h.receipt(ctx, w, r.Form)
	}
}

func (h *handler) receive(ctx context.Context, w http.ResponseWriter, a url.Values) {
	if missing(w, a, "messageid", "time", "provider", "keyword", "destination", "sender", "text") {
		return
	}
	ts, err := Timestamp(a.Get("time"))
	if err != nil {
		reply(w, http.StatusBadRequest, "ValueError: "+err.Error())
		return
	}
	id := h.cfg.TransportName + "." + a.Get("messageid")
	m := &schemas.UserMessage{
		MessageID: id, TransportType: schemas.String(schemas.TransportSMS),
		ToAddr: schemas.String(middleware.NormalizeMSISDN(a.Get("destination"), "")), FromAddr: schemas.String(middleware.NormalizeMSISDN(a.Get("sender"), "")),
		Content:           schemas.String(a.Get("text")),
		TransportMetadata: schemas.Metadata{"original_message_id": id, "timestamp": ts, "network_id": a.Get("provider"), "keyword": a.Get("keyword")},
	}
	if err := h.t.PublishMessage(ctx, m); err != nil {
		h.t.Log.Error("inbound message not published", "message_id", id, "error", err)
		reply(w, http.StatusServiceUnavailable, "message not accepted, try again")
		return
	}
	reply(w, http.StatusOK, "")
}

// DeliveryStatus maps Vas2Nets' receipt status: negative is failed, 2 and
// 14 are delivered, the rest pending.
func DeliveryStatus(status int) schemas.DeliveryStatus {
	switch {
	case status < 0:
		return schemas.DeliveryFailed
	case status == 2 || status == 14:
		return schemas.DeliveryDelivered
	}
	return schemas.DeliveryPending
}

func (h *handler) receipt(ctx context.Context, w http.ResponseWriter, a url.Values) {
	if missing(w, a, "messageid", "status", "text", "time", "provider", "sender") {
		return
	}
	status, err := strconv.Atoi(a.Get("status"))
	if err != nil {
		reply(w, http.StatusBadRequest, fmt.Sprintf("ValueError: status %q is not an integer", a.Get("status")))
		return
	}
	ts, err := Timestamp(a.Get("time"))
	if err != nil {
		reply(w, http.StatusBadRequest, "ValueError: "+err.Error())
		return
	}
	// Vas2Nets echoes the messageid it was sent; as in Vumi the report is
	// for "<transport_name>.<messageid>".
	id := h.cfg.TransportName + "." + a.Get("messageid")
	meta := schemas.Metadata{"delivery_status": a.Get("status"), "delivery_message": a.Get("text"), "timestamp": ts,
		"network_id": a.Get("provider"), "to_addr": middleware.NormalizeMSISDN(a.Get("sender"), "")}
	if err := h.t.PublishDeliveryReport(ctx, id, DeliveryStatus(status), meta); err != nil {
		h.t.Log.Error("delivery report not published", "message_id", id, "error", err)
		reply(w, http.StatusServiceUnavailable, "receipt not accepted, try again")
		return
	}
	reply(w, http.StatusOK, "")
}

// Vas2Nets' character set: single-byte characters, and double-byte ones
// (which make an SMS hold at most 70 characters).
const (
	singleByte = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789äöüÄÖÜàùòìèé§Ññ£$@ /?!#%&()*+,-:;<=>.\"'\n\r"
	doubleByte = "|{}[]€\\~^"
)

// ErrIllegalCharacter is the cause of a message whose text Vas2Nets
// cannot carry.
var ErrIllegalCharacter = errors.New("illegal character")

// ValidateCharacters checks text against Vas2Nets' character set, and
// reports whether it holds double-byte characters.
func ValidateCharacters(text string) (doubleBytes bool, err error) {
	for _, c := range text {
		switch {
		case strings.ContainsRune(singleByte, c):
		case strings.ContainsRune(doubleByte, c):
			doubleBytes = true
		default:
			return doubleBytes, fmt.Errorf("%w %q", ErrIllegalCharacter, c)
		}
	}
	return doubleBytes, nil
}

// OutboundMSISDN turns a leading '+' into "00".
func OutboundMSISDN(n string) string {
	if strings.HasPrefix(n, "+") {
		return "00" + n[1:]
	}
	return n
}

// send posts an outbound message to url.
func (h *handler) send(ctx context.Context, m *schemas.UserMessage) error {
	network, _ := m.TransportMetadata["network_id"].(string)
	if network == "" {
		return worker.Permanent(errors.New("vas2nets: transport_metadata.network_id (the provider) is required"))
	}
	double, err := ValidateCharacters(m.Text())
	if err != nil {
		return worker.Permanent(fmt.Errorf("vas2nets: %w", err))
	}
	if double {
		h.t.Log.Warn("message holds double-byte characters: at most 70 characters per SMS", "message_id", m.MessageID)
	}
	v2nID := m.MessageID
	if m.InReplyTo != nil {
		v2nID = strings.TrimPrefix(*m.InReplyTo, h.cfg.TransportName+".")
	}
	tariff := "0"
	if t, ok := m.TransportMetadata["tariff"]; ok {
		tariff = fmt.Sprint(t)
	}
	sub := ""
	if h.cfg.Subservice != nil {
		sub = *h.cfg.Subservice
	} else if k, ok := m.TransportMetadata["keyword"].(string); ok {
		sub = k
	}
	form := url.Values{
		"username": {h.cfg.Username}, "password": {h.cfg.Password}, "owner": {h.cfg.Owner}, "service": {h.cfg.Service},
		"call-number": {OutboundMSISDN(m.To())}, "origin": {m.From()}, "messageid": {v2nID}, "provider": {network},
		"tariff": {tariff}, "text": {m.Text()}, "subservice": {sub},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return worker.Permanent(fmt.Errorf("vas2nets: build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Vumi Vas2Net Transport")
	resp, err := h.client.Do(req)
	if err != nil {
		return worker.Temporary(fmt.Errorf("vas2nets: send to %s: %w", req.URL.Redacted(), err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return worker.Permanent(fmt.Errorf("vas2nets: server error: HTTP %d: %s", resp.StatusCode, body))
	}
	if id := resp.Header.Get(h.cfg.Header); id != "" {
		return h.t.PublishAck(ctx, m.MessageID, id)
	}
	reason := "No SmsId Header, content: " + string(body)
	if err := h.t.PublishNack(ctx, m.MessageID, reason); err != nil {
		return err
	}
	return worker.Permanent(errors.New("vas2nets: " + reason))
}
