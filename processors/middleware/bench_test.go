package middleware_test

import (
	"log/slog"
	"testing"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

// BenchmarkStack4Layers is the cost a four-layer stack adds per message:
// address translation, tagging, provider by prefix and logging (at a
// level the logger does not emit, as in production at info), on an
// inbound message in the consume phase and its reply in the publish
// phase. Target: at most 5 µs per message.
func BenchmarkStack4Layers(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	at, _ := middleware.NewAddressTranslation("at", &middleware.AddressTranslationConfig{OutboundMap: map[string]string{"alice": "+27820000001"}})
	tg, _ := middleware.NewTagging("tag", taggingConfig(`^(\d+)$`, "shortcode", `sc-\1`, `^sc-(\d+)$`, map[string]any{}))
	pp, _ := middleware.NewAddressPrefixProvider("pp", &middleware.AddressPrefixProviderConfig{ProviderPrefixes: map[string]string{"+2782": "VODACOM", "+2783": "MTN"}}, log)
	lg, _ := middleware.NewLogging("log", &middleware.LoggingConfig{LogLevel: "debug", FailureLogLevel: "error"}, log)
	s := middleware.NewStack(middleware.Entry{Middleware: at}, middleware.Entry{Middleware: tg}, middleware.Entry{Middleware: pp}, middleware.Entry{Middleware: lg})
	in := msg("+27821234567", "1234")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m := *in
		m.HelperMetadata = nil
		m.Provider = nil
		out, err := s.Inbound(ctx, &m, consume)
		if err != nil || out == nil {
			b.Fatal(err)
		}
		reply := schemas.UserMessage{MessageID: "r", ToAddr: out.FromAddr, FromAddr: out.ToAddr, HelperMetadata: out.HelperMetadata}
		if _, err := s.Outbound(ctx, &reply, publish); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2/1000, "µs/msg")
}
