package management

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// LogRecord is one log line kept for the logs endpoints.
type LogRecord struct {
	Time    time.Time         `json:"time"`
	Level   string            `json:"level"`
	Message string            `json:"message"`
	Worker  string            `json:"worker,omitempty"`
	Attrs   map[string]string `json:"attrs,omitempty"`
	seq     uint64
}

// LogBuffer keeps the process's most recent log records (a ring), so that
// the API can answer "the logs of channel X" and "the logs of message Y".
// Install it with Tee before the deployment starts.
type LogBuffer struct {
	mu   sync.Mutex
	ring []LogRecord
	next int
	full bool
	seq  uint64
}

// NewLogBuffer keeps the last n records.
func NewLogBuffer(n int) *LogBuffer {
	if n < 1 {
		n = 1
	}
	return &LogBuffer{ring: make([]LogRecord, n)}
}

func (b *LogBuffer) add(r LogRecord) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	r.seq = b.seq
	b.ring[b.next] = r
	b.next = (b.next + 1) % len(b.ring)
	if b.next == 0 {
		b.full = true
	}
}

// Find returns up to n of the newest records that match, oldest first.
func (b *LogBuffer) Find(n int, match func(*LogRecord) bool) []LogRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []LogRecord
	size := b.next
	if b.full {
		size = len(b.ring)
	}
	for i := 0; i < size && len(out) < n; i++ {
		idx := (b.next - 1 - i + len(b.ring)) % len(b.ring)
		if r := &b.ring[idx]; match(r) {
			out = append(out, *r)
		}
	}
	slices.Reverse(out)
	return out
}

// ForWorker returns the newest n records of a worker.
func (b *LogBuffer) ForWorker(worker string, n int) []LogRecord {
	return b.Find(n, func(r *LogRecord) bool { return r.Worker == worker })
}

// ForValue returns the newest n records with an attribute equal to v (a
// message id appears as message_id, user_message_id, in_reply_to ...).
func (b *LogBuffer) ForValue(v string, n int) []LogRecord {
	return b.Find(n, func(r *LogRecord) bool {
		for _, a := range r.Attrs {
			if a == v {
				return true
			}
		}
		return false
	})
}

// Tee returns a handler that passes every record to next and keeps a copy
// in b (records below next's level are not kept either).
func Tee(next slog.Handler, b *LogBuffer) slog.Handler {
	return &teeHandler{next: next, buf: b}
}

type teeHandler struct {
	next  slog.Handler
	buf   *LogBuffer
	attrs []slog.Attr // flattened, keys with their group prefix
	group string
}

func (h *teeHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	rec := LogRecord{Time: r.Time, Level: r.Level.String(), Message: r.Message, Attrs: map[string]string{}}
	var walk func(prefix string, a slog.Attr)
	walk = func(prefix string, a slog.Attr) {
		v := a.Value.Resolve()
		if v.Kind() == slog.KindGroup {
			p := prefix + a.Key + "."
			if a.Key == "" {
				p = prefix
			}
			for _, ga := range v.Group() {
				walk(p, ga)
			}
			return
		}
		k := prefix + a.Key
		rec.Attrs[k] = fmt.Sprint(v.Any())
		if k == "worker" {
			rec.Worker = rec.Attrs[k]
		}
	}
	for _, a := range h.attrs {
		walk("", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		walk(h.group, a)
		return true
	})
	h.buf.add(rec)
	return h.next.Handle(ctx, r)
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = slices.Clone(h.attrs)
	for _, a := range as {
		if h.group != "" {
			a = slog.Attr{Key: h.group + a.Key, Value: a.Value}
		}
		n.attrs = append(n.attrs, a)
	}
	n.next = h.next.WithAttrs(as)
	return &n
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.group = h.group + name + "."
	n.next = h.next.WithGroup(name)
	return &n
}
