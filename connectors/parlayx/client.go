package parlayx

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/connectors/httpsend"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/worker"
)

// ErrAddress is the cause of a message whose to_addr is not in
// international format.
var ErrAddress = errors.New("only international format addresses are supported")

// FormatAddress formats a normalised MSISDN ("+27117654321") as the URI
// ParlayX takes ("tel:27117654321").
func FormatAddress(msisdn string) (string, error) {
	if !strings.HasPrefix(msisdn, "+") || len(msisdn) < 2 {
		return "", fmt.Errorf("%w: %q", ErrAddress, msisdn)
	}
	return "tel:" + msisdn[1:], nil
}

// FormatTimestamp is ParlayX's header timestamp: YYYYMMDDhhmmss.
func FormatTimestamp(t time.Time) string { return t.Format("20060102150405") }

// MakePassword is the time-sensitive spPassword of a request:
// hex(md5(spId + password + timestamp)).
func MakePassword(spID, password, timestamp string) string {
	sum := md5.Sum([]byte(spID + password + timestamp))
	return hex.EncodeToString(sum[:])
}

// UniqueCorrelator makes a message id unique per send ("<id>:<uuid>"), as
// ParlayX wants a fresh correlator for every message sent.
func UniqueCorrelator(messageID string) string { return messageID + ":" + uuid() }

// ExtractMessageID is the message id of a correlator (the part before the
// first colon).
func ExtractMessageID(correlator string) string {
	id, _, _ := strings.Cut(correlator, ":")
	return id
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// client is the ParlayX SOAP client of one transport instance.
type client struct {
	cfg  *Config
	send *httpsend.Client
	now  func() time.Time
	// correlator identifies this instance's notification registration.
	correlator string
}

func (c *client) header(oa, linkid string) (node, error) {
	ts := FormatTimestamp(c.now())
	h := el("parlayx_head:RequestSOAPHeader",
		txt("parlayx_head:spId", c.cfg.ServiceProviderID),
		txt("parlayx_head:spPassword", MakePassword(c.cfg.ServiceProviderID, c.cfg.ServiceProviderPassword, ts)),
		txt("parlayx_head:serviceId", c.cfg.ServiceProviderServiceID),
		txt("parlayx_head:timeStamp", ts),
	).ns("parlayx_head", NSHead)
	if oa != "" {
		addr, err := FormatAddress(oa)
		if err != nil {
			return node{}, err
		}
		h.children = append(h.children, txt("parlayx_head:OA", addr))
	}
	if linkid != "" {
		h.children = append(h.children, txt("parlayx_head:linkid", linkid))
	}
	return h, nil
}

// ErrResponse wraps every reason a SOAP response could not be read.
var ErrResponse = errors.New("invalid SOAP response")

// call performs a SOAP request. A 500 answer carrying a SOAP fault is
// returned as *Fault; an answer without a Body is ErrResponse.
func (c *client) call(ctx context.Context, t *transport.Transport, uri string, body node, header node) (*Element, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(string(envelope(body, &header))))
	if err != nil {
		return nil, worker.Permanent(fmt.Errorf("parlayx: build request: %w", err))
	}
	req.Header.Set("SOAPAction", "")
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	resp, err := c.send.Do(ctx, t, req)
	if err != nil {
		return nil, err
	}
	root, err := ParseXML(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: HTTP %d from %s: %v", ErrResponse, resp.Status, httpsend.Public(req.URL), err)
	}
	b, _, err := Unwrap(root)
	if err != nil {
		return nil, fmt.Errorf("%w: HTTP %d from %s: not a SOAP envelope", ErrResponse, resp.Status, httpsend.Public(req.URL))
	}
	if resp.Status == http.StatusInternalServerError {
		if f := ParseFault(b); f != nil {
			return nil, f
		}
		return nil, fmt.Errorf("%w: HTTP 500 from %s without a SOAP fault", ErrResponse, httpsend.Public(req.URL))
	}
	if resp.Status != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP %d from %s", ErrResponse, resp.Status, httpsend.Public(req.URL))
	}
	return b, nil
}

// SendSms sends one message and returns ParlayX's request identifier.
func (c *client) SendSms(ctx context.Context, t *transport.Transport, to, content, correlator, linkid string) (string, error) {
	addr, err := FormatAddress(to)
	if err != nil {
		return "", err
	}
	h, err := c.header(to, linkid)
	if err != nil {
		return "", err
	}
	body := el("send:sendSms",
		txt("send:addresses", addr),
		txt("send:message", content),
		el("send:receiptRequest",
			txt("endpoint", c.cfg.NotificationEndpointURI),
			txt("interfaceName", "SmsNotification"),
			txt("correlator", correlator)),
	).ns("send", NSSend)
	b, err := c.call(ctx, t, c.cfg.RemoteSendURI, body, h)
	if err != nil {
		return "", err
	}
	if r := b.Find(NSSend, "result"); r != nil {
		return strings.TrimSpace(r.Text), nil
	}
	return "", nil
}

// StartNotification registers notification_endpoint_uri for the short
// code's messages.
func (c *client) StartNotification(ctx context.Context, t *transport.Transport) error {
	h, _ := c.header("", "")
	body := el("nm:startSmsNotification",
		el("nm:reference",
			txt("endpoint", c.cfg.NotificationEndpointURI),
			txt("interfaceName", "notifySmsReception"),
			txt("correlator", c.correlator)),
		txt("nm:smsServiceActivationNumber", c.cfg.ShortCode),
	).ns("nm", NSNotificationManager)
	_, err := c.call(ctx, t, c.cfg.RemoteNotificationURI, body, h)
	return err
}

// StopNotification removes this instance's registration.
func (c *client) StopNotification(ctx context.Context, t *transport.Transport) error {
	h, _ := c.header("", "")
	body := el("nm:stopSmsNotification", txt("correlator", c.correlator)).ns("nm", NSNotificationManager)
	_, err := c.call(ctx, t, c.cfg.RemoteNotificationURI, body, h)
	return err
}
