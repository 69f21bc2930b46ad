package middleware

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/vumi-kafka/vumi/schemas"
)

// LoggingConfig configures LoggingMiddleware (Vumi's
// vumi.middleware.logging.LoggingMiddleware).
type LoggingConfig struct {
	// LogLevel for inbound and outbound messages and events: debug, info,
	// warning (or warn), error, critical. Default info.
	LogLevel string `yaml:"log_level"`
	// FailureLogLevel for failure messages. Default error.
	FailureLogLevel string `yaml:"failure_log_level"`
}

// NewLoggingConfig returns the defaults.
func NewLoggingConfig() *LoggingConfig {
	return &LoggingConfig{LogLevel: "info", FailureLogLevel: "error"}
}

// Validate checks the levels.
func (c *LoggingConfig) Validate() error {
	if _, err := ParseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("key log_level: %w", err)
	}
	if _, err := ParseLevel(c.FailureLogLevel); err != nil {
		return fmt.Errorf("key failure_log_level: %w", err)
	}
	return nil
}

// LevelCritical is Vumi's critical log level, above slog's error.
const LevelCritical = slog.LevelError + 4

// ParseLevel maps Vumi's log level names (vumi.log: debug, info, msg,
// warning, error, err, critical) onto slog levels.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "msg":
		return slog.LevelInfo, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "error", "err":
		return slog.LevelError, nil
	case "critical":
		return LevelCritical, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want debug, info, warning, error or critical)", s)
}

// Logging logs every message, event and failure that passes through it, in
// both phases, as Vumi's LoggingMiddleware does.
type Logging struct {
	name         string
	log          *slog.Logger
	level        slog.Level
	failureLevel slog.Level
}

// NewLogging returns a logging middleware.
func NewLogging(name string, cfg *LoggingConfig, log *slog.Logger) (*Logging, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	level, _ := ParseLevel(cfg.LogLevel)
	failureLevel, _ := ParseLevel(cfg.FailureLogLevel)
	return &Logging{name: name, log: log, level: level, failureLevel: failureLevel}, nil
}

// Name implements Middleware.
func (l *Logging) Name() string { return l.name }

func (l *Logging) logf(ctx context.Context, level slog.Level, direction string, c Context, v json.Marshaler) {
	if !l.log.Enabled(ctx, level) {
		return
	}
	b, err := v.MarshalJSON()
	if err != nil {
		b = []byte(fmt.Sprintf("<unencodable: %v>", err))
	}
	l.log.Log(ctx, level, fmt.Sprintf("Processed %s message for %s: %s", direction, c.Connector, b),
		"middleware", l.name, "phase", c.Phase.String())
}

// HandleInbound implements Inbound.
func (l *Logging) HandleInbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	l.logf(ctx, l.level, "inbound", c, m)
	return m, nil
}

// HandleOutbound implements Outbound.
func (l *Logging) HandleOutbound(ctx context.Context, m *schemas.UserMessage, c Context) (*schemas.UserMessage, error) {
	l.logf(ctx, l.level, "outbound", c, m)
	return m, nil
}

// HandleEvent implements Event.
func (l *Logging) HandleEvent(ctx context.Context, e *schemas.Event, c Context) (*schemas.Event, error) {
	l.logf(ctx, l.level, "event", c, e)
	return e, nil
}

// HandleFailure implements Failure.
func (l *Logging) HandleFailure(ctx context.Context, f *schemas.Failure, c Context) (*schemas.Failure, error) {
	l.logf(ctx, l.failureLevel, "failure", c, f)
	return f, nil
}
