package sandbox_test

import (
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/processors/apps/apptest"
	"github.com/vumi-kafka/vumi/processors/apps/sandbox"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(sandbox.Kinds()...) }

func TestConfig(t *testing.T) {
	cases := []struct {
		name, yaml, wantErr string
	}{
		{"js minimal", "kind: js_sandbox\n    javascript: 'api.on_inbound_message = function () { api.done(); };'", ""},
		{"js needs javascript", "kind: js_sandbox", "key javascript: is required"},
		{"file needs file", "kind: js_file_sandbox", "key javascript_file: is required"},
		{"file missing", "kind: vumi.application.sandbox.JsFileSandbox\n    javascript_file: /nonexistent/app.js", "key javascript_file:"},
		{"plain needs executable", "kind: sandbox", "key executable: is required"},
		{"plain no javascript", "kind: sandbox\n    executable: /bin/true\n    javascript: x", "key javascript: only for"},
		{"unknown rlimit", "kind: sandbox\n    executable: /bin/true\n    rlimits: {RLIMIT_FOO: 1}", "key rlimits.RLIMIT_FOO: unknown"},
		{"rlimit pair", "kind: sandbox\n    executable: /bin/true\n    rlimits: {RLIMIT_NOFILE: [10, 20]}", ""},
		{"rlimit soft above hard", "kind: sandbox\n    executable: /bin/true\n    rlimits: {RLIMIT_NOFILE: [30, 20]}", "soft limit 30 above hard limit 20"},
		{"resource without cls", "kind: sandbox\n    executable: /bin/true\n    sandbox: {kv: {keys_per_user_hard: 3}}", "key sandbox.kv.cls: is required"},
		{"unknown cls", "kind: sandbox\n    executable: /bin/true\n    sandbox: {kv: {cls: foo.Bar}}", "unknown resource class"},
		{"option of another cls", "kind: sandbox\n    executable: /bin/true\n    sandbox: {out: {cls: vumi.application.sandbox.OutboundResource, data_limit: 3}}", "key sandbox.out.data_limit: not an option"},
		{"unknown resource key", "kind: sandbox\n    executable: /bin/true\n    sandbox: {kv: {cls: kv, keys_per_usr: 3}}", "keys_per_usr"},
		{"logging resource not log", "kind: sandbox\n    executable: /bin/true\n    logging_resource: kv\n    sandbox: {kv: {cls: kv}}", "key logging_resource:"},
		{"negative timeout", "kind: sandbox\n    executable: /bin/true\n    timeout: -1", "key timeout:"},
		{"unknown key", "kind: sandbox\n    executable: /bin/true\n    timeuot: 3", "timeuot"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fmt.Sprintf("workers:\n  - name: sb\n    transport_name: sms\n    %s\n", tc.yaml)
			_, err := topology.Load("t.yaml", []byte(cfg), kinds(), nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// jsWorker is a JsFileSandbox running testdata/app.js with every resource.
func jsWorker(extra string) string {
	abs, _ := filepath.Abs("testdata/app.js")
	return fmt.Sprintf(`  - name: sb
    kind: vumi.application.sandbox.JsFileSandbox
    transport_name: sms
    javascript_file: %s
    timeout: 2
    recv_limit: 262144
    sandbox:
      kv:
        cls: vumi.application.sandbox.RedisResource
        keys_per_user_soft: 3
        keys_per_user_hard: 4
      outbound: {cls: vumi.application.sandbox.OutboundResource}
      http: {cls: vumi.application.sandbox.HttpClientResource, data_limit: 1000, timeout: 5}
      config: {cls: config, values: {greeting: hello}}
%s`, abs, extra)
}

// session sends messages and reads what the worker publishes.
type session struct {
	t    *testing.T
	c    *apptest.Cluster
	p    *apptest.Producer
	cl   *kgo.Client
	seen []any // every record read, in order
}

func newSession(t *testing.T, c *apptest.Cluster) *session {
	return &session{t: t, c: c, p: c.Producer(t), cl: c.Consumer(t, "sms.outbound", "sms.failures")}
}

// waitFor reads until a record satisfies match.
func (s *session) waitFor(what string, match func(any) bool) any {
	s.t.Helper()
	for _, v := range s.seen {
		if match(v) {
			return v
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		got := s.c.Collect(s.t, s.cl, 20*time.Second, func(got []any) bool { return len(got) > 0 })
		s.seen = append(s.seen, got...)
		for _, v := range got {
			if match(v) {
				return v
			}
		}
	}
	s.t.Fatalf("%s: not seen within 20s", what)
	return nil
}

// send sends content from an address and returns the reply's content.
func (s *session) send(from, content string) string {
	s.t.Helper()
	m := apptest.Inbound(from, content)
	s.p.Inbound(s.t, m)
	v := s.waitFor("reply to "+content, func(v any) bool {
		o, ok := v.(*schemas.UserMessage)
		return ok && o.InReplyTo != nil && *o.InReplyTo == m.MessageID && o.Text() != "to group"
	})
	return v.(*schemas.UserMessage).Text()
}

// failure sends content and returns the failure it causes.
func (s *session) failure(from, content string) *schemas.Failure {
	s.t.Helper()
	m := apptest.Inbound(from, content)
	s.p.Inbound(s.t, m)
	v := s.waitFor("failure of "+content, func(v any) bool {
		f, ok := v.(*schemas.Failure)
		return ok && f.Message != nil && strings.Contains(*f.Message, m.MessageID)
	})
	return v.(*schemas.Failure)
}

func TestJsSandboxResources(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/get":
			fmt.Fprintf(w, "%s %s", r.Method, strings.Join(r.Header.Values("X-Test"), "+"))
		case "/files":
			f, h, err := r.FormFile("upload")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			b, _ := io.ReadAll(f)
			fmt.Fprintf(w, "%s:%s:%s", h.Filename, h.Header.Get("Content-Type"), b)
		case "/big":
			w.Write(make([]byte, 5000))
		default:
			body, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, "%s %s", r.Method, body)
		}
	}))
	defer web.Close()
	tlsWeb := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "secure") }))
	tlsWeb.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the refused handshake of VERIFY_PEER
	tlsWeb.StartTLS()
	defer tlsWeb.Close()

	rec := &apptest.Recorder{}
	c := apptest.Start(t)
	c.Log = slog.New(rec)
	c.Run(t, kinds, jsWorker(""))
	s := newSession(t, c)

	cases := []struct {
		name, from, content, want string
	}{
		{"ping", "27000000001", "ping", "pong"},
		{"kv", "27000000002", "kv", `[true,{"x":"42"},null,3,4,false,true,false,true,true,true,false,"Too many keys",false]`},
		{"log", "27000000003", "log", "true,true,true,true,true,true,true,false:Value expected for msg,false:Level must be an integer"},
		{"config", "27000000004", "config", "config=hello"},
		{"send", "27000000005", "send", `send=true,true,false:Could not find original message with id: "not-this-one"`},
		{"http", "27000000006", "http " + web.URL + " " + tlsWeb.URL, `[[200,"GET one+two"],[201,""],[201,"POST posted"],[201,"PUT put"],[201,"PATCH patched"],[201,"DELETE "],[200,"a.txt:text/plain:hello"],["fail","Received more than 1000 bytes, maximum o"],["fail","No URL given"],[200,"secure"],["fail","tls: failed to verify certificate: x509:"]]`},
		{"unknown resource", "27000000007", "unknown", "unknown=false"},
		{"fresh context", "27000000008", "global", "leaked=false"},
		{"fresh context again", "27000000008", "global", "leaked=false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			if got := s.send(tc.from, tc.content); got != tc.want {
				t.Errorf("reply %s\nwant      %s", got, tc.want)
			}
		})
	}
	s.t = t
	t.Run("expiry", func(t *testing.T) {
		s.t = t
		time.Sleep(300 * time.Millisecond)
		if got := s.send("27000000002", "expired"); got != "short=null" {
			t.Errorf("reply %q: the key set with seconds: 0.2 should have expired", got)
		}
	})
	t.Run("send_to and reply_to_group", func(t *testing.T) {
		s.t = t
		for _, want := range []string{"sent", "to group"} {
			v := s.waitFor(want, func(v any) bool { m, ok := v.(*schemas.UserMessage); return ok && m.Text() == want })
			m := v.(*schemas.UserMessage)
			if want == "sent" && m.To() != "+27830000000" {
				t.Errorf("send_to went to %q", m.To())
			}
			if want == "to group" && m.Session() != schemas.SessionClose {
				t.Errorf("reply_to_group with continue_session false: session %q", m.Session())
			}
		}
	})
	t.Run("events", func(t *testing.T) {
		s.t = t
		s.p.Events(t, apptest.Ack("some-message"))
		s.waitFor("event reply", func(v any) bool { m, ok := v.(*schemas.UserMessage); return ok && m.Text() == "event:ack" })
	})
	t.Run("log lines", func(t *testing.T) {
		lines := strings.Join(rec.Lines(), "\n")
		for _, want := range []string{"DEBUG a debug line", "INFO an info line", "WARN a warning line", "ERROR an error line",
			"ERROR+4 a critical line", "WARN a level 30 line", "INFO default level line", "WARN Key store soft limit of 3 keys",
			"ERROR Key store hard limit of 4 keys", `ERROR Resource "nosuch" not found`} {
			if !strings.Contains(lines, want) {
				t.Errorf("no log line %q", want)
			}
		}
	})
}

