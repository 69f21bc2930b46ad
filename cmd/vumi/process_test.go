package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDemoProcess runs the README's demo as a user would: the vumi binary
// with the shipped deploy/local/vumi.yaml, a telnet session that gets its
// echo, then SIGTERM and a clean exit. It runs twice on the same data
// directory: what the first run wrote must not stop the second.
func TestDemoProcess(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "vumi")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	for round := 1; round <= 2; round++ {
		telnetPort := freePort(t)
		cmd := exec.Command(bin, "run", "-c", "../../deploy/local/vumi.yaml")
		cmd.Env = append(os.Environ(),
			"VUMI_DATA_DIR="+data,
			fmt.Sprintf("VUMI_KAFKA_PORT=%d", freePort(t)),
			fmt.Sprintf("VUMI_REGISTRY_PORT=%d", freePort(t)),
			fmt.Sprintf("TELNET_PORT=%d", telnetPort))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		func() {
			defer func() {
				if t.Failed() {
					_ = cmd.Process.Kill()
					t.Logf("vumi run output:\n%s", stderr.String())
				}
			}()
			var conn net.Conn
			deadline := time.Now().Add(60 * time.Second)
			for {
				var err error
				conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", telnetPort), time.Second)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("round %d: telnet port never opened: %v", round, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			r := bufio.NewReader(conn)
			line, err := r.ReadString('\n')
			if err != nil || strings.TrimSpace(line) != "Enter text to echo:" {
				t.Fatalf("round %d: first line %q, %v", round, line, err)
			}
			fmt.Fprintf(conn, "hallo world %d\r\n", round)
			line, err = r.ReadString('\n')
			if want := fmt.Sprintf("hallo world %d", round); err != nil || strings.TrimSpace(line) != want {
				t.Fatalf("round %d: echo %q, %v; want %q", round, line, err, want)
			}
		}()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("round %d: vumi run exited with %v after SIGTERM\n%s", round, err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("round %d: vumi run did not exit within 30s of SIGTERM\n%s", round, stderr.String())
		}
		if !strings.Contains(stderr.String(), "deployment stopped") {
			t.Errorf("round %d: no clean shutdown in the log:\n%s", round, stderr.String())
		}
	}
}
