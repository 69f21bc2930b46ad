package routers

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vumi-kafka/vumi/processors/dispatcher"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// KeywordRule is one of ContentKeywordRouter's rules.
type KeywordRule struct {
	// App is the exposed name a matching message goes to. Required.
	App string `yaml:"app"`
	// Keyword must equal the message's first word, case-insensitively.
	// Required.
	Keyword string `yaml:"keyword"`
	// ToAddr, if given, must equal the message's to_addr.
	ToAddr *string `yaml:"to_addr"`
	// Prefix, if given, must start the message's from_addr.
	Prefix *string `yaml:"prefix"`
}

func (r *KeywordRule) matches(keyword string, m *schemas.UserMessage) bool {
	return keyword == r.Keyword &&
		(r.ToAddr == nil || m.To() == *r.ToAddr) &&
		(r.Prefix == nil || strings.HasPrefix(m.From(), *r.Prefix))
}

// ContentKeywordConfig configures Vumi's ContentKeywordRouter.
type ContentKeywordConfig struct {
	dispatcher.Config `yaml:",inline"`
	// KeywordMappings maps an exposed name to a keyword; each entry is
	// appended to rules as {app, keyword}.
	KeywordMappings map[string]string `yaml:"keyword_mappings"`
	// Rules route by first word, optionally to_addr and from_addr prefix.
	Rules []KeywordRule `yaml:"rules"`
	// FallbackApplication receives inbound messages no rule matches;
	// without it they go to failures.
	FallbackApplication string `yaml:"fallback_application"`
	// TransportMappings maps an outbound message's from_addr to the
	// transport name it is sent through. Required.
	TransportMappings map[string]string `yaml:"transport_mappings"`
	// DispatcherName was Vumi's Redis key prefix; accepted, not needed.
	DispatcherName string `yaml:"dispatcher_name"`
	// RedisManager is accepted for Vumi compatibility and ignored.
	RedisManager map[string]any `yaml:"redis_manager"`
	MemoryConfig `yaml:",inline"`
}

func (c *ContentKeywordConfig) base() *dispatcher.Config { return &c.Config }

// IO implements topology.WorkerConfig: the base's topics and the loop.
func (c *ContentKeywordConfig) IO(name string) topology.IO {
	return dispatcher.WithLoopback(c.Config.IO(name), name)
}

// Validate implements topology.WorkerConfig.
func (c *ContentKeywordConfig) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	for i, r := range c.Rules {
		key := fmt.Sprintf("rules[%d]", i)
		if r.App == "" || r.Keyword == "" {
			return fmt.Errorf("key %s: rule definition must contain values for both 'app' and 'keyword'", key)
		}
		if err := checkExposed(&c.Config, key+".app", r.App); err != nil {
			return err
		}
	}
	for _, app := range sortedKeys(c.KeywordMappings) {
		if err := checkExposed(&c.Config, "keyword_mappings", app); err != nil {
			return err
		}
		if c.KeywordMappings[app] == "" {
			return fmt.Errorf("key keyword_mappings.%s: keyword is empty", app)
		}
	}
	if len(c.Rules) == 0 && len(c.KeywordMappings) == 0 && c.FallbackApplication == "" {
		return errors.New("key rules: give rules, keyword_mappings or fallback_application")
	}
	if c.FallbackApplication != "" {
		if err := checkExposed(&c.Config, "fallback_application", c.FallbackApplication); err != nil {
			return err
		}
	}
	if len(c.TransportMappings) == 0 {
		return errors.New("key transport_mappings: is required (from_addr -> transport name)")
	}
	if err := validateTransportMappings(&c.Config, c.TransportMappings); err != nil {
		return err
	}
	return c.MemoryConfig.validate()
}

// rules returns the rules in matching order: rules, then keyword_mappings
// (sorted by exposed name), keywords lower-cased.
func (c *ContentKeywordConfig) rules() []KeywordRule {
	out := make([]KeywordRule, 0, len(c.Rules)+len(c.KeywordMappings))
	for _, r := range c.Rules {
		r.Keyword = strings.ToLower(r.Keyword)
		out = append(out, r)
	}
	for _, app := range sortedKeys(c.KeywordMappings) {
		out = append(out, KeywordRule{App: app, Keyword: strings.ToLower(c.KeywordMappings[app])})
	}
	return out
}

// ContentKeywordKind is Vumi's ContentKeywordRouter: inbound messages go
// by their first word (rules, keyword_mappings, fallback_application);
// outbound messages by from_addr (transport_mappings), and the exposed
// name that sent each one is remembered (expire_routing_memory) so that
// its events go back there.
func ContentKeywordKind() *topology.Kind {
	return routerKind("content_keyword_router", vumiClasses("ContentKeywordRouter"),
		"routes inbound by first word; outbound by from_addr; events home by routing memory",
		func() *ContentKeywordConfig { return &ContentKeywordConfig{} },
		newContentKeyword)
}

func newContentKeyword(c *ContentKeywordConfig) (dispatcher.Router, error) {
	return &contentKeyword{cfg: c, rules: c.rules(), memory: newMemory(c.MemoryConfig)}, nil
}

type contentKeyword struct {
	cfg   *ContentKeywordConfig
	rules []KeywordRule
	*memory
}

// firstWord is Vumi's get_first_word: content up to the first space.
func firstWord(content string) string {
	w, _, _ := strings.Cut(content, " ")
	return w
}

func (r *contentKeyword) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, _ string) error {
	keyword := strings.ToLower(firstWord(m.Text()))
	matched := false
	for i := range r.rules {
		if r.rules[i].matches(keyword, m) {
			matched = true
			if err := c.PublishInbound(r.rules[i].App, cloneMessage(m)); err != nil {
				return err
			}
		}
	}
	if matched {
		return nil
	}
	if r.cfg.FallbackApplication != "" {
		return c.PublishInbound(r.cfg.FallbackApplication, m)
	}
	return noRoute("message could not be routed: keyword %q matches no rule and there is no fallback_application", keyword)
}

func (r *contentKeyword) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, transport string) error {
	return r.routeEvent(c, e, transport)
}

func (r *contentKeyword) DispatchOutboundMessage(c *dispatcher.Context, m *schemas.UserMessage, exposed string) error {
	name, ok := r.cfg.TransportMappings[m.From()]
	if !ok {
		return noRoute("no transport for from_addr %q (transport_mappings)", m.From())
	}
	if err := c.PublishOutbound(name, m); err != nil {
		return err
	}
	return r.remember(c, m.MessageID, exposed)
}
