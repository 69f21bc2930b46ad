package middleware_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

func TestLogging(t *testing.T) {
	for _, c := range []struct {
		level, failureLevel string
		wantMsg, wantFail   string
	}{
		{"info", "error", "level=INFO", "level=ERROR"},
		{"debug", "warning", "level=DEBUG", "level=WARN"},
		{"msg", "critical", "level=INFO", "level=ERROR+4"},
		{"warn", "err", "level=WARN", "level=ERROR"},
	} {
		t.Run(c.level+"/"+c.failureLevel, func(t *testing.T) {
			log, buf := newLog(slog.LevelDebug)
			mw, err := middleware.NewLogging("log", &middleware.LoggingConfig{LogLevel: c.level, FailureLogLevel: c.failureLevel}, log)
			if err != nil {
				t.Fatal(err)
			}
			for _, phase := range []middleware.Context{consume, publish} {
				mw.HandleInbound(ctx, msg("+2776", "1234"), phase)
				mw.HandleOutbound(ctx, msg("1234", "+2776"), phase)
				mw.HandleEvent(ctx, &schemas.Event{EventID: "e1", EventType: schemas.EventAck, UserMessageID: "m1"}, phase)
				mw.HandleFailure(ctx, &schemas.Failure{FailureID: "f1", Reason: "boom"}, phase)
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 8 {
				t.Fatalf("%d lines:\n%s", len(lines), buf.String())
			}
			for i, dir := range []string{"inbound", "outbound", "event", "failure"} {
				for _, line := range []string{lines[i], lines[i+4]} {
					want := c.wantMsg
					if dir == "failure" {
						want = c.wantFail
					}
					if !strings.Contains(line, want+" ") || !strings.Contains(line, "Processed "+dir+" message for sms: ") {
						t.Errorf("line %q, want %s and direction %s", line, want, dir)
					}
				}
			}
			if !strings.Contains(lines[0], "phase=consume") || !strings.Contains(lines[4], "phase=publish") {
				t.Errorf("phases: %q / %q", lines[0], lines[4])
			}
		})
	}
	// A level below the logger's is not formatted at all.
	log, buf := newLog(slog.LevelInfo)
	mw, _ := middleware.NewLogging("log", &middleware.LoggingConfig{LogLevel: "debug", FailureLogLevel: "error"}, log)
	mw.HandleInbound(ctx, msg("+2776", "1234"), consume)
	if buf.String() != "" {
		t.Errorf("debug line logged at info: %s", buf.String())
	}
	for _, bad := range []middleware.LoggingConfig{{LogLevel: "loud", FailureLogLevel: "error"}, {LogLevel: "info", FailureLogLevel: "x"}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
