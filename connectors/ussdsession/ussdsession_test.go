package ussdsession

import (
	"strings"
	"testing"
	"time"
)

func TestValidTableName(t *testing.T) {
	for _, ok := range []string{"airtel", "shared-airtel", "vumi.transports.airtel_x", "A1"} {
		if err := ValidTableName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "vumi.transports.airtel:x", ".x", "a b", "a/b", strings.Repeat("a", 201)} {
		if err := ValidTableName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSweepEvery(t *testing.T) {
	for ttl, want := range map[time.Duration]time.Duration{
		2 * time.Second: time.Second, 40 * time.Second: 10 * time.Second, time.Hour: time.Minute,
	} {
		if got := sweepEvery(ttl); got != want {
			t.Errorf("sweepEvery(%v) = %v, want %v", ttl, got, want)
		}
	}
}