func TestHostileSandboxes(t *testing.T) {
	rec := &apptest.Recorder{}
	c := apptest.Start(t)
	c.Log = slog.New(rec)
	c.Run(t, kinds, jsWorker(""))
	s := newSession(t, c)
	cases := []struct {
		name, content, reason string
	}{
		{"infinite loop", "loop", "sandbox timed out after 2s"},
		{"memory bomb", "bomb", "process ended during a message"},
		{"huge output", "flood", "too much data on stderr and stdout"},
		{"crash", "crash", "process ended during a message: exit status 1"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			start := time.Now()
			f := s.failure(fmt.Sprintf("2710000000%d", i), tc.content)
			if !strings.Contains(f.Reason, tc.reason) {
				t.Errorf("failure reason %q, want %q", f.Reason, tc.reason)
			}
			if f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent {
				t.Errorf("failure code %v, want permanent", f.FailureCode)
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("took %v", took)
			}
			// the worker is still there, with a fresh sandbox
			if got := s.send(fmt.Sprintf("2720000000%d", i), "ping"); got != "pong" {
				t.Errorf("after %s: reply %q", tc.name, got)
			}
		})
	}
	if lines := strings.Join(rec.Lines(), "\n"); !strings.Contains(lines, "Error: boom") {
		t.Errorf("the crash's stderr was not logged")
	}
}

