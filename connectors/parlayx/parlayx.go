// Package parlayx is Vumi's ParlayXTransport: SMS through a telephone
// network's ParlayX 2.x web services (SOAP). Outbound messages are
// SendSms requests with a unique correlator per send and a time-sensitive
// password; the network calls back the transport's SmsNotification
// service with received messages (notifySmsReception) and delivery
// receipts (notifySmsDeliveryReceipt). Optionally the transport registers
// that service with the network's notification manager at start-up and
// removes the registration at shutdown.
package parlayx

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
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's ParlayXTransportConfig.
type Config struct {
	transport.Config `yaml:",inline"`
	// WebNotificationPath is where the network posts notifications.
	// Required.
	WebNotificationPath string `yaml:"web_notification_path"`
	// WebNotificationPort to listen on; default 0 (any free port).
	WebNotificationPort int `yaml:"web_notification_port"`
	// WebInterface to listen on; default all interfaces.
	WebInterface string `yaml:"web_interface"`
	// NotificationEndpointURI is the URI the network reaches the
	// transport's SmsNotification service at (sent in every request).
	// Required.
	NotificationEndpointURI string `yaml:"notification_endpoint_uri"`
	// ShortCode (service activation number) to receive messages for;
	// required with start_notifications.
	ShortCode string `yaml:"short_code"`
	// RemoteSendURI of the network's SendSmsService. Required.
	RemoteSendURI string `yaml:"remote_send_uri"`
	// RemoteNotificationURI of the network's SmsNotificationManager;
	// required with start_notifications.
	RemoteNotificationURI string `yaml:"remote_notification_uri"`
	// StartNotifications registers (and at shutdown removes) the
	// notification endpoint; default false.
	StartNotifications bool `yaml:"start_notifications"`
	// ServiceProviderServiceID, ServiceProviderID and
	// ServiceProviderPassword are the provisioned credentials. Required.
	ServiceProviderServiceID string `yaml:"service_provider_service_id"`
	ServiceProviderID        string `yaml:"service_provider_id"`
	ServiceProviderPassword  string `yaml:"service_provider_password"`
	// Timeout is outbound_timeout: how long, in seconds, one SOAP request
	// may take; default 30.
	httpsend.Timeout `yaml:",inline"`
	// Publish is publish_timeout, which bounds, in seconds, publishing a
	// notification; the network gets a SOAP fault this soon when Kafka is
	// unreachable; default 1.
	httprpc.Publish `yaml:",inline"`
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return s != "" && err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	var errs []error
	if err := c.ValidateBase(); err != nil {
		errs = append(errs, err)
	}
	for _, k := range []struct{ key, v string }{{"web_notification_path", c.WebNotificationPath},
		{"service_provider_service_id", c.ServiceProviderServiceID}, {"service_provider_id", c.ServiceProviderID},
		{"service_provider_password", c.ServiceProviderPassword}} {
		if k.v == "" {
			errs = append(errs, fmt.Errorf("key %s: is required", k.key))
		}
	}
	for _, k := range []struct{ key, v string }{{"notification_endpoint_uri", c.NotificationEndpointURI}, {"remote_send_uri", c.RemoteSendURI}} {
		if !httpURL(k.v) {
			errs = append(errs, fmt.Errorf("key %s: %q is not an http(s) URL", k.key, k.v))
		}
	}
	if c.StartNotifications {
		if !httpURL(c.RemoteNotificationURI) {
			errs = append(errs, fmt.Errorf("key remote_notification_uri: %q is not an http(s) URL (required with start_notifications)", c.RemoteNotificationURI))
		}
		if c.ShortCode == "" {
			errs = append(errs, errors.New("key short_code: is required with start_notifications"))
		}
	} else if c.RemoteNotificationURI != "" && !httpURL(c.RemoteNotificationURI) {
		errs = append(errs, fmt.Errorf("key remote_notification_uri: %q is not an http(s) URL", c.RemoteNotificationURI))
	}
	if c.WebNotificationPort < 0 || c.WebNotificationPort > 65535 {
		errs = append(errs, fmt.Errorf("key web_notification_port: %d is not a port", c.WebNotificationPort))
	}
	if err := c.ValidateTimeout(); err != nil {
		errs = append(errs, err)
	}
	if err := c.ValidatePublish(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Kind is the ParlayXTransport worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "parlayx", Aliases: []string{"vumi.transports.parlayx.ParlayXTransport", "vumi.transports.parlayx.parlayx.ParlayXTransport"},
		Role: topology.RoleTransport, Summary: "ParlayX SMS (SOAP SendSms, SmsNotification service, delivery receipts)",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			httpc := cfg.HTTPClient()
			return topology.WorkerFunc(func(ctx context.Context) error {
				t, err := transport.New(deps, spec, &cfg.Config)
				if err != nil {
					return err
				}
				defer t.Close()
				c := &client{cfg: cfg, send: httpsend.New("parlayx", httpc), now: time.Now, correlator: strings.ReplaceAll(uuid(), "-", "")}
				return (&handler{cfg: cfg, t: t, c: c}).run(ctx)
			}), nil
		},
	}
}

type handler struct {
	cfg *Config
	t   *transport.Transport
	c   *client
}

