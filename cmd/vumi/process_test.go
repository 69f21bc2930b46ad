package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transporttest"
)

func freePort(t *testing.T) int {
	t.Helper()
	return transporttest.FreePort(t)
}

// buildBinary builds the vumi binary once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vumi")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a running vumi subcommand.
type process struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan error
}

// syncBuffer is a bytes.Buffer safe to read while the process writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), stderr: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("vumi %v output:\n%s", args, p.stderr.String())
		}
	})
	return p
}

// stop sends SIGTERM and expects a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("%v exited with %v after SIGTERM", p.cmd.Args, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%v did not exit within 30s of SIGTERM", p.cmd.Args)
	}
}

// echoSession checks the telnet demo's echo on port.
func echoSession(t *testing.T, port int, text string) {
	t.Helper()
	var conn net.Conn
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("telnet port never opened: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "Enter text to echo:" {
		t.Fatalf("first line %q, %v", line, err)
	}
	fmt.Fprintf(conn, "%s\r\n", text)
	line, err = r.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != text {
		t.Fatalf("echo %q, %v; want %q", line, err, text)
	}
}

// TestWorkersAgainstBroker runs the demo as separate processes: one
// 'vumi broker' and one 'vumi worker' per worker of the config.
func TestWorkersAgainstBroker(t *testing.T) {
	bin := buildBinary(t)
	kafkaPort, regPort, telnetPort := freePort(t), freePort(t), freePort(t)
	data := filepath.Join(t.TempDir(), "data")
	env := []string{"VUMI_DATA_DIR=" + data, fmt.Sprintf("VUMI_KAFKA_PORT=%d", kafkaPort),
		fmt.Sprintf("VUMI_REGISTRY_PORT=%d", regPort), fmt.Sprintf("TELNET_PORT=%d", telnetPort)}
	broker := start(t, bin, env, "broker", "-data-dir", data, "-kafka-port", fmt.Sprint(kafkaPort), "-registry-port", fmt.Sprint(regPort))
	transport := start(t, bin, env, "worker", "-c", "../../deploy/local/vumi.yaml", "telnet_transport")
	app := start(t, bin, env, "worker", "-c", "../../deploy/local/vumi.yaml", "echo")
	echoSession(t, telnetPort, "hallo from three processes")

	// vumi health sees both workers' heartbeats and the transport's status.
	out, err := exec.Command(bin, "health", "-brokers", fmt.Sprintf("127.0.0.1:%d", kafkaPort),
		"-registry", fmt.Sprintf("http://127.0.0.1:%d", regPort)).CombinedOutput()
	if err != nil {
		t.Errorf("vumi health: %v\n%s", err, out)
	}
	for _, want := range []string{"global:telnet_transport", "global:echo", "alive", "telnet/telnet", "listening"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("vumi health output lacks %q:\n%s", want, out)
		}
	}
	app.stop(t)
	transport.stop(t)
	broker.stop(t)
}

// TestDemoProcess runs the README's demo as a user would: the vumi binary
// with the shipped deploy/local/vumi.yaml, a telnet session that gets its
// echo, then SIGTERM and a clean exit. It runs twice on the same data
// directory: what the first run wrote must not stop the second.
func TestDemoProcess(t *testing.T) {
	bin := buildBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	for round := 1; round <= 2; round++ {
		telnetPort, mgmtPort := freePort(t), freePort(t)
		p := start(t, bin, []string{
			fmt.Sprintf("VUMI_MANAGEMENT_PORT=%d", mgmtPort),
			"VUMI_MANAGEMENT_PASSWORD=demo-pass",
			"VUMI_DATA_DIR=" + data,
			fmt.Sprintf("VUMI_KAFKA_PORT=%d", freePort(t)),
			fmt.Sprintf("VUMI_REGISTRY_PORT=%d", freePort(t)),
			fmt.Sprintf("TELNET_PORT=%d", telnetPort),
			fmt.Sprintf("SMSC_PORT=%d", freePort(t)),
			fmt.Sprintf("SMSC_HTTP_PORT=%d", freePort(t)),
			fmt.Sprintf("VUMI_METRICS_ADDR=127.0.0.1:%d", freePort(t)),
		}, "run", "-c", "../../deploy/local/vumi.yaml")
		echoSession(t, telnetPort, fmt.Sprintf("hallo world %d", round))
		dashboardServed(t, mgmtPort)
		p.stop(t)
		if !strings.Contains(p.stderr.String(), "deployment stopped") {
			t.Errorf("round %d: no clean shutdown in the log:\n%s", round, p.stderr.String())
		}
	}
}

