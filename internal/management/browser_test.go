package management_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transporttest"
)

// webDriver is a chromedriver session, driven over the W3C WebDriver HTTP
// protocol.
type webDriver struct {
	base    string
	session string
}

func freePort(t *testing.T) int {
	t.Helper()
	return transporttest.FreePort(t)
}

// startBrowser starts chromedriver and a headless Chromium session.
func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	driver, err := exec.LookPath("chromedriver")
	if err != nil {
		t.Fatal("chromedriver not found: run scripts/install-test-deps.sh (Debian packages chromium and chromium-driver)")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: run scripts/install-test-deps.sh")
	}
	port := freePort(t)
	cmd := exec.Command(driver, fmt.Sprintf("--port=%d", port), "--allowed-ips=127.0.0.1")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if os.Getenv("VUMI_TEST_LOG") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	wd := &webDriver{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	waitFor(t, 30*time.Second, "chromedriver ready", func() bool {
		resp, err := http.Get(wd.base + "/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromium,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()},
		},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	wd.do(t, "POST", "/session", caps, &sess)
	if sess.SessionID == "" {
		t.Fatal("no WebDriver session")
	}
	wd.session = "/session/" + sess.SessionID
	t.Cleanup(func() { wd.do(t, "DELETE", wd.session, nil, nil) })
	return wd
}

// do makes a WebDriver call and decodes its "value".
func (wd *webDriver) do(t *testing.T, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, wd.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 90 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("webdriver %s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		var env struct {
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("webdriver %s: %v", path, err)
		}
		if err := json.Unmarshal(env.Value, out); err != nil {
			t.Fatalf("webdriver %s value %s: %v", path, env.Value, err)
		}
	}
}

// pageState is what the dashboard page shows, read from its DOM.
type pageState struct {
	Conn     string            `json:"conn"`
	Updated  string            `json:"updated"`
	Workers  map[string]string `json:"workers"` // name -> heartbeat cell
	Silent   []string          `json:"silent"`
	Channels []string          `json:"channels"`
	Sparks   int               `json:"sparks"`
	Failures []string          `json:"failures"`
}

const readPage = `
const rows = (sel) => Array.from(document.querySelectorAll(sel));
const workers = {};
rows("#workers tbody tr").forEach((tr) => { workers[tr.dataset.worker] = tr.querySelector(".hb").textContent; });
return {
  conn: document.getElementById("conn").textContent,
  updated: document.body.dataset.updated || "",
  workers: workers,
  silent: rows("#workers tbody tr.silent").map((tr) => tr.dataset.worker),
  channels: rows("#channels tbody tr").map((tr) => tr.dataset.channel),
  sparks: rows("#channels svg.spark polyline").length,
  failures: rows("#failures li").map((li) => li.textContent),
};`

func (wd *webDriver) state(t *testing.T) pageState {
	t.Helper()
	var st pageState
	wd.do(t, "POST", wd.session+"/execute/sync", map[string]any{"script": readPage, "args": []any{}}, &st)
	return st
}

// TestDashboardInBrowser: the dashboard of a running demo, in headless
// Chromium: it loads behind basic auth, shows every worker with its
// heartbeat, updates by itself, picks up a channel created through the
// API, and flags a worker silent for two heartbeat intervals.
func TestDashboardInBrowser(t *testing.T) {
	c := startCluster(t)
	// The demo of deploy/local (telnet and echo) with a devnull channel.
	p := start(t, c.config(t, `
  - name: telnet_transport
    kind: telnet
    transport_name: telnet
    twisted_endpoint: tcp:port=0:interface=127.0.0.1
    publish_status: true
    heartbeat_interval: 1s
  - name: echo
    kind: echo
    transport_name: telnet
    heartbeat_interval: 1s
`+staticWorkers))
	wd := startBrowser(t)
	page := strings.Replace(p.url, "http://", "http://"+user+":"+pass+"@", 1) + "/"
	wd.do(t, "POST", wd.session+"/url", map[string]any{"url": page}, nil)

	var st pageState
	waitFor(t, 60*time.Second, "the page to show the demo's workers with heartbeats", func() bool {
		st = wd.state(t)
		for _, w := range []string{"telnet_transport", "echo", "static_dn", "static_echo"} {
			if hb, ok := st.Workers[w]; !ok || !strings.HasSuffix(hb, "s ago") {
				return false
			}
		}
		return st.Conn == "live" && st.Updated != ""
	})
	if len(st.Silent) != 0 {
		t.Errorf("silent workers on a healthy demo: %v", st.Silent)
	}
	if !contains(st.Channels, "telnet_transport") || !contains(st.Channels, "static_dn") || st.Sparks == 0 {
		t.Errorf("channels %v, %d sparkline series", st.Channels, st.Sparks)
	}
	first := st.Updated
	waitFor(t, 30*time.Second, "the page to update by itself", func() bool { return wd.state(t).Updated != first })

	// A channel created through the API shows up without a reload.
	code, r := p.call(t, "POST", "/api/v1/channels", map[string]any{
		"id": "brief", "kind": "devnull", "config": map[string]any{"transport_name": "brief", "ack_rate": 1, "failure_rate": 0, "reply_rate": 0, "heartbeat_interval": "1s"},
	})
	if code != 201 {
		t.Fatalf("create: %d %s %s", code, r.Description, r.Result)
	}
	waitFor(t, 60*time.Second, "the new channel and its heartbeat on the page", func() bool {
		st = wd.state(t)
		return contains(st.Channels, "brief") && strings.HasSuffix(st.Workers["brief"], "s ago")
	})
	// Deleted, its heartbeats stop: after two intervals it is flagged.
	if code, _ := p.call(t, "DELETE", "/api/v1/channels/brief", nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	waitFor(t, 60*time.Second, "the stopped worker flagged silent", func() bool {
		st = wd.state(t)
		return contains(st.Silent, "brief") && strings.Contains(st.Workers["brief"], "SILENT")
	})
	t.Logf("final page: %+v", st)
	if contains(st.Silent, "echo") || contains(st.Silent, "telnet_transport") {
		t.Errorf("healthy workers flagged: %v", st.Silent)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
