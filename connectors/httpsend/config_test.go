package httpsend

import (
	"testing"
	"time"
)

func TestTimeout(t *testing.T) {
	var c Timeout
	if err := c.ValidateTimeout(); err != nil || c.OutboundTimeout != 30 {
		t.Fatalf("default: %v, %v", c.OutboundTimeout, err)
	}
	if got := c.HTTPClient().Timeout; got != 30*time.Second {
		t.Fatalf("client timeout %v", got)
	}
	c.OutboundTimeout = 0.5
	if err := c.ValidateTimeout(); err != nil || c.HTTPClient().Timeout != 500*time.Millisecond {
		t.Fatalf("0.5: %v, %v", c.HTTPClient().Timeout, err)
	}
	c.OutboundTimeout = -1
	if err := c.ValidateTimeout(); err == nil || err.Error() != "key outbound_timeout: must be positive, got -1" {
		t.Fatalf("negative: %v", err)
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		raw          string
		url, hostURL bool
	}{
		{"http://example.com/send", true, true},
		{"https://example.com", true, true},
		{"http:///no-host", true, false},
		{"", false, false},
		{"ftp://example.com", false, false},
		{"example.com/send", false, false},
		{"http://[::1", false, false},
	} {
		if err := CheckURL("outbound_url", tc.raw); (err == nil) != tc.url {
			t.Errorf("CheckURL(%q) = %v", tc.raw, err)
		}
		err := CheckHostURL("url", tc.raw)
		if (err == nil) != tc.hostURL {
			t.Errorf("CheckHostURL(%q) = %v", tc.raw, err)
		}
		if err != nil && err.Error() != `key url: "`+tc.raw+`" is not an http(s) URL` {
			t.Errorf("CheckHostURL(%q) message %q", tc.raw, err)
		}
	}
}

func TestValidateOutbound(t *testing.T) {
	c := Outbound{OutboundURL: "http://example.com/send"}
	if err := c.ValidateOutbound(); err != nil || c.OutboundTimeout != 30 {
		t.Fatalf("valid: %v, timeout %v", err, c.OutboundTimeout)
	}
	c = Outbound{OutboundURL: "ftp://x", Timeout: Timeout{OutboundTimeout: -2}}
	err := c.ValidateOutbound()
	if want := "key outbound_url: \"ftp://x\" is not an http(s) URL\nkey outbound_timeout: must be positive, got -2"; err == nil || err.Error() != want {
		t.Fatalf("ValidateOutbound = %v, want %q", err, want)
	}
}
