package middleware

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strings"

	"github.com/vumi-kafka/vumi/schemas"
)

// StaticProviderConfig configures StaticProvider (Vumi's
// vumi.middleware.provider_setter.StaticProviderSettingMiddleware).
type StaticProviderConfig struct {
	// Provider is the value to set the provider field to. Required.
	Provider string `yaml:"provider"`
}

// Validate checks that provider is set.
func (c *StaticProviderConfig) Validate() error {
	if c.Provider == "" {
		return errors.New("key provider: is required")
	}
	return nil
}

// StaticProvider sets a fixed provider on every inbound and outbound
// message, in both phases.
type StaticProvider struct {
	name     string
	provider string
}

// NewStaticProvider returns the middleware.
func NewStaticProvider(name string, cfg *StaticProviderConfig) (*StaticProvider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &StaticProvider{name: name, provider: cfg.Provider}, nil
}

// Name implements Middleware.
func (s *StaticProvider) Name() string { return s.name }

// HandleInbound sets provider.
func (s *StaticProvider) HandleInbound(_ context.Context, m *schemas.UserMessage, _ Context) (*schemas.UserMessage, error) {
	m.Provider = schemas.String(s.provider)
	return m, nil
}

// HandleOutbound sets provider.
func (s *StaticProvider) HandleOutbound(_ context.Context, m *schemas.UserMessage, _ Context) (*schemas.UserMessage, error) {
	m.Provider = schemas.String(s.provider)
	return m, nil
}

// NormalizeMSISDNConfig is the optional normalize_msisdn section of
// AddressPrefixProviderConfig.
type NormalizeMSISDNConfig struct {
	// CountryCode, e.g. "27", replaces a leading 0. Required when the
	// section is present.
	CountryCode string `yaml:"country_code"`
	// StripPlus removes the leading "+" after normalisation. Default false.
	StripPlus bool `yaml:"strip_plus"`
}

// AddressPrefixProviderConfig configures AddressPrefixProvider (Vumi's
// vumi.middleware.provider_setter.AddressPrefixProviderSettingMiddleware).
type AddressPrefixProviderConfig struct {
	// ProviderPrefixes maps an address prefix to a provider value; longer
	// prefixes are checked first. No match sets provider to null. Required.
	ProviderPrefixes map[string]string `yaml:"provider_prefixes"`
	// NormalizeMSISDN, when present, normalises the address (only for the
	// prefix check; the message is not modified).
	NormalizeMSISDN *NormalizeMSISDNConfig `yaml:"normalize_msisdn"`
}

// Validate checks the keys.
func (c *AddressPrefixProviderConfig) Validate() error {
	if c.ProviderPrefixes == nil {
		return errors.New("key provider_prefixes: is required")
	}
	if c.NormalizeMSISDN != nil && c.NormalizeMSISDN.CountryCode == "" {
		return errors.New("key normalize_msisdn.country_code: is required when normalize_msisdn is given")
	}
	return nil
}

type prefixProvider struct{ prefix, provider string }

// AddressPrefixProvider sets provider from the from_addr of inbound and the
// to_addr of outbound messages that have none yet, by longest matching
// address prefix.
type AddressPrefixProvider struct {
	name      string
	prefixes  []prefixProvider
	normalize *NormalizeMSISDNConfig
	log       *slog.Logger
}

// NewAddressPrefixProvider returns the middleware.
func NewAddressPrefixProvider(name string, cfg *AddressPrefixProviderConfig, log *slog.Logger) (*AddressPrefixProvider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &AddressPrefixProvider{name: name, normalize: cfg.NormalizeMSISDN, log: log}
	for p, v := range cfg.ProviderPrefixes {
		a.prefixes = append(a.prefixes, prefixProvider{p, v})
	}
	sort.Slice(a.prefixes, func(i, j int) bool {
		pi, pj := a.prefixes[i].prefix, a.prefixes[j].prefix
		if len(pi) != len(pj) {
			return len(pi) > len(pj)
		}
		return pi < pj
	})
	return a, nil
}

// Name implements Middleware.
func (a *AddressPrefixProvider) Name() string { return a.name }

// NormalizeMSISDN normalises a phone number as Vumi's
// vumi.utils.normalize_msisdn does: short codes (5 characters or fewer)
// are untouched; otherwise only digits and '+' are kept, a leading "00"
// becomes "+", a leading "0" becomes "+<country code>", and a number
// starting with the country code gets a "+".
func NormalizeMSISDN(raw, countryCode string) string {
	if len(raw) <= 5 {
		return raw
	}
	var b strings.Builder
	for _, c := range raw {
		if (c >= '0' && c <= '9') || c == '+' {
			b.WriteRune(c)
		}
	}
	s := b.String()
	switch {
	case strings.HasPrefix(s, "00"):
		return "+" + s[2:]
	case strings.HasPrefix(s, "0"):
		return "+" + countryCode + s[1:]
	case strings.HasPrefix(s, "+"):
		return s
	case strings.HasPrefix(s, countryCode):
		return "+" + s
	}
	return s
}

func (a *AddressPrefixProvider) provider(ctx context.Context, addr *string, c Context) *string {
	if addr == nil {
		a.log.LogAttrs(ctx, slog.LevelError, "address for determining message provider cannot be null; provider not set",
			slog.String("middleware", a.name), slog.String("connector", c.Connector))
		return nil
	}
	s := *addr
	if a.normalize != nil {
		s = NormalizeMSISDN(s, a.normalize.CountryCode)
		if a.normalize.StripPlus {
			s = strings.TrimLeft(s, "+")
		}
	}
	for _, p := range a.prefixes {
		if strings.HasPrefix(s, p.prefix) {
			return schemas.String(p.provider)
		}
	}
	return nil
}

// HandleInbound sets provider from from_addr when it is null.
func (a *AddressPrefixProvider) HandleInbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	if m.Provider == nil {
		m.Provider = a.provider(ctx, m.FromAddr, c)
	}
	return m, nil
}

// HandleOutbound sets provider from to_addr when it is null.
func (a *AddressPrefixProvider) HandleOutbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	if m.Provider == nil {
		m.Provider = a.provider(ctx, m.ToAddr, c)
	}
	return m, nil
}
