package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeRegistry serves GET /schemas/ids/42 as the user message schema, or
// answers with the status set in fail (while it is not 0).
type fakeRegistry struct {
	srv   *httptest.Server
	fail  atomic.Int32
	body  atomic.Value // string answered with fail's status
	calls atomic.Int32
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{}
	f.body.Store("")
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		if c := f.fail.Load(); c != 0 {
			w.WriteHeader(int(c))
			_, _ = w.Write([]byte(f.body.Load().(string)))
			return
		}
		if r.URL.Path != "/schemas/ids/42" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error_code":40403,"message":"Schema not found"}`))
			return
		}
		b, _ := json.Marshal(map[string]string{"schema": UserMessageKind.Text})
		_, _ = w.Write(b)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// record is a user message written with schema id 42.
func record(t *testing.T) []byte {
	t.Helper()
	c := NewCodec[UserMessage](UserMessageKind, nil)
	c.SetID(42)
	m := NewUserMessage()
	m.Content = String("hello")
	b, err := c.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSchemaByIDTellsOutagesFromAnswers(t *testing.T) {
	f := newFakeRegistry(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	_ = ln.Close()
	cases := []struct {
		name        string
		url         string
		status      int
		body        string
		id          int
		unavailable bool
		wantErr     string
	}{
		{name: "found", url: f.srv.URL, id: 42},
		{name: "not found", url: f.srv.URL, id: 43, wantErr: "Schema not found"},
		{name: "connection refused", url: closed, id: 42, unavailable: true},
		{name: "503", url: f.srv.URL, status: 503, id: 42, unavailable: true, wantErr: "503"},
		{name: "500 with a registry error", url: f.srv.URL, status: 500, body: `{"error_code":50001,"message":"Error in the backend data store"}`, id: 42, unavailable: true, wantErr: "backend data store"},
		{name: "401", url: f.srv.URL, status: 401, id: 42, unavailable: true},
		{name: "429", url: f.srv.URL, status: 429, id: 42, unavailable: true},
		{name: "404 from a proxy", url: f.srv.URL, status: 404, body: "<html>gone</html>", id: 42, wantErr: "404"},
		{name: "400", url: f.srv.URL, status: 400, id: 42, wantErr: "400"},
		{name: "200 that is not a schema", url: f.srv.URL, status: 200, body: "<html>maintenance</html>", id: 42, unavailable: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.fail.Store(int32(tc.status))
			f.body.Store(tc.body)
			defer f.fail.Store(0)
			c := NewRegistryClient(tc.url, RegistryClientOptions{Timeout: 5 * time.Second})
			text, err := c.SchemaByID(context.Background(), tc.id)
			if tc.wantErr == "" && !tc.unavailable {
				if err != nil || text != UserMessageKind.Text {
					t.Fatalf("got %q, %v", text, err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if IsRegistryUnavailable(err) != tc.unavailable {
				t.Errorf("IsRegistryUnavailable(%v) = %v, want %v", err, !tc.unavailable, tc.unavailable)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

// waiter records what a decode waiting for the registry reports.
type waiter struct {
	mu        sync.Mutex
	stalls    int
	firsts    int
	recovered []error
}

func (w *waiter) RegistryStalled(id uint32, err error, waited time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stalls++
	if waited == 0 {
		w.firsts++
	}
}

func (w *waiter) RegistryRecovered(id uint32, waited time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recovered = append(w.recovered, err)
}

func TestDecodeWaitsForTheRegistry(t *testing.T) {
	old := registryBackoff
	registryBackoff = [2]time.Duration{5 * time.Millisecond, 20 * time.Millisecond}
	defer func() { registryBackoff = old }()
	rec := record(t)

	t.Run("without a waiter an outage fails at once", func(t *testing.T) {
		f := newFakeRegistry(t)
		f.fail.Store(503)
		c := NewCodec[UserMessage](UserMessageKind, NewRegistryClient(f.srv.URL, RegistryClientOptions{}))
		var m UserMessage
		err := c.DecodeContext(context.Background(), rec, &m)
		if !IsRegistryUnavailable(err) || f.calls.Load() != 1 {
			t.Fatalf("err %v after %d calls, want one registry-unavailable error", err, f.calls.Load())
		}
	})
	t.Run("with a waiter the decode waits until the registry answers", func(t *testing.T) {
		f := newFakeRegistry(t)
		f.fail.Store(503)
		c := NewCodec[UserMessage](UserMessageKind, NewRegistryClient(f.srv.URL, RegistryClientOptions{}))
		w := &waiter{}
		done := make(chan error, 1)
		var m UserMessage
		go func() { done <- c.DecodeContext(WaitForRegistry(context.Background(), w), rec, &m) }()
		for f.calls.Load() < 4 {
			select {
			case err := <-done:
				t.Fatalf("the decode returned (%v) while the registry was down", err)
			case <-time.After(5 * time.Millisecond):
			}
		}
		f.fail.Store(0)
		select {
		case err := <-done:
			if err != nil || m.Text() != "hello" {
				t.Fatalf("decoded %q, %v", m.Text(), err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the decode did not finish once the registry answered")
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.firsts != 1 || w.stalls < 3 || len(w.recovered) != 1 || w.recovered[0] != nil {
			t.Errorf("waiter saw %d first stalls, %d stalls, recoveries %v", w.firsts, w.stalls, w.recovered)
		}
	})
	t.Run("a definitive answer is not waited for", func(t *testing.T) {
		f := newFakeRegistry(t)
		f.fail.Store(404)
		f.body.Store(`{"error_code":40403,"message":"Schema not found"}`)
		c := NewCodec[UserMessage](UserMessageKind, NewRegistryClient(f.srv.URL, RegistryClientOptions{}))
		w := &waiter{}
		var m UserMessage
		err := c.DecodeContext(WaitForRegistry(context.Background(), w), rec, &m)
		if err == nil || IsRegistryUnavailable(err) || w.stalls != 0 || f.calls.Load() != 1 {
			t.Fatalf("err %v, %d stalls, %d calls: want a definitive error at once", err, w.stalls, f.calls.Load())
		}
	})
	t.Run("a malformed record is not waited for", func(t *testing.T) {
		f := newFakeRegistry(t)
		f.fail.Store(503)
		c := NewCodec[UserMessage](UserMessageKind, NewRegistryClient(f.srv.URL, RegistryClientOptions{}))
		w := &waiter{}
		var m UserMessage
		err := c.DecodeContext(WaitForRegistry(context.Background(), w), []byte{1, 0, 0, 0, 42, 0}, &m)
		if !errors.Is(err, ErrBadMagic) || w.stalls != 0 || f.calls.Load() != 0 {
			t.Fatalf("err %v, %d stalls, %d calls", err, w.stalls, f.calls.Load())
		}
	})
	t.Run("the wait ends with its context, as an outage", func(t *testing.T) {
		f := newFakeRegistry(t)
		f.fail.Store(503)
		c := NewCodec[UserMessage](UserMessageKind, NewRegistryClient(f.srv.URL, RegistryClientOptions{}))
		w := &waiter{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var m UserMessage
		go func() { done <- c.DecodeContext(WaitForRegistry(ctx, w), rec, &m) }()
		for f.calls.Load() < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		select {
		case err := <-done:
			if !IsRegistryUnavailable(err) || !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want registry unavailable and canceled", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the decode did not end with its context")
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.recovered) != 1 || w.recovered[0] == nil {
			t.Errorf("recoveries %v, want one with the last error", w.recovered)
		}
	})
}

func TestDecodeWhileStopping(t *testing.T) {
	rec := record(t)
	f := newFakeRegistry(t)
	c := NewCodec[UserMessage](UserMessageKind, NewRegistryClient(f.srv.URL, RegistryClientOptions{}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var m UserMessage
	// A cancelled context is not the record's fault: the registry was not
	// asked.
	if err := c.DecodeContext(ctx, rec, &m); !IsRegistryUnavailable(err) || f.calls.Load() != 0 {
		t.Fatalf("unknown id, cancelled context: %v after %d calls", err, f.calls.Load())
	}
	if err := c.DecodeContext(context.Background(), rec, &m); err != nil {
		t.Fatal(err)
	}
	// Known now: decoding needs no registry, even when stopping...
	if err := c.DecodeContext(WaitForRegistry(ctx, &waiter{}), rec, &m); err != nil {
		t.Errorf("known id, cancelled WaitForRegistry context: %v", err)
	}
	// ...except under WaitForRegistryUntilStopped, where nothing is
	// decoded once the consumer stops.
	err := c.DecodeContext(WaitForRegistryUntilStopped(ctx, &waiter{}), rec, &m)
	if !IsRegistryUnavailable(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("known id, cancelled WaitForRegistryUntilStopped context: %v", err)
	}
	if err := c.DecodeContext(WaitForRegistryUntilStopped(context.Background(), &waiter{}), rec, &m); err != nil {
		t.Errorf("known id, running: %v", err)
	}
}

// FuzzSchemaByIDAnswer feeds arbitrary registry answers (status and body)
// to the schema lookup: it returns a schema or an error, never panics, and
// a 404 is never taken for an outage.
func FuzzSchemaByIDAnswer(f *testing.F) {
	f.Add(200, []byte(`{"schema":"\"string\""}`))
	f.Add(200, []byte(`{"schema":"\"string\"","schemaType":"PROTOBUF"}`))
	f.Add(404, []byte(`{"error_code":40403,"message":"Schema not found"}`))
	f.Add(503, []byte(`<html>down</html>`))
	f.Add(200, []byte(`{"schema":`))
	var mu sync.Mutex
	var status int
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	f.Fuzz(func(t *testing.T, code int, b []byte) {
		if code < 200 || code > 599 {
			return
		}
		mu.Lock()
		status, body = code, b
		mu.Unlock()
		c := NewRegistryClient(srv.URL, RegistryClientOptions{Timeout: 5 * time.Second})
		text, err := c.SchemaByID(context.Background(), 1)
		if err == nil && (code != 200 || text == "") {
			t.Fatalf("status %d: schema %q without an error", code, text)
		}
		if code == 404 && IsRegistryUnavailable(err) {
			t.Fatalf("a 404 taken for an outage: %v", err)
		}
	})
}
