package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

// failureLog keeps the failures the middleware writes itself.
type failureLog struct {
	got []*schemas.Failure
	to  []string
	err error
}

func (f *failureLog) WriteFailure(_ context.Context, connector string, fl *schemas.Failure) error {
	if f.err != nil {
		return f.err
	}
	f.got, f.to = append(f.got, fl), append(f.to, connector)
	return nil
}

func newAccounts(t *testing.T, cfg *middleware.AccountConfig, kv *memKV, fw *failureLog) *middleware.Accounts {
	t.Helper()
	a, err := middleware.NewAccounts("acc", "w", cfg, kv, fw, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tagged(m *schemas.UserMessage, pool, tag string) *schemas.UserMessage {
	middleware.SetTag(m, middleware.Tag{Pool: pool, Name: tag})
	return m
}

func TestAccountsLinking(t *testing.T) {
	cfg := &middleware.AccountConfig{
		Accounts: map[string]string{"a": "active", "b": "active", "c": "active", "d": "active", "e": "active", "off": "inactive"},
		Rules: []middleware.AccountRule{
			{Account: "a", Tag: "longcode:12345"},
			{Account: "b", TagPool: "shortcodes"},
			{Account: "c", TransportName: "ussd", AppAddr: "*120*1#"},
			{Account: "d", TransportName: "sms"},
			{Account: "off", TransportName: "xmpp"},
		},
	}
	a := newAccounts(t, cfg, &memKV{m: map[string][]byte{}}, &failureLog{})
	ussd := func(from, to string) *schemas.UserMessage {
		m := msg(from, to)
		m.TransportName = schemas.String("ussd")
		return m
	}
	stamped := msg("+27820000001", "1234")
	middleware.SetAccount(&stamped.HelperMetadata, "e")
	cases := []struct {
		name    string
		m       *schemas.UserMessage
		inbound bool
		account string
		err     error
	}{
		{"tag", tagged(msg("+27820000001", "12345"), "longcode", "12345"), true, "a", nil},
		{"tag pool", tagged(msg("+27820000001", "555"), "shortcodes", "555"), true, "b", nil},
		{"transport and app address of inbound", ussd("+27820000001", "*120*1#"), true, "c", nil},
		{"app address of outbound is from_addr", ussd("*120*1#", "+27820000001"), false, "c", nil},
		{"other ussd code: no rule", ussd("+27820000001", "*120*2#"), true, "", middleware.ErrAccountUnlinked},
		{"transport", msg("+27820000001", "1234"), true, "d", nil},
		{"already stamped keeps its account", stamped, true, "e", nil},
		{"inactive", func() *schemas.UserMessage { m := msg("x", "y"); m.TransportName = schemas.String("xmpp"); return m }(), true, "off", middleware.ErrAccountInactive},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out *schemas.UserMessage
			var err error
			if c.inbound {
				out, err = a.HandleInbound(context.Background(), c.m, consume)
			} else {
				out, err = a.HandleOutbound(context.Background(), c.m, consume)
			}
			if c.err != nil {
				if !errors.Is(err, c.err) || out != nil {
					t.Fatalf("got %v, %v; want %v", out, err, c.err)
				}
				if code := worker.CodeOf(err); code == nil || *code != schemas.FailurePermanent {
					t.Errorf("failure code %v, want permanent", code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := middleware.AccountOf(out.HelperMetadata); got != c.account {
				t.Errorf("account %q, want %q", got, c.account)
			}
		})
	}
}

func TestAccountsStates(t *testing.T) {
	kv := &memKV{m: map[string][]byte{}}
	fw := &failureLog{}
	cfg := &middleware.AccountConfig{Accounts: map[string]string{"acme": "active"}, Rules: []middleware.AccountRule{{Account: "acme"}}}
	a := newAccounts(t, cfg, kv, fw)
	ctx := context.Background()
	if _, err := a.HandleOutbound(ctx, msg("1234", "+27820000001"), consume); err != nil {
		t.Fatalf("active by config: %v", err)
	}
	// The topic's state wins over the config's.
	b, _ := json.Marshal(middleware.AccountState{State: "inactive", Reason: "unpaid", UpdatedAt: time.Now()})
	kv.m["acme"] = b
	_, err := a.HandleOutbound(ctx, msg("1234", "+27820000001"), consume)
	if err == nil || err.Error() != `account "acme" rejected: account is inactive (unpaid)` {
		t.Fatalf("inactive by topic: %v", err)
	}
	// Publishing: the failure is written by the middleware and the
	// message dropped.
	m := msg("+27820000001", "1234")
	out, err := a.HandleInbound(ctx, m, publish)
	if err != nil || out != nil || len(fw.got) != 1 {
		t.Fatalf("publish: %v %v %d", out, err, len(fw.got))
	}
	f := fw.got[0]
	if fw.to[0] != "sms" || f.Reason != `middleware acc publish_inbound: account "acme" rejected: account is inactive (unpaid)` ||
		*f.FailureCode != schemas.FailurePermanent || !strings.Contains(*f.Message, m.MessageID) || string(f.Key) != "+27820000001" {
		t.Errorf("failure %+v to %s", f, fw.to[0])
	}
	// A failure that cannot be written is an error, never a silent drop.
	fw.err = errors.New("broker down")
	if _, err := a.HandleInbound(ctx, msg("+27820000001", "1234"), publish); err == nil || !strings.Contains(err.Error(), "broker down") {
		t.Errorf("unwritable failure: %v", err)
	}
	// An account in neither the topic nor the config is unknown.
	kv.m["acme"] = []byte("not json")
	cfg2 := &middleware.AccountConfig{Rules: []middleware.AccountRule{{Account: "ghost"}}}
	a2 := newAccounts(t, cfg2, kv, &failureLog{})
	if _, err := a2.HandleInbound(ctx, msg("x", "y"), consume); !errors.Is(err, middleware.ErrAccountUnknown) {
		t.Errorf("unknown: %v", err)
	}
	// Unlinked messages pass when allowed.
	a3 := newAccounts(t, &middleware.AccountConfig{AllowUnlinked: true}, kv, &failureLog{})
	if out, err := a3.HandleInbound(ctx, msg("x", "y"), consume); err != nil || out == nil {
		t.Errorf("allow_unlinked: %v %v", out, err)
	}
}

func TestAccountsEvents(t *testing.T) {
	cfg := &middleware.AccountConfig{Accounts: map[string]string{"a": "active", "b": "inactive"},
		Rules: []middleware.AccountRule{{Account: "a", TransportName: "sms"}, {Account: "b", TransportName: "ussd", AppAddr: "*1#"}, {Account: "b", TransportName: "ussd"}}}
	a := newAccounts(t, cfg, &memKV{m: map[string][]byte{}}, &failureLog{})
	e := &schemas.Event{EventType: schemas.EventAck, UserMessageID: "m1", TransportName: schemas.String("sms")}
	out, err := a.HandleEvent(context.Background(), e, publish)
	if acc, _ := middleware.AccountOf(out.HelperMetadata); err != nil || acc != "a" {
		t.Errorf("sms event: %q %v", acc, err)
	}
	// On ussd an address rule comes first: the event's account is its
	// message's, not guessed.
	e = &schemas.Event{EventType: schemas.EventAck, UserMessageID: "m2", TransportName: schemas.String("ussd")}
	out, err = a.HandleEvent(context.Background(), e, publish)
	if _, ok := middleware.AccountOf(out.HelperMetadata); err != nil || ok {
		t.Errorf("ussd event stamped: %v", out.HelperMetadata)
	}
}

func TestAccountConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  middleware.AccountConfig
		want string
	}{
		{middleware.AccountConfig{}, "key rules: at least one rule is required (or allow_unlinked: true)"},
		{middleware.AccountConfig{Rules: []middleware.AccountRule{{}}}, "key rules[0].account: an account name is required"},
		{middleware.AccountConfig{Rules: []middleware.AccountRule{{Account: "a", Tag: "nocolon"}}}, `key rules[0].tag: "nocolon" is not pool:name`},
		{middleware.AccountConfig{Accounts: map[string]string{"a": "paused"}, AllowUnlinked: true}, `key accounts.a: "paused" is not active or inactive`},
		{middleware.AccountConfig{Accounts: map[string]string{"a\n": "active"}, AllowUnlinked: true}, `key accounts: account name "a\n" has a control character`},
	}
	for _, c := range cases {
		if err := c.cfg.Validate(); err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	ok := middleware.AccountConfig{Rules: []middleware.AccountRule{{Account: "a"}}}
	if err := ok.Validate(); err != nil || ok.Topic != middleware.DefaultAccountsTopic {
		t.Errorf("defaults: %v %q", err, ok.Topic)
	}
}

// FuzzParseAccountState: values of the accounts topic come from outside
// (any producer can write the topic).
func FuzzParseAccountState(f *testing.F) {
	f.Add([]byte(`{"state":"active","updated_at":"2026-11-22T10:00:00Z"}`))
	f.Add([]byte(`{"state":"inactive","reason":"unpaid","updated_at":"2026-11-22T10:00:00Z"}`))
	f.Add([]byte(`{"state":"paused"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := middleware.ParseAccountState(b)
		if err == nil && st.State != middleware.AccountActive && st.State != middleware.AccountInactive {
			t.Fatalf("accepted state %q", st.State)
		}
	})
}
