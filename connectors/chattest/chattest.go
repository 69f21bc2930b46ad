// Package chattest is the shared harness of the tests of transports
// without a web server (IRC, XMPP, Twitter, the TCP clients): a deployment
// runs for real on an embedded broker and registry (connectors/transporttest
// with no web ports), the test talks to a real chat server (or a fake peer)
// from outside, and waits for what the transport put on its topics. It
// also starts the chat servers the tests use (prosody, ngircd) as child
// processes on loopback.
//
// It is imported only by tests.
package chattest

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/topology"
)

// Env is a running deployment under test: transporttest's, without web
// ports.
type Env = transporttest.Env

// Start runs the workers (YAML list items under "workers:") with kinds on
// a fresh embedded broker, and returns once every worker runs. The
// transport's outbound topic is marked external, so a deployment without
// an application is valid. The deployment failing when it stops at the
// end of the test fails the test.
func Start(t testing.TB, kinds *topology.Registry, transportName, workersYAML string) *Env {
	t.Helper()
	e := transporttest.StartMulti(t, kinds, transportName, workersYAML, 0)
	e.StopMustSucceed = true
	return e
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return transporttest.FreePort(t)
}

// RequireBinary returns the path of a program, and fails the test (it
// never skips) when it is not installed.
func RequireBinary(t testing.TB, name string, hint string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin/", "/usr/bin/", "/sbin/"} {
		if p, err := exec.LookPath(dir + name); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed: %s (scripts/install-test-deps.sh installs it)", name, hint)
	return ""
}

// Process is a server started by a test.
type Process struct {
	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	out  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartProcess runs a server in the foreground, waits until it accepts TCP
// connections on 127.0.0.1:port, and stops it when the test ends.
func StartProcess(t testing.TB, port int, name string, args ...string) *Process {
	t.Helper()
	p := &Process{t: t, done: make(chan struct{}), out: &lockedBuffer{}}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on %d:\n%s", name, port, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened on %d: %v\n%s", name, port, err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Output is what the process wrote so far.
func (p *Process) Output() string { return p.out.String() }

// Stop terminates the process (and its process group) and waits for it.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// JSON is v's JSON, for failure messages.
func JSON(t testing.TB, v interface{ MarshalJSON() ([]byte, error) }) string {
	t.Helper()
	b, err := v.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
