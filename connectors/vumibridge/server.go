package vumibridge

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

	"github.com/vumi-kafka/vumi/connectors/tcpclient"
	"github.com/vumi-kafka/vumi/schemas"
)

// serve starts the push server: Vumi Go PUTs or POSTs messages to
// <web_path>/messages.json and events to <web_path>/events.json.
func (tr *Transport) serve(ctx context.Context) (*http.Server, chan error, error) {
	addr := net.JoinHostPort(tr.cfg.WebInterface, strconv.Itoa(tr.cfg.WebPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = tr.t.Status(ctx, "http", schemas.StatusDown, "listen_failed", err.Error(), nil)
		return nil, nil, fmt.Errorf("vumi bridge: listen on %s: %w", addr, err)
	}
	base := "/" + strings.Trim(tr.cfg.WebPath, "/")
	mux := http.NewServeMux()
	mux.HandleFunc(base+"/messages.json", tr.push(tr.inboundMessage, "received-from-vumi-go"))
	mux.HandleFunc(base+"/events.json", tr.push(tr.inboundEvent, "vumi-go-event"))
	mux.HandleFunc("/"+strings.Trim(tr.cfg.HealthPath, "/"), func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		_, _ = io.WriteString(w, "OK")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tr.log.Info("vumi bridge listening", "addr", ln.Addr().String(), "web_path", base)
	return srv, done, nil
}

// push handles one pushed message or event (Vumi's
// handle_raw_inbound_message and handle_raw_inbound_event): 200 once it is
// published, 400 when it cannot be read or matched (it also goes to
// failures), 503 when Kafka cannot take it.
func (tr *Transport) push(h func(context.Context, []byte) error, component string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut && r.Method != http.MethodPost {
			w.Header().Set("Allow", "PUT, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("body larger than %d bytes", maxBody), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		// A request publishes once: while Kafka is down the caller gets a
		// 503 within the HTTP timeout and Vumi Go retries.
		ctx, cancel := context.WithTimeout(r.Context(), httpTimeout)
		defer cancel()
		err = h(ctx, raw)
		switch {
		case err == nil:
			tr.updateStatus(ctx, component, schemas.StatusOK, "good_request", goodMessage[component])
			if component == "vumi-go-event" {
				tr.eventStatus(ctx, raw)
			}
			w.WriteHeader(http.StatusOK)
		case !tcpclient.IsTemporary(err):
			tr.failed(ctx, raw, err)
			tr.updateStatus(ctx, component, schemas.StatusDown, "bad_request", badMessage[component])
			w.WriteHeader(http.StatusBadRequest)
		default:
			tr.log.Error("pushed request not published", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}
}

var goodMessage = map[string]string{"received-from-vumi-go": "Good request received", "vumi-go-event": "Good event received from Vumi Go"}
var badMessage = map[string]string{"received-from-vumi-go": "Bad request received", "vumi-go-event": "Bad event received from Vumi Go"}

// eventStatus reports Vumi Go's acks and nacks as the sent-by-vumi-go
// component's status, as Vumi did.
func (tr *Transport) eventStatus(ctx context.Context, raw []byte) {
	e, err := schemas.ParseEvent(raw)
	if err != nil {
		return
	}
	switch e.EventType {
	case schemas.EventAck:
		tr.updateStatus(ctx, "sent-by-vumi-go", schemas.StatusOK, "vumi_go_sent", "Sent by Vumi Go")
	case schemas.EventNack:
		tr.updateStatus(ctx, "sent-by-vumi-go", schemas.StatusDown, "vumi_go_failed", "Vumi Go failed to send")
	}
}