// dashboardServed checks that the demo serves its dashboard and
// management API behind basic auth.
func dashboardServed(t *testing.T, port int) {
	t.Helper()
	get := func(path string, auth bool) (int, string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		if auth {
			req.SetBasicAuth("admin", "demo-pass")
		}
		// The API starts listening once the workers are started.
		deadline := time.Now().Add(60 * time.Second)
		resp, err := http.DefaultClient.Do(req)
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			resp, err = http.DefaultClient.Do(req)
		}
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/", false); code != http.StatusUnauthorized {
		t.Errorf("dashboard without auth: %d", code)
	}
	if code, body := get("/", true); code != 200 || !strings.Contains(body, "Vumi — dashboard") {
		t.Errorf("dashboard: %d %.200s", code, body)
	}
	if code, body := get("/api/v1/channels", true); code != 200 || !strings.Contains(body, `"id":"telnet_transport"`) || !strings.Contains(body, `"id":"smpp_transport"`) {
		t.Errorf("channels: %d %.500s", code, body)
	}
}

// TestDynamicWorkerProcess: 'vumi worker -dynamic -serve-management' next
// to a 'vumi broker' runs only the channels created through its API, and
// a second '-dynamic' process picks them up from the control topic.
func TestDynamicWorkerProcess(t *testing.T) {
	bin := buildBinary(t)
	kafkaPort, regPort := freePort(t), freePort(t)
	data := filepath.Join(t.TempDir(), "data")
	env := func(mgmt int) []string {
		return []string{"VUMI_DATA_DIR=" + data, fmt.Sprintf("VUMI_KAFKA_PORT=%d", kafkaPort),
			fmt.Sprintf("VUMI_REGISTRY_PORT=%d", regPort), fmt.Sprintf("VUMI_MANAGEMENT_PORT=%d", mgmt),
			"VUMI_MANAGEMENT_PASSWORD=pw", fmt.Sprintf("VUMI_METRICS_ADDR=127.0.0.1:%d", freePort(t))}
	}
	broker := start(t, bin, env(0), "broker", "-data-dir", data, "-kafka-port", fmt.Sprint(kafkaPort), "-registry-port", fmt.Sprint(regPort))
	m1, m2 := freePort(t), freePort(t)
	p1 := start(t, bin, env(m1), "worker", "-c", "../../deploy/local/vumi.yaml", "-dynamic", "-serve-management")
	p2 := start(t, bin, env(m2), "worker", "-c", "../../deploy/local/vumi.yaml", "-dynamic", "-serve-management")
	call := func(port int, method, path, body string) (int, string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), strings.NewReader(body))
			req.SetBasicAuth("admin", "pw")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Only the API's channels run: none yet.
	if code, body := call(m1, "GET", "/api/v1/workers", ""); code != 200 || !strings.Contains(body, `"result":[]`) {
		t.Fatalf("workers before: %d %s", code, body)
	}
	code, body := call(m1, "POST", "/api/v1/channels", `{"id":"dn","kind":"devnull","config":{"transport_name":"dn","ack_rate":1,"failure_rate":0,"reply_rate":0}}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, port := range []int{m1, m2} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, body := call(port, "GET", "/api/v1/workers", "")
			if strings.Contains(body, `"name":"dn"`) && strings.Contains(body, `"state":"running"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process on %d never ran dn: %s", port, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if code, body := call(m2, "POST", "/api/v1/channels/dn/messages", `{"to":"123","content":"hi"}`); code != 201 {
		t.Errorf("send: %d %s", code, body)
	}
	p2.stop(t)
	p1.stop(t)
	broker.stop(t)
}
