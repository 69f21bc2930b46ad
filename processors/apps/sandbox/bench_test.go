package sandbox

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

// fakeContext is an app.Context without Kafka: replies are counted, state
// is kept in memory.
type fakeContext struct {
	replies int
	state   []byte
}

func (f *fakeContext) Context() context.Context { return context.Background() }
func (f *fakeContext) Key() string              { return "27761234567" }
func (f *fakeContext) ReplyTo(*schemas.UserMessage, string, bool) error {
	f.replies++
	return nil
}
func (f *fakeContext) ReplyToGroup(*schemas.UserMessage, string, bool) error {
	f.replies++
	return nil
}
func (f *fakeContext) SendTo(string, string, string) error { f.replies++; return nil }
func (f *fakeContext) LoadState(v any) (bool, error) {
	if f.state == nil {
		return false, nil
	}
	return true, json.Unmarshal(f.state, v)
}
func (f *fakeContext) SaveState(v any) error {
	b, err := json.Marshal(v)
	f.state = b
	return err
}
func (f *fakeContext) SetState(b []byte) { f.state = b }

const benchApp = `api.on_inbound_message = function (command) {
    api.request('kv.incr', {key: 'count'}, function (r) {
        api.request('outbound.reply_to', {content: 'count ' + r.value, in_reply_to: command.msg.message_id}, function () {
            api.done();
        });
    });
};`

// BenchmarkJsSandbox is the time a warm JavaScript sandbox adds to one
// message: the inbound-message command, a kv.incr, a reply_to and done,
// with a fresh V8 context per message. It reports messages/s and the p99
// per message.
func BenchmarkJsSandbox(b *testing.B) {
	for _, bc := range []struct {
		name  string
		reuse bool
		env   map[string]string
	}{
		{"fresh_context", false, nil},
		{"reuse_context", true, nil},
	} {
		b.Run(bc.name, func(b *testing.B) { benchJS(b, bc.reuse, bc.env) })
	}
}

func benchJS(b *testing.B, reuse bool, env map[string]string) {
	cfg := &Config{flavour: jsInline, Javascript: benchApp, ReuseContext: reuse, Env: env, Sandbox: map[string]ResourceSpec{
		"kv": {Cls: ClsKV}, "outbound": {Cls: ClsOutbound},
	}}
	cfg.TransportName = "sms"
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fc := &fakeContext{}
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr, m.Content = schemas.String("27761234567"), schemas.String("1234"), schemas.String("hi")
	if err := s.process(fc, "inbound-message", m, m); err != nil { // warm up
		b.Fatal(err)
	}
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := s.process(fc, "inbound-message", m, m); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if fc.replies != b.N+1 {
		b.Fatalf("%d replies for %d messages", fc.replies, b.N+1)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
}
