package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

// Account states.
const (
	AccountActive   = "active"
	AccountInactive = "inactive"
)

// DefaultAccountsTopic is the compacted topic (without the cluster prefix)
// holding each account's state, keyed by account name.
const DefaultAccountsTopic = "vumi.accounts"

// AccountOf returns the account stamped on a message's helper_metadata:
// helper_metadata.go.user_account, where Vumi Go kept it.
func AccountOf(hm schemas.Metadata) (string, bool) {
	g, ok := hm["go"].(map[string]any)
	if !ok {
		return "", false
	}
	a, ok := g["user_account"].(string)
	if !ok || a == "" {
		return "", false
	}
	return a, true
}

// SetAccount stamps an account on helper_metadata (go.user_account).
func SetAccount(hm *schemas.Metadata, account string) {
	if *hm == nil {
		*hm = schemas.Metadata{}
	}
	g, ok := (*hm)["go"].(map[string]any)
	if !ok {
		g = map[string]any{}
		(*hm)["go"] = g
	}
	g["user_account"] = account
}

// AccountState is the value of an account in the accounts topic (JSON).
type AccountState struct {
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ParseAccountState decodes a value of the accounts topic.
func ParseAccountState(b []byte) (AccountState, error) {
	var s AccountState
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("account state: %w", err)
	}
	if s.State != AccountActive && s.State != AccountInactive {
		return s, fmt.Errorf("account state: %q is not active or inactive", s.State)
	}
	return s, nil
}

// AccountRule links messages to an account. Every condition given must
// hold; a rule with no condition matches every message. Rules are tried in
// order; the first match wins.
type AccountRule struct {
	// Account is the account the matching messages belong to. Required.
	Account string `yaml:"account"`
	// TransportName matches the message's transport_name (for messages
	// without one, the connector the worker handles it on).
	TransportName string `yaml:"transport_name"`
	// Tag matches the tag in helper_metadata.tag.tag, given as "pool:name".
	Tag string `yaml:"tag"`
	// TagPool matches the pool of that tag.
	TagPool string `yaml:"tag_pool"`
	// AppAddr matches the application's address: the to_addr of inbound
	// messages and the from_addr of outbound messages (a short code, a
	// USSD code, a bot's JID).
	AppAddr string `yaml:"app_addr"`
}

// AccountConfig configures the accounts middleware.
type AccountConfig struct {
	// Topic is the compacted topic of account states (without the
	// cluster prefix). Default vumi.accounts.
	Topic string `yaml:"topic"`
	// Accounts gives accounts' states ("active" or "inactive") for
	// accounts the topic has no entry for; an entry in the topic (written
	// by 'vumi accounts') takes precedence.
	Accounts map[string]string `yaml:"accounts"`
	// Rules link messages to accounts, first match wins. A message that
	// already carries an account (stamped by an earlier worker) keeps it.
	Rules []AccountRule `yaml:"rules"`
	// AllowUnlinked lets messages no rule matches pass without an
	// account. Default false: they are rejected to the failures topic.
	AllowUnlinked bool `yaml:"allow_unlinked"`
}

// NewAccountConfig returns the defaults.
func NewAccountConfig() *AccountConfig { return &AccountConfig{Topic: DefaultAccountsTopic} }

// Validate checks the keys.
func (c *AccountConfig) Validate() error {
	if c.Topic == "" {
		c.Topic = DefaultAccountsTopic
	}
	for name, st := range c.Accounts {
		if err := ValidAccountName(name); err != nil {
			return fmt.Errorf("key accounts: %w", err)
		}
		if st != AccountActive && st != AccountInactive {
			return fmt.Errorf("key accounts.%s: %q is not active or inactive", name, st)
		}
	}
	if len(c.Rules) == 0 && !c.AllowUnlinked {
		return errors.New("key rules: at least one rule is required (or allow_unlinked: true)")
	}
	for i, r := range c.Rules {
		if err := ValidAccountName(r.Account); err != nil {
			return fmt.Errorf("key rules[%d].account: %w", i, err)
		}
		if r.Tag != "" {
			if p, n, ok := strings.Cut(r.Tag, ":"); !ok || p == "" || n == "" {
				return fmt.Errorf("key rules[%d].tag: %q is not pool:name", i, r.Tag)
			}
		}
	}
	return nil
}

