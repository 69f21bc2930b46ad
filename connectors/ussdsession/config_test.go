package ussdsession

import (
	"testing"
	"time"
)

func TestSessionConfig(t *testing.T) {
	var c SessionConfig
	if err := c.ValidateSession(); err != nil || c.UssdSessionTimeout != 600 || c.SessionTTL() != 10*time.Minute {
		t.Fatalf("default: %d, %v", c.UssdSessionTimeout, err)
	}
	c.UssdSessionTimeout = -5
	if err := c.ValidateSession(); err == nil || err.Error() != "key ussd_session_timeout: must be positive, got -5" {
		t.Fatalf("negative: %v", err)
	}
}

func TestHTTPConfig(t *testing.T) {
	c := HTTPConfig{}
	c.TransportName = "ussd_t"
	c.WebPath = "/ussd"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.TransportType != "ussd" || c.UssdSessionTimeout != 600 {
		t.Fatalf("defaults: %q %d", c.TransportType, c.UssdSessionTimeout)
	}
	io := c.IO("w")
	found := 0
	for _, s := range append(io.Consumes, io.Produces...) {
		if s.Topic == Topic("ussd_t") {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("session table in IO %d times, want consumed and produced: %+v", found, io)
	}
}
