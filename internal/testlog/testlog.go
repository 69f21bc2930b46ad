// Package testlog gives tests a logger that is silent unless VUMI_TEST_LOG
// is set in the environment. It is imported by tests only.
package testlog

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// New logs to t's log at debug level when VUMI_TEST_LOG is set, and
// nowhere otherwise. Use Stderr for a logger that goroutines may still
// write to after the test has ended.
func New(t testing.TB) *slog.Logger {
	return logTo(Writer(t))
}

// Stderr logs to stderr at debug level when VUMI_TEST_LOG is set, and
// nowhere otherwise.
func Stderr() *slog.Logger {
	return logTo(os.Stderr)
}

func logTo(w io.Writer) *slog.Logger {
	if os.Getenv("VUMI_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Writer writes each Write call to t's log as one line.
func Writer(t testing.TB) io.Writer { return writer{t} }

type writer struct{ t testing.TB }

func (w writer) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
