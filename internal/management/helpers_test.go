package management_test

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
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/devnull"
	"github.com/vumi-kafka/vumi/connectors/telnet"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/management"
	"github.com/vumi-kafka/vumi/internal/testcluster"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/processors/apps/words"
	"github.com/vumi-kafka/vumi/processors/middleware/builtin"
	"github.com/vumi-kafka/vumi/processors/routers"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

const (
	token = "s3cret-token"
	user  = "admin"
	pass  = "pa55word"
)

// kinds is the shipped kinds these tests use plus the crashing one.
func kinds() *topology.Registry {
	r := topology.NewRegistry()
	r.Add(telnet.Kinds()...)
	r.Add(devnull.Kind())
	r.Add(words.Kinds()...)
	r.Add(routers.Kinds()...)
	r.Add(crashyKind())
	r.AddMiddleware(builtin.Kinds()...)
	return r
}

// crashAttempts counts the runs of each crashy worker by name.
var crashAttempts sync.Map // name -> *atomic.Int32

// crashyKind is a transport that panics on its first run and returns an
// error on its second (a lost connection), then works: it acks what it
// is sent, and panics in its handler on a message "panic".
func crashyKind() *topology.Kind {
	return &topology.Kind{
		Name: "crashy", Role: topology.RoleTransport, Summary: "crashes on purpose",
		NewConfig: func() topology.WorkerConfig { return &crashyConfig{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*crashyConfig)
			v, _ := crashAttempts.LoadOrStore(spec.Name, new(atomic.Int32))
			n := v.(*atomic.Int32)
			return topology.WorkerFunc(func(ctx context.Context) error {
				switch n.Add(1) {
				case 1:
					panic("crashy: first run")
				case 2:
					return errors.New("crashy: connection reset by peer")
				}
				t, err := transport.New(deps, spec, &cfg.Config)
				if err != nil {
					return err
				}
				defer t.Close()
				return t.Run(ctx, transport.HandlerFunc(func(ctx context.Context, m *schemas.UserMessage) error {
					if m.Text() == "panic" {
						panic("crashy: poison message")
					}
					return t.PublishAck(ctx, m.MessageID, "sent-"+m.MessageID)
				}))
			}), nil
		},
	}
}

type crashyConfig struct {
	transport.Config `yaml:",inline"`
}

func (c *crashyConfig) Validate() error { return c.ValidateBase() }

// cluster is an embedded broker and registry.
type cluster struct {
	*testcluster.Cluster
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	return &cluster{testcluster.Start(t)}
}

// config is a deployment with a management section and the given workers.
func (c *cluster) config(t *testing.T, workers string) string {
	return c.ClusterYAML(2, t.TempDir(), "app1.outbound") + fmt.Sprintf(`management:
  addr: 127.0.0.1:0
  bearer_token: %s
  username: %s
  password: %s
  sample_interval: 300ms
workers:
%s`, token, user, pass, workers)
}

// process is one running deployment process with its management API.
type process struct {
	url  string
	stop func()
}

// logger keeps records at info and above for the logs endpoints (the test
// log shows them with VUMI_TEST_LOG set).
func logger(t *testing.T) *slog.Logger {
	if os.Getenv("VUMI_TEST_LOG") != "" {
		return testlog.New(t)
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// start runs a config as `vumi run` does with a management section.
func start(t *testing.T, text string) *process {
	t.Helper()
	cfg, err := topology.Load("test.yaml", []byte(text), kinds(), nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := management.NewLogBuffer(cfg.Management.LogBuffer)
	log := slog.New(management.Tee(logger(t).Handler(), logs))
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- topology.Run(ctx, cfg, kinds(), topology.RunOptions{
			Logger:     log,
			Supervisor: func(s *topology.Supervisor) { s.MinBackoff, s.MaxBackoff = 100*time.Millisecond, time.Second },
			OnRunning: management.Hook(management.Options{Logs: logs, Serve: true, ReconcileInterval: time.Second,
				Listening: func(a net.Addr) { addrs <- a }}),
		})
	}()
	p := &process{}
	select {
	case a := <-addrs:
		p.url = "http://" + a.String()
	case err := <-done:
		cancel()
		t.Fatalf("deployment failed to start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("management API not listening within 60s")
	}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("deployment: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("deployment did not stop within 30s")
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

// response is the API's envelope.
type response struct {
	Status      int             `json:"status"`
	Code        string          `json:"code"`
	Description string          `json:"description"`
	Result      json.RawMessage `json:"result"`
}

// call makes an authenticated API call with a JSON body (nil for none).
func (p *process) call(t *testing.T, method, path string, body any) (int, response) {
	t.Helper()
	return p.callAuth(t, method, path, body, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) })
}

func (p *process) callAuth(t *testing.T, method, path string, body any, auth func(*http.Request)) (int, response) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequest(method, p.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		auth(req)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out response
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d, not the JSON envelope: %q", method, path, resp.StatusCode, raw)
	}
	if out.Status != resp.StatusCode {
		t.Errorf("%s %s: envelope status %d, HTTP %d", method, path, out.Status, resp.StatusCode)
	}
	return resp.StatusCode, out
}

// result decodes the envelope's result.
func result[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Result, &v); err != nil {
		t.Fatalf("result %s: %v", r.Result, err)
	}
	return v
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testcluster.WaitFor(t, within, what, cond)
}

// here returns the process's supervised workers by name.
func (p *process) here(t *testing.T) map[string]topology.WorkerState {
	t.Helper()
	code, r := p.call(t, "GET", "/api/v1/workers", nil)
	if code != 200 {
		t.Fatalf("workers: %d %s", code, r.Description)
	}
	out := map[string]topology.WorkerState{}
	for _, st := range result[[]topology.WorkerState](t, r) {
		out[st.Name] = st
	}
	return out
}

// consumer reads topics from the start, refreshing metadata often.
func (c *cluster) consumer(t *testing.T, topics ...string) *kgo.Client {
	t.Helper()
	return c.ConsumerWith(t, []kgo.Opt{kgo.MetadataMinAge(100 * time.Millisecond)}, topics...)
}
