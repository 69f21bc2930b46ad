package middleware_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

var (
	consume = middleware.Context{Phase: middleware.Consume, Connector: "sms", Worker: "w"}
	publish = middleware.Context{Phase: middleware.Publish, Connector: "sms", Worker: "w"}
)

func msg(from, to string) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	if from != "" {
		m.FromAddr = schemas.String(from)
	}
	if to != "" {
		m.ToAddr = schemas.String(to)
	}
	m.TransportName = schemas.String("sms")
	m.Content = schemas.String("hi")
	return m
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// logBuffer is a slog handler writing text into a buffer, safe for
// concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLog(level slog.Level) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level})), b
}

var ctx = context.Background()
