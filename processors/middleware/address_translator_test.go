package middleware_test

import (
	"strings"
	"testing"

	"github.com/vumi-kafka/vumi/processors/middleware"
)

func TestAddressTranslation(t *testing.T) {
	mw, err := middleware.NewAddressTranslation("at", &middleware.AddressTranslationConfig{
		OutboundMap: map[string]string{"555OUT": "555IN", "me@example.com": "+27761234567"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		outbound bool
		addr     string
		want     string
	}{
		{"outbound mapped", true, "555OUT", "555IN"},
		{"outbound unmapped", true, "+27000", "+27000"},
		{"inbound inverse", false, "555IN", "555OUT"},
		{"inbound inverse 2", false, "+27761234567", "me@example.com"},
		{"inbound unmapped", false, "555OUT", "555OUT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, phase := range []middleware.Context{consume, publish} {
				if c.outbound {
					m, _ := mw.HandleOutbound(ctx, msg("1234", c.addr), phase)
					if got := str(m.ToAddr); got != c.want || str(m.FromAddr) != "1234" {
						t.Errorf("%s: to_addr %q, want %q (from %q)", phase.Phase, got, c.want, str(m.FromAddr))
					}
				} else {
					m, _ := mw.HandleInbound(ctx, msg(c.addr, "1234"), phase)
					if got := str(m.FromAddr); got != c.want || str(m.ToAddr) != "1234" {
						t.Errorf("%s: from_addr %q, want %q", phase.Phase, got, c.want)
					}
				}
			}
		})
	}
	// Null addresses are left alone.
	m, err := mw.HandleOutbound(ctx, msg("", ""), publish)
	if err != nil || m.ToAddr != nil {
		t.Errorf("null to_addr: %v %v", m.ToAddr, err)
	}
}

func TestAddressTranslationConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  middleware.AddressTranslationConfig
		want string
	}{
		{middleware.AddressTranslationConfig{}, "key outbound_map: is required"},
		{middleware.AddressTranslationConfig{OutboundMap: map[string]string{"a": "x", "b": "x"}}, "ambiguous"},
		{middleware.AddressTranslationConfig{OutboundMap: map[string]string{}}, ""},
	} {
		err := c.cfg.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Validate(%v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}