// ValidAccountName checks an account name: 1 to 128 characters, no
// control characters.
func ValidAccountName(s string) error {
	if s == "" {
		return errors.New("an account name is required")
	}
	if len(s) > 128 {
		return fmt.Errorf("account name %.20q... is longer than 128 bytes", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("account name %q has a control character", s)
		}
	}
	return nil
}

// ErrAccountInactive is the cause of rejecting a message of an inactive
// account; ErrAccountUnlinked of a message no rule links to an account;
// ErrAccountUnknown of a message linked to an account that has no state.
var (
	ErrAccountInactive = errors.New("account is inactive")
	ErrAccountUnlinked = errors.New("no account rule matches the message")
	ErrAccountUnknown  = errors.New("account is unknown (not in the accounts topic nor in the config's accounts)")
)

// AccountError is a rejected message: permanent (Vumi's
// PermanentFailure), it names the account and the rule's reason.
type AccountError struct {
	Account string
	Err     error
	Reason  string // the reason recorded with an inactive state
}

func (e *AccountError) Error() string {
	s := "rejected: " + e.Err.Error()
	if e.Account != "" {
		s = fmt.Sprintf("account %q rejected: %v", e.Account, e.Err)
	}
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

func (e *AccountError) Unwrap() error { return e.Err }

// FailureCode makes the failure permanent (see worker.CodeOf).
func (e *AccountError) FailureCode() schemas.FailureCode { return schemas.FailurePermanent }

// FailureWriter publishes a failure to <connector>.failures; the accounts
// middleware uses it for messages it rejects while they are being
// published (where no failure path of the worker applies).
type FailureWriter interface {
	WriteFailure(ctx context.Context, connector string, f *schemas.Failure) error
}

// Accounts links every message to an account (stamped as
// helper_metadata.go.user_account) and rejects the messages of inactive,
// unknown or (unless allowed) unlinked accounts: in the consume phase with
// an error, so the worker sends the message to its failures topic; in the
// publish phase by writing the failure itself and dropping the message.
// Events are stamped when a transport_name rule links them; never rejected.
type Accounts struct {
	name     string
	cfg      *AccountConfig
	states   KV
	failures FailureWriter
	worker   string
	log      *slog.Logger
}

// NewAccounts returns the middleware. states is the accounts topic.
func NewAccounts(name, worker string, cfg *AccountConfig, states KV, failures FailureWriter, log *slog.Logger) (*Accounts, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Accounts{name: name, cfg: cfg, states: states, failures: failures, worker: worker, log: log}, nil
}

// Name implements Middleware.
func (a *Accounts) Name() string { return a.name }

// Close releases the accounts topic's store.
func (a *Accounts) Close() error {
	var errs []error
	if c, ok := a.states.(interface{ Close() error }); ok {
		errs = append(errs, c.Close())
	}
	if c, ok := a.failures.(interface{ Close() error }); ok {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// State returns an account's state: the accounts topic's entry, else the
// config's; ok is false for an unknown account.
func (a *Accounts) State(account string) (AccountState, bool) {
	if raw, found := a.states.Get(account); found {
		st, err := ParseAccountState(raw)
		if err == nil {
			return st, true
		}
		a.log.Warn("accounts: unreadable state in the accounts topic; using the config's", "account", account, "error", err)
	}
	if s, found := a.cfg.Accounts[account]; found {
		return AccountState{State: s}, true
	}
	return AccountState{}, false
}

// link returns the account of a message.
func (a *Accounts) link(m *schemas.UserMessage, inbound bool, c Context) (string, bool) {
	if acc, ok := AccountOf(m.HelperMetadata); ok {
		return acc, true
	}
	transport := m.Transport()
	if transport == "" {
		transport = c.Connector
	}
	tag, hasTag := TagOf(m.HelperMetadata)
	appAddr := m.From()
	if inbound {
		appAddr = m.To()
	}
	for _, r := range a.cfg.Rules {
		if r.TransportName != "" && r.TransportName != transport {
			continue
		}
		if r.Tag != "" && (!hasTag || tag.String() != r.Tag) {
			continue
		}
		if r.TagPool != "" && (!hasTag || tag.Pool != r.TagPool) {
			continue
		}
		if r.AppAddr != "" && r.AppAddr != appAddr {
			continue
		}
		return r.Account, true
	}
	return "", false
}

func (a *Accounts) check(ctx context.Context, m *schemas.UserMessage, inbound bool, c Context) (*schemas.UserMessage, error) {
	acc, linked := a.link(m, inbound, c)
	var rejected *AccountError
	switch {
	case !linked && a.cfg.AllowUnlinked:
		return m, nil
	case !linked:
		rejected = &AccountError{Err: ErrAccountUnlinked}
	default:
		SetAccount(&m.HelperMetadata, acc)
		st, known := a.State(acc)
		switch {
		case !known:
			rejected = &AccountError{Account: acc, Err: ErrAccountUnknown}
		case st.State == AccountInactive:
			rejected = &AccountError{Account: acc, Err: ErrAccountInactive, Reason: st.Reason}
		}
	}
	if rejected == nil {
		return m, nil
	}
	if c.Phase == Consume || a.failures == nil {
		return nil, rejected
	}
	// Publishing: no worker failure path applies, so the failure is
	// written here and the message goes no further.
	js, _ := m.MarshalJSON()
	typ := schemas.TypeUserMessage
	code := schemas.FailurePermanent
	reason := (&Error{Middleware: a.name, Handler: c.Phase.String() + "_" + direction(inbound), Err: rejected}).Error()
	f := &schemas.Failure{
		FailureID: schemas.GenerateID(), Timestamp: schemas.Now(), FailureCode: &code, Reason: reason,
		Worker: schemas.String(a.worker), MessageType: &typ, Message: schemas.String(string(js)),
	}
	if inbound {
		f.Key = []byte(m.From())
	} else {
		f.Key = []byte(m.To())
	}
	if err := a.failures.WriteFailure(ctx, c.Connector, f); err != nil {
		return nil, fmt.Errorf("%v; and the failure could not be published: %w", rejected, err)
	}
	a.log.Warn("message rejected", "middleware", a.name, "message_id", m.MessageID, "reason", reason)
	return nil, nil
}

func direction(inbound bool) string {
	if inbound {
		return "inbound"
	}
	return "outbound"
}

// HandleInbound links an inbound message and rejects it for an inactive account.
func (a *Accounts) HandleInbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	return a.check(ctx, m, true, c)
}

// HandleOutbound links an outbound message and rejects it for an inactive account.
func (a *Accounts) HandleOutbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	return a.check(ctx, m, false, c)
}

// HandleEvent stamps the account of a transport_name rule (events carry
// no tag or addresses); events are never rejected: their message was
// already accepted.
func (a *Accounts) HandleEvent(_ context.Context, e *schemas.Event, c Context) (*schemas.Event, error) {
	if _, ok := AccountOf(e.HelperMetadata); ok {
		return e, nil
	}
	transport := c.Connector
	if e.TransportName != nil && *e.TransportName != "" {
		transport = *e.TransportName
	}
	for _, r := range a.cfg.Rules {
		if r.TransportName != "" && r.TransportName != transport {
			continue
		}
		if r.Tag != "" || r.TagPool != "" || r.AppAddr != "" {
			// The message may have matched this rule: the event's
			// account is the message's (queries join on the id).
			return e, nil
		}
		SetAccount(&e.HelperMetadata, r.Account)
		return e, nil
	}
	return e, nil
}
