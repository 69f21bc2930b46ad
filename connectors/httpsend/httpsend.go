// Package httpsend is the outbound side shared by the SMS aggregator
// transports that send to a provider's HTTP API: one request per message,
// errors that never carry the URL's query (where providers want the
// credentials), connection failures classed as temporary (the failure
// worker retries them), and an "outbound" status component that follows
// what the provider last did, published only when it changes.
package httpsend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
)

// Component is the status component of a transport's sends.
const Component = "outbound"

// MaxBody bounds how much of a provider's response is read.
const MaxBody = 1 << 20

// Response is a provider's answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Client sends one transport's requests.
type Client struct {
	HTTP *http.Client
	// Name prefixes errors, e.g. "mediafone".
	Name string

	mu   sync.Mutex
	last string
}

// New returns a client with the given timeout per request.
func New(name string, c *http.Client) *Client { return &Client{Name: name, HTTP: c} }

// Public is u without its query, user info and fragment: what errors and
// logs may show of a provider URL.
func Public(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// Do sends req and reads the response. A request that gets no response
// (refused, timed out, reset) is a temporary failure and sets the status
// down; a 5xx answer sets it degraded and any other answer ok. The
// caller decides what the status code means for the message.
func (c *Client) Do(ctx context.Context, t *transport.Transport, req *http.Request) (*Response, error) {
	public := Public(req.URL)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		// url.Error's text holds the full URL, with the credentials of
		// the providers that take them in the query: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		c.Status(ctx, t, schemas.StatusDown, "connection_failed", fmt.Sprintf("Could not reach %s: %v", public, err))
		return nil, worker.Temporary(fmt.Errorf("%s: send to %s: %w", c.Name, public, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		c.Status(ctx, t, schemas.StatusDown, "connection_failed", fmt.Sprintf("Response from %s cut short: %v", public, err))
		return nil, worker.Temporary(fmt.Errorf("%s: read response from %s: %w", c.Name, public, err))
	}
	if resp.StatusCode >= 500 {
		c.Status(ctx, t, schemas.StatusDegraded, "http_error", fmt.Sprintf("%s answered HTTP %d", public, resp.StatusCode))
	} else {
		c.Status(ctx, t, schemas.StatusOK, "request_sent", "Provider answering, HTTP "+strconv.Itoa(resp.StatusCode))
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// Status publishes the outbound component's status when its level or
// type differs from the last one published by this client.
func (c *Client) Status(ctx context.Context, t *transport.Transport, level schemas.StatusLevel, typ, msg string) {
	key := string(level) + "/" + typ
	c.mu.Lock()
	same := c.last == key
	c.last = key
	c.mu.Unlock()
	if same || t == nil {
		return
	}
	if err := t.Status(ctx, Component, level, typ, msg, nil); err != nil {
		t.Log.Warn("status not published", "component", Component, "error", err)
	}
}
