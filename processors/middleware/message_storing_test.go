package middleware_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

type written struct {
	topic, key string
	value      []byte
}

type memWriter struct {
	mu   sync.Mutex
	recs []written
	fail bool
}

func (w *memWriter) Write(_ context.Context, topic string, key, value []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return errors.New("broker unreachable")
	}
	w.recs = append(w.recs, written{topic, string(key), value})
	return nil
}

func testCodecs() *schemas.Codecs {
	c := schemas.NewCodecs(nil)
	c.UserMessage.SetID(1)
	c.Event.SetID(2)
	return c
}

func newStoring(t *testing.T, cfg *middleware.StoringConfig, w middleware.StoreWriter) *middleware.Storing {
	t.Helper()
	s, err := middleware.NewStoring("store", cfg, middleware.StoringDeps{
		Topics: middleware.StoreTopics{Inbound: cfg.StorePrefix + ".inbound", Outbound: cfg.StorePrefix + ".outbound", Event: cfg.StorePrefix + ".event"},
		Codecs: testCodecs(), Writer: w,
		InboundKey:  func(m *schemas.UserMessage) []byte { return []byte(str(m.FromAddr)) },
		OutboundKey: func(m *schemas.UserMessage) []byte { return []byte(str(m.ToAddr)) },
		EventKey:    func(e *schemas.Event) []byte { return []byte(e.UserMessageID) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoring(t *testing.T) {
	ack := &schemas.Event{EventID: "e1", EventType: schemas.EventAck, UserMessageID: "m1", SentMessageID: schemas.String("s1"), Timestamp: schemas.Now()}
	for _, c := range []struct {
		name      string
		prefix    string
		onConsume bool
		want      []string // topic/key of each record written
	}{
		{"store_on_consume true", "message_store", true,
			[]string{"message_store.inbound/+2776", "message_store.inbound/+2776", "message_store.outbound/+2777", "message_store.outbound/+2777", "message_store.event/m1", "message_store.event/m1"}},
		{"store_on_consume false", "archive", false,
			[]string{"archive.inbound/+2776", "archive.outbound/+2777", "archive.event/m1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := middleware.NewStoringConfig()
			cfg.StorePrefix, cfg.StoreOnConsume = c.prefix, c.onConsume
			w := &memWriter{}
			s := newStoring(t, cfg, w)
			for _, phase := range []middleware.Context{consume, publish} {
				if m, err := s.HandleInbound(ctx, msg("+2776", "1234"), phase); err != nil || m == nil {
					t.Fatal(err)
				}
			}
			for _, phase := range []middleware.Context{consume, publish} {
				if m, err := s.HandleOutbound(ctx, msg("1234", "+2777"), phase); err != nil || m == nil {
					t.Fatal(err)
				}
			}
			for _, phase := range []middleware.Context{consume, publish} {
				if e, err := s.HandleEvent(ctx, ack, phase); err != nil || e == nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, r := range w.recs {
				got = append(got, r.topic+"/"+r.key)
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("written %v, want %v", got, c.want)
			}
			codecs := testCodecs()
			var m schemas.UserMessage
			if err := codecs.UserMessage.Decode(w.recs[0].value, &m); err != nil || str(m.FromAddr) != "+2776" {
				t.Errorf("stored record: %v %v", str(m.FromAddr), err)
			}
		})
	}
	w := &memWriter{fail: true}
	s := newStoring(t, middleware.NewStoringConfig(), w)
	if _, err := s.HandleInbound(ctx, msg("+2776", "1234"), publish); err == nil {
		t.Error("write failure not reported")
	}
	if err := (&middleware.StoringConfig{StorePrefix: "bad prefix"}).Validate(); err == nil || !strings.Contains(err.Error(), "key store_prefix") {
		t.Errorf("bad store_prefix: %v", err)
	}
}
