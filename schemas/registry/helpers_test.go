package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testLogger logs to the test's log until the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// newCluster starts an in-process Kafka broker, persisting to dataDir when
// it is not empty, on port when it is not zero.
func newCluster(t testing.TB, dataDir string, port int) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	var (
		c   *kfake.Cluster
		err error
	)
	// The port of a just-closed cluster can take a moment to be free.
	for range 50 {
		if c, err = kfake.NewCluster(opts...); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	return c
}

func clusterPort(t testing.TB, c *kfake.Cluster) int {
	t.Helper()
	_, p, err := net.SplitHostPort(c.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// instance is a registry served over HTTP.
type instance struct {
	reg    *Registry
	srv    *httptest.Server
	client *srclient.SchemaRegistryClient
}

func (i *instance) url() string { return i.srv.URL }

func (i *instance) close() {
	i.srv.Close()
	_ = i.reg.Close()
}

// startRegistry starts a registry on the given cluster and serves it with
// an httptest server; both are closed when the test ends.
func startRegistry(t testing.TB, c *kfake.Cluster, topic string, modify ...func(*Config)) *instance {
	t.Helper()
	cfg := Config{
		Brokers:      c.ListenAddrs(),
		Topic:        topic,
		Logger:       testLogger(t),
		InitTimeout:  30 * time.Second,
		WriteTimeout: 15 * time.Second,
	}
	for _, m := range modify {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("starting registry: %v", err)
	}
	return serve(t, reg)
}

func serve(t testing.TB, reg *Registry) *instance {
	srv := httptest.NewServer(reg.Handler())
	client := srclient.NewSchemaRegistryClient(srv.URL, srclient.WithClient(&http.Client{Timeout: 20 * time.Second}))
	client.CachingEnabled(false)
	in := &instance{reg: reg, srv: srv, client: client}
	t.Cleanup(in.close)
	return in
}

// memLog is an in-memory recordLog: records are applied as they are
// written.
type memLog struct {
	mu     sync.Mutex
	apply  func(*kgo.Record) outcome
	recs   []*kgo.Record
	closed bool
}

func (m *memLog) write(_ context.Context, recs ...*kgo.Record) ([]outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	outs := make([]outcome, 0, len(recs))
	for _, r := range recs {
		r.Offset = int64(len(m.recs))
		m.recs = append(m.recs, r)
		outs = append(outs, m.apply(r))
	}
	return outs, nil
}

func (m *memLog) sync(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	return nil
}

func (m *memLog) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.closed
}

func (m *memLog) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
}

// newMemRegistry returns a registry on an in-memory log.
func newMemRegistry(t testing.TB, modify ...func(*Config)) *Registry {
	t.Helper()
	cfg := Config{Brokers: []string{"unused:9092"}, Logger: testLogger(t)}
	for _, m := range modify {
		m(&cfg)
	}
	reg, err := newRegistry(cfg, func(_ *Config, apply func(*kgo.Record) outcome) (recordLog, error) {
		return &memLog{apply: apply}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

// response is a raw HTTP response.
type response struct {
	status      int
	contentType string
	body        []byte
}

// errorBody decodes a Confluent error body, failing the test if the body
// is not one.
func (r response) errorBody(t testing.TB) (code int, message string) {
	t.Helper()
	var e struct {
		Code    *int    `json:"error_code"`
		Message *string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Code == nil || e.Message == nil {
		t.Fatalf("status %d: body %q is not an error body (%v)", r.status, r.body, err)
	}
	return *e.Code, *e.Message
}

// do sends a request with a JSON body (when body is not empty) to h.
func do(t testing.TB, h http.Handler, method, path, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, contentType: rec.Header().Get("Content-Type"), body: rec.Body.Bytes()}
}

// expectError checks that resp is a Confluent error with the given code and
// the HTTP status made of its first three digits.
func expectError(t testing.TB, resp response, code int) string {
	t.Helper()
	got, msg := resp.errorBody(t)
	if got != code {
		t.Fatalf("error_code = %d (%q), want %d", got, msg, code)
	}
	wantStatus := code
	for wantStatus >= 1000 {
		wantStatus /= 10
	}
	if resp.status != wantStatus {
		t.Fatalf("status = %d, want %d for error code %d", resp.status, wantStatus, code)
	}
	if msg == "" {
		t.Fatalf("error %d has an empty message", code)
	}
	return msg
}

// srCode extracts the Confluent error code from a srclient error.
func srCode(t testing.TB, err error) int {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got none")
	}
	var e srclient.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a srclient.Error", err, err)
	}
	return e.Code
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// schemaBody is a register/lookup request body for schema.
func schemaBody(schema string) string {
	return `{"schema":` + jsonString(schema) + `}`
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %q into %T: %v", b, v, err)
	}
}

// eventually retries fn until it returns nil or the deadline passes.
func eventually(t testing.TB, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in time: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dumpState renders the registry's state deterministically.
func dumpState(r *Registry) string {
	var b strings.Builder
	r.read(func(st *state) {
		fmt.Fprintf(&b, "maxID %d\nglobal %q\n", st.maxID, st.globalLevel)
		for _, name := range st.subjectNames(true) {
			fmt.Fprintf(&b, "subject %q level %q\n", name, st.subjectLevels[name])
			for _, vn := range st.versions(name, true) {
				v := st.getVersion(name, vn, true)
				fmt.Fprintf(&b, "  version %d id %d deleted %v\n", v.version, v.id, v.deleted)
			}
		}
		for subject, l := range st.subjectLevels {
			if _, ok := st.subjects[subject]; !ok {
				fmt.Fprintf(&b, "level only %q %q\n", subject, l)
			}
		}
		ids := make([]int, 0, len(st.schemas))
		for id := range st.schemas {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			sc := st.schemas[id]
			fmt.Fprintf(&b, "schema %d refs %d %s\n", id, sc.refs, sc.parsed.canonical)
		}
	})
	return b.String()
}

// createTopic creates a topic with the given partitions and cleanup policy.
func createTopic(t testing.TB, cl *kgo.Client, topic string, partitions int32, policy string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = partitions
	rt.ReplicationFactor = 1
	c := kmsg.NewCreateTopicsRequestTopicConfig()
	c.Name = "cleanup.policy"
	c.Value = kmsg.StringPtr(policy)
	rt.Configs = append(rt.Configs, c)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
}
