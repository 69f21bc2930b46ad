package management_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/internal/management"
	"github.com/vumi-kafka/vumi/schemas"
)

// TestCrashingChannelRestarted: a channel whose worker panics and then
// loses its connection is restarted with backoff, each failure reported
// on vumi.status; a poison message that panics its handler goes to
// failures; the other workers of the process never notice.
func TestCrashingChannelRestarted(t *testing.T) {
	c := startCluster(t)
	p := start(t, c.config(t, staticWorkers))
	status := c.consumer(t, "vumi.status")
	code, r := p.call(t, "POST", "/api/v1/channels", map[string]any{
		"id": "cr", "kind": "crashy", "config": map[string]any{"transport_name": "cr", "heartbeat_interval": "1s"},
	})
	if code != 201 {
		t.Fatalf("create: %d %s %s", code, r.Description, r.Result)
	}
	waitFor(t, 30*time.Second, "cr running after two restarts", func() bool {
		st := p.here(t)["cr"]
		return st.State == "running" && st.Restarts == 2
	})
	st := p.here(t)["cr"]
	if !strings.Contains(st.LastError, "connection reset by peer") {
		t.Errorf("last error %q", st.LastError)
	}
	// Reported on vumi.status: two failures (the panic, the error), each
	// followed by a restart.
	got := c.Collect(t, status, 30*time.Second, func(got []any) bool {
		n := 0
		for _, v := range got {
			if s, ok := v.(*schemas.Status); ok && s.Worker != nil && *s.Worker == "cr" && s.Type == "worker_restarted" {
				n++
			}
		}
		return n == 2
	})
	var failed []*schemas.Status
	for _, v := range got {
		if s, ok := v.(*schemas.Status); ok && s.Worker != nil && *s.Worker == "cr" && s.Type == "worker_failed" {
			failed = append(failed, s)
		}
	}
	if len(failed) != 2 || failed[0].Status != schemas.StatusDown || !strings.Contains(failed[0].Message, "panic: crashy: first run") ||
		!strings.Contains(failed[1].Message, "connection reset by peer") || failed[0].Component != "supervisor" {
		t.Errorf("failure statuses %+v", failed)
	}
	// The API's status of the channel shows them too.
	waitFor(t, 30*time.Second, "the failures in the channel's status", func() bool {
		_, r := p.call(t, "GET", "/api/v1/channels/cr/status", nil)
		sts := result[management.StatusResult](t, r).Statuses
		n := 0
		for _, s := range sts {
			if s.Type == "worker_failed" {
				n++
			}
		}
		return n == 2
	})

	// A message that panics the handler is a failure, not a crash.
	failures := c.consumer(t, "cr.failures")
	events := c.consumer(t, "cr.event")
	if code, r := p.call(t, "POST", "/api/v1/channels/cr/messages", map[string]any{"to": "123", "content": "panic"}); code != 201 {
		t.Fatalf("send: %d %s", code, r.Description)
	}
	fs := c.Collect(t, failures, 30*time.Second, func(got []any) bool { return len(got) == 1 })
	if f := fs[0].(*schemas.Failure); !strings.Contains(f.Reason, "handler panicked: crashy: poison message") ||
		f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent {
		t.Errorf("failure %+v", f)
	}
	_, r = p.call(t, "POST", "/api/v1/channels/cr/messages", map[string]any{"to": "123", "content": "fine"})
	okID := result[map[string]any](t, r)["message_id"].(string)
	c.Collect(t, events, 30*time.Second, func(got []any) bool {
		return slices.ContainsFunc(got, func(v any) bool { e, ok := v.(*schemas.Event); return ok && e.UserMessageID == okID })
	})
	if st := p.here(t)["cr"]; st.Restarts != 2 || st.State != "running" {
		t.Errorf("cr after the poison message: %+v", st)
	}
	// The dashboard lists the failure.
	waitFor(t, 30*time.Second, "the failure on the dashboard", func() bool {
		_, r := p.call(t, "GET", "/api/v1/dashboard", nil)
		d := result[management.Dashboard](t, r)
		return slices.ContainsFunc(d.Failures, func(f management.FailureView) bool {
			return f.Topic == "cr.failures" && strings.Contains(f.Reason, "poison")
		})
	})
	for _, name := range []string{"static_dn", "static_echo"} {
		if st := p.here(t)[name]; st.State != "running" || st.Restarts != 0 {
			t.Errorf("%s was disturbed: %+v", name, st)
		}
	}
}

