package archive

import (
	"fmt"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

// BenchmarkSegment measures the file side of the archiver: typical SMS rows
// into one Parquet file (zstd), finished durably (sync, rename, sync dir).
func BenchmarkSegment(b *testing.B) {
	cfg := &Config{Directory: b.TempDir(), Transports: []string{"sms"}}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	const rows = 10000
	msgs := make([]MessageRow, rows)
	for i := range msgs {
		m := sms(fmt.Sprintf("%032x", i), time.Date(2026, 11, 22, 8, 0, i%60, 0, time.UTC), fmt.Sprintf("+2782%07d", i))
		m.Content = schemas.String("Your balance is R12.34. Reply 1 for a bundle, 2 for airtime, 3 to speak to an agent. Thank you for using the service!")
		r, err := messageRow(m, 0, int64(i))
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = r
	}
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		dir := Dir(cfg.Directory, KindInbound, "sms", fmt.Sprintf("d%d", n))
		seg, err := openSegment(dir, 0, 0, false, cfg, time.Now(), nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range msgs {
			if err := seg.addMessage(r, 260); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := seg.finish(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