func TestKVSurvivesRestart(t *testing.T) {
	c := apptest.Start(t)
	d := c.Run(t, kinds, jsWorker(""))
	s := newSession(t, c)
	for i := 1; i <= 3; i++ {
		if got, want := s.send("27761234567", "count"), fmt.Sprintf("count=%d", i); got != want {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	d.Stop()
	c.Run(t, kinds, jsWorker(""))
	if got := s.send("27761234567", "count"); got != "count=4" {
		t.Fatalf("after a restart: reply %q, want count=4", got)
	}
	if got := s.send("27769999999", "count"); got != "count=1" {
		t.Fatalf("another user: reply %q, want count=1", got)
	}
}

// TestPlainSandbox runs a sandbox that is not JavaScript: a Python script
// that handles one message per process, as in Vumi, and reports the
// resource limits it runs under.
func TestPlainSandbox(t *testing.T) {
	script := filepath.Join(t.TempDir(), "app.py")
	if err := os.WriteFile(script, []byte(`import json, resource, sys
cmd = json.loads(sys.stdin.readline())
msg = cmd["msg"]
nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
cpu = resource.getrlimit(resource.RLIMIT_CPU)
print(json.dumps({"cmd": "outbound.reply_to", "cmd_id": "1", "reply": False, "in_reply_to": msg["message_id"],
    "content": "nofile=%d/%d cpu=%d/%d env=%s" % (nofile + cpu + (sys.argv[1],))}), flush=True)
reply = json.loads(sys.stdin.readline())
sys.stderr.write("replied: %s\n" % reply["success"])
`), 0o600); err != nil {
		t.Fatal(err)
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed for this test (it comes with graphite-carbon): %v", err)
	}
	rec := &apptest.Recorder{}
	c := apptest.Start(t)
	if os.Getenv("VUMI_TEST_LOG") == "" {
		c.Log = slog.New(rec)
	}
	c.Run(t, kinds, fmt.Sprintf(`  - name: py
    kind: vumi.application.sandbox.Sandbox
    transport_name: sms
    executable: %s
    args: [%s, argument]
    env: {PYTHONDONTWRITEBYTECODE: "1"}
    timeout: 10
    rlimits:
      RLIMIT_NOFILE: [12, 13]
      RLIMIT_CPU: 5
    sandbox:
      outbound: {cls: outbound}
`, python, script))
	s := newSession(t, c)
	for i := 0; i < 2; i++ {
		if got := s.send("27761234567", "hi"); got != "nofile=12/13 cpu=5/5 env=argument" {
			t.Errorf("reply %q", got)
		}
	}
	if lines := strings.Join(rec.Lines(), "\n"); !strings.Contains(lines, "replied: True") {
		t.Errorf("the script's stderr was not logged")
	}
}

// TestColdJsSandbox runs a process per message (warm: false), as Vumi did.
func TestColdJsSandbox(t *testing.T) {
	c := apptest.Start(t)
	c.Run(t, kinds, jsWorker("    warm: false\n"))
	s := newSession(t, c)
	for i, want := range []string{"pong", "count=1", "pong", "count=2"} {
		content := map[bool]string{true: "ping", false: "count"}[i%2 == 0]
		if got := s.send("27761234567", content); got != want {
			t.Errorf("message %d: %q, want %q", i, got, want)
		}
	}
}