// TestProcessesConverge: two processes of one deployment (and a third
// started later) run the same channels: created, changed and deleted
// through either one's API.
func TestProcessesConverge(t *testing.T) {
	c := startCluster(t)
	p1 := start(t, c.config(t, staticWorkers))
	p2 := start(t, c.config(t, staticWorkers))
	both := func(what string, cond func(p *process) bool) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() bool { return cond(p1) && cond(p2) })
	}
	code, r := p1.call(t, "POST", "/api/v1/channels", map[string]any{
		"id": "shared", "kind": "devnull", "config": map[string]any{"transport_name": "shared", "ack_rate": 1, "failure_rate": 0, "reply_rate": 0},
	})
	if code != 201 {
		t.Fatalf("create: %d %s %s", code, r.Description, r.Result)
	}
	both("both processes run the channel", func(p *process) bool { return p.here(t)["shared"].State == "running" })
	fp := p1.here(t)["shared"].Fingerprint
	if p2.here(t)["shared"].Fingerprint != fp {
		t.Fatal("the processes run different configs")
	}
	// Changed through the other process.
	if code, r := p2.call(t, "PATCH", "/api/v1/channels/shared", map[string]any{"config": map[string]any{"ack_rate": 0.5}}); code != 200 {
		t.Fatalf("patch: %d %s %s", code, r.Description, r.Result)
	}
	both("both processes run the new config", func(p *process) bool {
		st := p.here(t)["shared"]
		return st.State == "running" && st.Fingerprint != fp
	})
	if a, b := p1.here(t)["shared"].Fingerprint, p2.here(t)["shared"].Fingerprint; a != b {
		t.Errorf("fingerprints differ: %s, %s", a, b)
	}
	// Restart on every instance.
	before1, before2 := p1.here(t)["shared"].Since, p2.here(t)["shared"].Since
	if code, r := p1.call(t, "POST", "/api/v1/channels/shared/restart", nil); code != 200 {
		t.Fatalf("restart: %d %s", code, r.Description)
	}
	waitFor(t, 60*time.Second, "both restarted", func() bool {
		return p1.here(t)["shared"].Since.After(before1) && p2.here(t)["shared"].Since.After(before2)
	})
	// Durable: a process started now runs it too.
	p3 := start(t, c.config(t, staticWorkers))
	waitFor(t, 60*time.Second, "a new process runs the channel", func() bool { return p3.here(t)["shared"].State == "running" })
	if p3.here(t)["shared"].Fingerprint != p1.here(t)["shared"].Fingerprint {
		t.Error("the new process runs another config")
	}
	if code, _ := p2.call(t, "DELETE", "/api/v1/channels/shared", nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	waitFor(t, 60*time.Second, "every process stopped the channel", func() bool {
		for _, p := range []*process{p1, p2, p3} {
			if _, ok := p.here(t)["shared"]; ok {
				return false
			}
		}
		return true
	})
}

// TestChannelRecoversWhenItsPortFrees: a telnet channel whose port is
// taken fails to listen; the supervisor keeps restarting it with backoff
// and reports each failure, and once the port is free the channel listens.
func TestChannelRecoversWhenItsPortFrees(t *testing.T) {
	c := startCluster(t)
	p := start(t, c.config(t, staticWorkers))
	squatter, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := squatter.Addr().(*net.TCPAddr).Port
	code, r := p.call(t, "POST", "/api/v1/channels", map[string]any{
		"id": "tn", "kind": "telnet",
		"config": map[string]any{"transport_name": "tn", "twisted_endpoint": fmt.Sprintf("tcp:port=%d:interface=127.0.0.1", port), "publish_status": true},
	})
	if code != 201 {
		t.Fatalf("create: %d %s %s", code, r.Description, r.Result)
	}
	waitFor(t, 30*time.Second, "two failed starts reported", func() bool {
		_, r := p.call(t, "GET", "/api/v1/channels/tn/status", nil)
		n := 0
		for _, s := range result[management.StatusResult](t, r).Statuses {
			if s.Type == "worker_failed" && s.Status == "down" && strings.Contains(s.Message, "address already in use") {
				n++
			}
		}
		return n >= 2
	})
	if st := p.here(t)["tn"]; st.Restarts < 2 || !strings.Contains(st.LastError, "address already in use") {
		t.Errorf("tn: %+v", st)
	}
	squatter.Close()
	// The next restart listens; the transport says so on vumi.status.
	waitFor(t, 60*time.Second, "tn listening", func() bool {
		_, r := p.call(t, "GET", "/api/v1/channels/tn/status", nil)
		st := result[management.StatusResult](t, r)
		return len(st.Statuses) > 0 && st.Statuses[0].Type == "listening" && st.Status == "ok"
	})
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		t.Fatalf("the channel does not accept connections: %v", err)
	}
	conn.Close()
}
