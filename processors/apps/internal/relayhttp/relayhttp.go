// Package relayhttp is the HTTP client the relay applications share:
// Vumi JSON posted with optional basic auth, temporary failures
// (connection errors, timeouts, 5xx, 408, 429) retried with doubling
// backoff, URLs redacted of credentials in errors.
package relayhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
)

// Client posts to one web application.
type Client struct {
	HTTP               *http.Client
	Method             string
	Username, Password string
	MaxRetries         int
	Backoff            time.Duration
	Log                *slog.Logger
	// Retried is called before each retry (for a metric); may be nil.
	Retried func()
}

// Response is a 2xx answer: its status, headers and body (at most 1 MiB).
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends body, retrying temporary failures. Errors are classified with
// worker.Temporary or worker.Permanent.
func (c *Client) Do(ctx context.Context, target string, body []byte) (*Response, error) {
	backoff := c.Backoff
	var last error
	for attempt := 0; attempt <= c.MaxRetries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
			if c.Retried != nil {
				c.Retried()
			}
		}
		resp, err := c.once(ctx, target, body)
		if err == nil {
			return resp, nil
		}
		last = err
		if code := worker.CodeOf(err); code != nil && *code == schemas.FailurePermanent {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.Log.Warn("request failed", "url", Redact(target), "attempt", attempt+1, "error", err)
	}
	return nil, worker.Temporary(fmt.Errorf("%s %s failed %d times, last: %w", c.Method, Redact(target), c.MaxRetries+1, last))
}

func (c *Client) once(ctx context.Context, target string, body []byte) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, c.Method, target, bytes.NewReader(body))
	if err != nil {
		return nil, worker.Permanent(scrub(err))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, worker.Temporary(scrub(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, worker.Temporary(fmt.Errorf("reading response: %w", err))
	}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return &Response{Status: s, Header: resp.Header, Body: b}, nil
	case s >= 500 || s == http.StatusTooManyRequests || s == http.StatusRequestTimeout:
		return nil, worker.Temporary(fmt.Errorf("%s responded with %d", Redact(target), s))
	default:
		return nil, worker.Permanent(fmt.Errorf("%s responded with %d", Redact(target), s))
	}
}

// Redact drops credentials embedded in a URL.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<invalid url>"
	}
	return p.Redacted()
}

// scrub keeps a URL error's cause without its URL's credentials.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, Redact(ue.URL), ue.Err)
	}
	return err
}

// ValidURL reports whether u is an absolute http(s) URL.
func ValidURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}
