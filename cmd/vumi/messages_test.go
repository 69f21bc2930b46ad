package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestMessagesCommand: each action calls its API path with the flags'
// credentials, prints the response, and turns API errors into exit 1.
func TestMessagesCommand(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.RequestURI()+" "+u+":"+p+" "+string(b))
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/batches/missing") {
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error": "no batch \"missing\""}`)
			return
		}
		_, _ = io.WriteString(w, `{"ok": true}`+"\n")
	}))
	defer srv.Close()
	for _, c := range []struct {
		args []string
		call string
		code int
	}{
		{[]string{"batches"}, "GET /batches :", 0},
		{[]string{"create-batch", "sc:1234", "sc:5678"}, `POST /batches : {"tags":[["sc","1234"],["sc","5678"]]}`, 0},
		{[]string{"status", "b1"}, "GET /batches/b1/status :", 0},
		{[]string{"-start", "2024-01-01T00:00:00Z", "-csv", "outbound", "b1"}, "GET /batches/b1/outbound.csv?start=2024-01-01T00%3A00%3A00Z :", 0},
		{[]string{"done", "b1"}, "POST /batches/b1/done :", 0},
		{[]string{"message", "m1"}, "GET /messages/m1 :", 0},
		{[]string{"-owner", "alice", "acquire", "pool"}, `POST /tagpools/pool/acquire : {"owner":"alice"}`, 0},
		{[]string{"release", "pool", "t1"}, `POST /tagpools/pool/release : {"tag":"t1"}`, 0},
		{[]string{"-username", "ops", "-password", "pw", "batch", "missing"}, "GET /batches/missing ops:pw", 1},
		{[]string{"create-batch", "nocolon"}, "", 2},
		{[]string{"explode"}, "", 2},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			mu.Lock()
			calls = nil
			mu.Unlock()
			stdout, stderr, code := cli(t, "", append([]string{"messages", "-url", srv.URL}, c.args...)...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, c.code, stderr)
			}
			mu.Lock()
			defer mu.Unlock()
			if c.call == "" {
				if len(calls) != 0 {
					t.Errorf("calls %v", calls)
				}
				return
			}
			if len(calls) != 1 || strings.TrimSpace(calls[0]) != c.call {
				t.Errorf("calls %q, want %q", calls, c.call)
			}
			if c.code == 0 && !strings.Contains(stdout, `"ok": true`) {
				t.Errorf("stdout %q", stdout)
			}
			if c.code == 1 && !strings.Contains(stderr, `no batch "missing" (HTTP 404)`) {
				t.Errorf("stderr %q", stderr)
			}
		})
	}
}
