package management

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// FuzzMergePatch: any base and patch give an error or a JSON object with
// the patch applied, never a panic.
func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":2}`), []byte(`{"b":null,"c":3}`))
	f.Add([]byte(``), []byte(`{"a":{"x":1}}`))
	f.Add([]byte(`{"a":1}`), []byte(`[1]`))
	f.Add([]byte(`{"a":1}`), []byte(`null`))
	f.Fuzz(func(t *testing.T, base, patch []byte) {
		out, err := mergePatch(base, patch)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("result %q is not an object: %v", out, err)
		}
		var p map[string]json.RawMessage
		_ = json.Unmarshal(patch, &p)
		for k, v := range p {
			if string(v) == "null" {
				if _, ok := m[k]; ok {
					t.Fatalf("key %q not removed", k)
				}
			} else if _, ok := m[k]; !ok {
				t.Fatalf("key %q not set", k)
			}
		}
	})
}

// TestLogBuffer: the ring keeps the newest records, with the worker of
// the logger and every attribute, and finds them by worker or value.
func TestLogBuffer(t *testing.T) {
	b := NewLogBuffer(5)
	log := slog.New(Tee(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}), b))
	w := log.With("worker", "sms")
	log.Debug("below the level", "message_id", "m0")
	for i := range 7 {
		w.Info("sent", "message_id", fmt.Sprintf("m%d", i), slog.Group("g", "k", "v"))
	}
	log.Info("other", "worker", "ussd", "user_message_id", "m6")
	got := b.ForWorker("sms", 10)
	if len(got) != 4 || got[0].Attrs["message_id"] != "m3" || got[3].Attrs["message_id"] != "m6" || got[0].Attrs["g.k"] != "v" {
		t.Fatalf("sms records %+v", got)
	}
	if byID := b.ForValue("m6", 10); len(byID) != 2 || byID[1].Worker != "ussd" {
		t.Errorf("m6 records %+v", byID)
	}
	if b.ForValue("m0", 10) != nil {
		t.Error("a record below the level was kept")
	}
	if n := len(b.ForWorker("sms", 2)); n != 2 {
		t.Errorf("n=2 gave %d", n)
	}
}
