package middleware

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/vumi-kafka/vumi/schemas"
)

// AddressTranslationConfig configures AddressTranslation (Vumi's
// vumi.middleware.address_translator.AddressTranslationMiddleware).
type AddressTranslationConfig struct {
	// OutboundMap maps old to_addr values of outbound messages to new
	// ones; inbound messages get the inverse mapping applied to their
	// from_addr. Addresses not in the map are left alone. Required.
	OutboundMap map[string]string `yaml:"outbound_map"`
}

// Validate checks the map: required, and invertible.
func (c *AddressTranslationConfig) Validate() error {
	if c.OutboundMap == nil {
		return errors.New("key outbound_map: is required")
	}
	seen := map[string]string{}
	keys := make([]string, 0, len(c.OutboundMap))
	for k := range c.OutboundMap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.OutboundMap[k]
		if prev, dup := seen[v]; dup {
			return fmt.Errorf("key outbound_map: %q and %q both map to %q, so the inverse mapping for inbound from_addr is ambiguous", prev, k, v)
		}
		seen[v] = k
	}
	return nil
}

// AddressTranslation rewrites outbound to_addr through outbound_map and
// inbound from_addr through its inverse, in both phases.
type AddressTranslation struct {
	name     string
	outbound map[string]string
	inbound  map[string]string
}

// NewAddressTranslation returns the middleware.
func NewAddressTranslation(name string, cfg *AddressTranslationConfig) (*AddressTranslation, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &AddressTranslation{name: name, outbound: map[string]string{}, inbound: map[string]string{}}
	for k, v := range cfg.OutboundMap {
		a.outbound[k] = v
		a.inbound[v] = k
	}
	return a, nil
}

// Name implements Middleware.
func (a *AddressTranslation) Name() string { return a.name }

// HandleOutbound maps to_addr.
func (a *AddressTranslation) HandleOutbound(_ context.Context, m *schemas.UserMessage, _ Context) (*schemas.UserMessage, error) {
	if m.ToAddr != nil {
		if real, ok := a.outbound[*m.ToAddr]; ok {
			m.ToAddr = schemas.String(real)
		}
	}
	return m, nil
}

// HandleInbound maps from_addr back.
func (a *AddressTranslation) HandleInbound(_ context.Context, m *schemas.UserMessage, _ Context) (*schemas.UserMessage, error) {
	if m.FromAddr != nil {
		if fake, ok := a.inbound[*m.FromAddr]; ok {
			m.FromAddr = schemas.String(fake)
		}
	}
	return m, nil
}
