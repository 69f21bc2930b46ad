package middleware_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

func TestStaticProvider(t *testing.T) {
	mw, err := middleware.NewStaticProvider("sp", &middleware.StaticProviderConfig{Provider: "MNO"})
	if err != nil {
		t.Fatal(err)
	}
	for _, phase := range []middleware.Context{consume, publish} {
		in := msg("+2776", "1234")
		in.Provider = schemas.String("other")
		if m, _ := mw.HandleInbound(ctx, in, phase); str(m.Provider) != "MNO" {
			t.Errorf("inbound provider %q", str(m.Provider))
		}
		if m, _ := mw.HandleOutbound(ctx, msg("1234", "+2776"), phase); str(m.Provider) != "MNO" {
			t.Errorf("outbound provider %q", str(m.Provider))
		}
	}
	if err := (&middleware.StaticProviderConfig{}).Validate(); err == nil || !strings.Contains(err.Error(), "key provider") {
		t.Errorf("missing provider: %v", err)
	}
}

func TestAddressPrefixProvider(t *testing.T) {
	prefixes := map[string]string{"+2782": "VODACOM", "+27831": "MTN-SPECIAL", "+2783": "MTN", "27": "ZA"}
	log, buf := newLog(slog.LevelDebug)
	plain, err := middleware.NewAddressPrefixProvider("p", &middleware.AddressPrefixProviderConfig{ProviderPrefixes: prefixes}, log)
	if err != nil {
		t.Fatal(err)
	}
	norm, _ := middleware.NewAddressPrefixProvider("p", &middleware.AddressPrefixProviderConfig{ProviderPrefixes: prefixes,
		NormalizeMSISDN: &middleware.NormalizeMSISDNConfig{CountryCode: "27"}}, log)
	strip, _ := middleware.NewAddressPrefixProvider("p", &middleware.AddressPrefixProviderConfig{ProviderPrefixes: prefixes,
		NormalizeMSISDN: &middleware.NormalizeMSISDNConfig{CountryCode: "27", StripPlus: true}}, log)
	for _, c := range []struct {
		name string
		mw   *middleware.AddressPrefixProvider
		addr string
		want string
	}{
		{"prefix", plain, "+27821234567", "VODACOM"},
		{"longest prefix first", plain, "+27831234567", "MTN-SPECIAL"},
		{"shorter prefix", plain, "+27832234567", "MTN"},
		{"no match is null", plain, "0821234567", "<nil>"},
		{"normalised leading 0", norm, "082 123 4567", "VODACOM"},
		{"normalised 00", norm, "0027831234567", "MTN-SPECIAL"},
		{"normalised strip plus", strip, "0821234567", "ZA"},
		{"short code untouched", norm, "12345", "<nil>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _ := c.mw.HandleInbound(ctx, msg(c.addr, "1234"), consume)
			if got := str(m.Provider); got != c.want {
				t.Errorf("inbound provider %q, want %q", got, c.want)
			}
			if str(m.FromAddr) != c.addr {
				t.Errorf("from_addr modified: %q", str(m.FromAddr))
			}
			m, _ = c.mw.HandleOutbound(ctx, msg("1234", c.addr), publish)
			if got := str(m.Provider); got != c.want {
				t.Errorf("outbound provider %q, want %q", got, c.want)
			}
		})
	}
	// An existing provider is kept.
	in := msg("+27821234567", "1234")
	in.Provider = schemas.String("KEEP")
	if m, _ := plain.HandleInbound(ctx, in, consume); str(m.Provider) != "KEEP" {
		t.Errorf("existing provider replaced: %q", str(m.Provider))
	}
	// A null address logs an error and leaves provider null.
	if m, err := plain.HandleInbound(ctx, msg("", "1234"), consume); err != nil || m.Provider != nil {
		t.Errorf("null address: %v %v", m.Provider, err)
	}
	if !strings.Contains(buf.String(), "level=ERROR") {
		t.Errorf("no error logged for a null address: %s", buf.String())
	}
	for _, c := range []struct {
		cfg  middleware.AddressPrefixProviderConfig
		want string
	}{
		{middleware.AddressPrefixProviderConfig{}, "key provider_prefixes"},
		{middleware.AddressPrefixProviderConfig{ProviderPrefixes: prefixes, NormalizeMSISDN: &middleware.NormalizeMSISDNConfig{}}, "key normalize_msisdn.country_code"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v, want %q", err, c.want)
		}
	}
}

func TestNormalizeMSISDN(t *testing.T) {
	for _, c := range []struct{ in, cc, want string }{
		{"12345", "27", "12345"},
		{"0761234567", "27", "+27761234567"},
		{"0027761234567", "27", "+27761234567"},
		{"+27761234567", "27", "+27761234567"},
		{"27761234567", "27", "+27761234567"},
		{"(076) 123-4567", "27", "+27761234567"},
		{"44761234567", "27", "44761234567"},
	} {
		if got := middleware.NormalizeMSISDN(c.in, c.cc); got != c.want {
			t.Errorf("NormalizeMSISDN(%q, %q) = %q, want %q", c.in, c.cc, got, c.want)
		}
	}
}
