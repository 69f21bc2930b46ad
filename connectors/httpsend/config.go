package httpsend

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// DefaultTimeout is outbound_timeout's default, in seconds.
const DefaultTimeout = 30

// Timeout is the outbound_timeout setting of a transport that sends to a
// provider's HTTP API, embedded inline in its config.
type Timeout struct {
	// OutboundTimeout bounds, in seconds, one outbound request; default 30.
	OutboundTimeout float64 `yaml:"outbound_timeout"`
}

// ValidateTimeout fills outbound_timeout's default and rejects a negative
// one.
func (c *Timeout) ValidateTimeout() error {
	if c.OutboundTimeout == 0 {
		c.OutboundTimeout = DefaultTimeout
	}
	if c.OutboundTimeout < 0 {
		return fmt.Errorf("key outbound_timeout: must be positive, got %v", c.OutboundTimeout)
	}
	return nil
}

// HTTPClient is a client whose requests are bounded by outbound_timeout.
func (c *Timeout) HTTPClient() *http.Client {
	return &http.Client{Timeout: time.Duration(c.OutboundTimeout * float64(time.Second))}
}

// Outbound is the outbound_url and outbound_timeout of a transport that
// sends every message to one provider URL, embedded inline in its config.
type Outbound struct {
	// OutboundURL is the provider's URL outbound messages are sent to.
	// Required.
	OutboundURL string `yaml:"outbound_url"`
	Timeout     `yaml:",inline"`
}

// ValidateOutbound rejects an outbound_url that is not an http(s) URL
// (CheckURL), and validates outbound_timeout (ValidateTimeout).
func (c *Outbound) ValidateOutbound() error {
	return errors.Join(CheckURL("outbound_url", c.OutboundURL), c.ValidateTimeout())
}

// CheckURL rejects raw, the value of config key key, unless it is an
// http(s) URL. CheckHostURL also requires a host.
func CheckURL(key, raw string) error {
	if u, err := url.Parse(raw); raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("key %s: %q is not an http(s) URL", key, raw)
	}
	return nil
}

// CheckHostURL is CheckURL that also requires the URL to name a host.
func CheckHostURL(key, raw string) error {
	if u, err := url.Parse(raw); raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("key %s: %q is not an http(s) URL", key, raw)
	}
	return nil
}
