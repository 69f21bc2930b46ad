package middleware_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

// memKV is an in-memory KV for tests.
type memKV struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail bool
}

func (k *memKV) Get(key string) ([]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[key]
	return v, ok
}

func (k *memKV) Put(_ context.Context, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return errors.New("kafka down")
	}
	k.m[key] = v
	return nil
}

func (k *memKV) Delete(_ context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
	return nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func session(m *schemas.UserMessage, ev schemas.SessionEvent) *schemas.UserMessage {
	if ev != "" {
		m.SessionEvent = &ev
	}
	return m
}

func times(m *schemas.UserMessage, field string) (start, end any) {
	f, _ := m.HelperMetadata[field].(map[string]any)
	return f["session_start"], f["session_end"]
}

func TestSessionLength(t *testing.T) {
	clk := &clock{time.Unix(1000, 0)}
	for _, c := range []struct {
		name    string
		cfg     func(*middleware.SessionLengthConfig)
		inbound bool
		prepare func(m *schemas.UserMessage)
	}{
		{"inbound by transport_name", nil, true, nil},
		{"outbound by transport_name", nil, false, nil},
		{"by tag", func(c *middleware.SessionLengthConfig) { c.NamespaceType = middleware.NamespaceTag }, true,
			func(m *schemas.UserMessage) { middleware.SetTag(m, middleware.Tag{Pool: "pool", Name: "tag"}) }},
		{"custom field_name", func(c *middleware.SessionLengthConfig) { c.FieldName = "sess" }, true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := middleware.NewSessionLengthConfig()
			if c.cfg != nil {
				c.cfg(cfg)
			}
			kv := &memKV{m: map[string][]byte{}}
			log, _ := newLog(slog.LevelDebug)
			mw, err := middleware.NewSessionLength("sl", cfg, kv, log, clk.now)
			if err != nil {
				t.Fatal(err)
			}
			handle := func(ev schemas.SessionEvent) *schemas.UserMessage {
				var m *schemas.UserMessage
				if c.inbound {
					m = session(msg("+2776", "1234"), ev)
				} else {
					m = session(msg("1234", "+2776"), ev)
				}
				if c.prepare != nil {
					c.prepare(m)
				}
				var out *schemas.UserMessage
				if c.inbound {
					out, err = mw.HandleInbound(ctx, m, consume)
				} else {
					out, err = mw.HandleOutbound(ctx, m, publish)
				}
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			clk.t = time.Unix(1000, 500000000)
			m := handle(schemas.SessionNew)
			if s, e := times(m, cfg.FieldName); s != 1000.5 || e != nil {
				t.Fatalf("new: start %v end %v", s, e)
			}
			if kv.m == nil || len(kv.m) != 1 {
				t.Fatalf("state: %v", kv.m)
			}
			for k := range kv.m {
				if !strings.HasSuffix(k, ":+2776:session_created") {
					t.Errorf("key %q", k)
				}
			}
			clk.t = time.Unix(1010, 0)
			if s, e := times(handle(schemas.SessionResume), cfg.FieldName); s != 1000.5 || e != nil {
				t.Errorf("resume: start %v end %v", s, e)
			}
			if s, _ := times(handle(""), cfg.FieldName); s != 1000.5 {
				t.Errorf("no session event: start %v", s)
			}
			clk.t = time.Unix(1020, 0)
			if s, e := times(handle(schemas.SessionClose), cfg.FieldName); s != 1000.5 || e != 1020.0 {
				t.Errorf("close: start %v end %v", s, e)
			}
			if len(kv.m) != 0 {
				t.Errorf("state left after close: %v", kv.m)
			}
			if s, e := times(handle(schemas.SessionResume), cfg.FieldName); s != nil || e != nil {
				t.Errorf("after close: start %v end %v", s, e)
			}
		})
	}
}

func TestSessionLengthEdges(t *testing.T) {
	clk := &clock{time.Unix(1000, 0)}
	kv := &memKV{m: map[string][]byte{}}
	log, buf := newLog(slog.LevelDebug)
	cfg := middleware.NewSessionLengthConfig()
	cfg.Timeout = 60
	mw, _ := middleware.NewSessionLength("sl", cfg, kv, log, clk.now)

	// Existing session_start / session_end are kept.
	m := session(msg("+2776", "1234"), schemas.SessionNew)
	m.HelperMetadata = schemas.Metadata{"session": map[string]any{"session_start": 5.0}}
	out, _ := mw.HandleInbound(ctx, m, consume)
	if s, _ := times(out, "session"); s != 5.0 || len(kv.m) != 0 {
		t.Errorf("existing start replaced: %v, state %v", s, kv.m)
	}
	// Timeout: the start time is forgotten after timeout seconds.
	mw.HandleInbound(ctx, session(msg("+2777", "1234"), schemas.SessionNew), consume)
	clk.t = clk.t.Add(61 * time.Second)
	out, _ = mw.HandleInbound(ctx, session(msg("+2777", "1234"), schemas.SessionResume), consume)
	if s, _ := times(out, "session"); s != nil {
		t.Errorf("start after timeout: %v", s)
	}
	// Missing namespace or address: logged, message passed on.
	noTransport := msg("+2776", "1234")
	noTransport.TransportName = nil
	if out, err := mw.HandleInbound(ctx, noTransport, consume); err != nil || out == nil {
		t.Errorf("no namespace: %v %v", out, err)
	}
	if out, err := mw.HandleInbound(ctx, msg("", "1234"), consume); err != nil || out == nil {
		t.Errorf("no address: %v %v", out, err)
	}
	if n := strings.Count(buf.String(), "level=ERROR"); n != 2 {
		t.Errorf("%d error lines, want 2:\n%s", n, buf.String())
	}
	// A failing state write is an error (the message goes to failures).
	kv.fail = true
	if _, err := mw.HandleInbound(ctx, session(msg("+2778", "1234"), schemas.SessionNew), consume); err == nil {
		t.Error("state write failure not reported")
	}
	for _, c := range []struct {
		mod  func(*middleware.SessionLengthConfig)
		want string
	}{
		{func(c *middleware.SessionLengthConfig) { c.Timeout = 0 }, "key timeout"},
		{func(c *middleware.SessionLengthConfig) { c.NamespaceType = "x" }, "key namespace_type"},
		{func(c *middleware.SessionLengthConfig) { c.FieldName = "" }, "key field_name"},
	} {
		cfg := middleware.NewSessionLengthConfig()
		c.mod(cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v, want %q", err, c.want)
		}
	}
}