func (h *handler) run(ctx context.Context) error {
	addr := net.JoinHostPort(h.cfg.WebInterface, strconv.Itoa(h.cfg.WebNotificationPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = h.t.Status(ctx, "http", schemas.StatusDown, "listen_failed", err.Error(), nil)
		return fmt.Errorf("parlayx: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(h.serve), ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
		<-served
	}()
	h.t.Log.Info("parlayx transport listening", "addr", ln.Addr().String(), "web_notification_path", h.cfg.WebNotificationPath)
	if h.cfg.StartNotifications {
		if err := h.c.StartNotification(ctx, h.t); err != nil {
			_ = h.t.Status(ctx, "notifications", schemas.StatusDown, "start_failed", err.Error(), nil)
			return fmt.Errorf("parlayx: start SMS notification: %w", err)
		}
		_ = h.t.Status(ctx, "notifications", schemas.StatusOK, "started", "SMS notifications registered", nil)
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := h.c.StopNotification(stopCtx, h.t); err != nil {
				h.t.Log.Warn("SMS notification not stopped", "error", err)
			}
		}()
	}
	return h.t.Run(ctx, transport.HandlerFunc(h.outbound))
}

// outbound sends a message with SendSms. ServiceException,
// PolicyException and client-class SOAP faults are nacked and permanent;
// server-class faults are temporary (retried by the failure worker) and
// not nacked; an unreachable network is temporary; anything else is
// nacked with an unspecified failure, as in Vumi.
func (h *handler) outbound(ctx context.Context, m *schemas.UserMessage) error {
	linkid := ""
	if l, ok := m.TransportMetadata["linkid"]; ok && l != nil {
		linkid = fmt.Sprint(l)
	}
	id, err := h.c.SendSms(ctx, h.t, m.To(), m.Text(), UniqueCorrelator(m.MessageID), linkid)
	if err == nil {
		return h.t.PublishAck(ctx, m.MessageID, id)
	}
	var fault *Fault
	switch {
	case errors.Is(err, ErrAddress):
		return h.nack(ctx, m, err.Error(), worker.Permanent(fmt.Errorf("parlayx: %w", err)))
	case errors.As(err, &fault):
		if fault.Detail == nil && fault.Server() {
			h.c.send.Status(ctx, h.t, schemas.StatusDegraded, "soap_fault", fmt.Sprintf("%s: %s", fault.Code, fault.String))
			return worker.Temporary(fmt.Errorf("parlayx: SOAP fault %s: %w", fault.Code, fault))
		}
		kind := "SOAP fault " + fault.Code
		if fault.Detail != nil {
			kind = fmt.Sprintf("%s %s", fault.Detail.Kind, fault.Detail.MessageID)
		}
		return h.nack(ctx, m, fault.String, worker.Permanent(fmt.Errorf("parlayx: %s: %w", kind, fault)))
	case worker.CodeOf(err) != nil:
		// Connection failures (temporary) and request-building errors.
		return err
	}
	return h.nack(ctx, m, err.Error(), fmt.Errorf("parlayx: %w", err))
}

func (h *handler) nack(ctx context.Context, m *schemas.UserMessage, reason string, err error) error {
	if perr := h.t.PublishNack(ctx, m.MessageID, reason); perr != nil {
		return perr
	}
	return err
}

func writeSOAP(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// serve is the SmsNotification service.
func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	p := strings.Trim(r.URL.Path, "/")
	if p != strings.Trim(h.cfg.WebNotificationPath, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeSOAP(w, http.StatusInternalServerError, faultEnvelope("soapenv:Client", "request body: "+err.Error()))
		return
	}
	n, fault := ParseNotification(body)
	if fault != nil {
		h.t.Log.Info("bad notification", "fault_code", fault.Code, "fault", fault.String)
		writeSOAP(w, http.StatusInternalServerError, faultEnvelope(fault.Code, fault.String))
		return
	}
	ctx, cancel := h.cfg.PublishContext(r.Context())
	defer cancel()
	var response node
	switch n := n.(type) {
	case *Reception:
		m := &schemas.UserMessage{
			MessageID: ExtractMessageID(n.Correlator), Content: schemas.String(n.Message),
			ToAddr: schemas.String(n.ServiceActivationNumber), FromAddr: schemas.String(n.Sender),
			Provider: schemas.String("parlayx"), TransportType: schemas.String(schemas.TransportSMS),
			TransportMetadata: schemas.Metadata{"linkid": nil},
		}
		if n.LinkID != "" {
			m.TransportMetadata["linkid"] = n.LinkID
		}
		if m.MessageID == "" {
			m.MessageID = schemas.GenerateID()
		}
		err = h.t.PublishMessage(ctx, m)
		response = el("loc:notifySmsReceptionResponse").ns("loc", NSNotification)
	case *Receipt:
		err = h.t.PublishDeliveryReport(ctx, ExtractMessageID(n.Correlator), schemas.DeliveryStatus(DeliveryStatuses[n.Status]),
			schemas.Metadata{"parlayx": map[string]any{"correlator": n.Correlator, "address": n.Address, "delivery_status": n.Status}})
		response = el("loc:notifySmsDeliveryReceiptResponse").ns("loc", NSNotification)
	}
	if err != nil {
		h.t.Log.Error("notification not published", "error", err)
		writeSOAP(w, http.StatusServiceUnavailable, faultEnvelope("soapenv:Server", "notification not accepted, try again"))
		return
	}
	writeSOAP(w, http.StatusOK, envelope(response, nil))
}
