package management_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/internal/management"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

const staticWorkers = `
  - name: static_dn
    kind: devnull
    transport_name: static
    ack_rate: 1
    failure_rate: 0
    reply_rate: 0
    heartbeat_interval: 1s
  - name: static_echo
    kind: echo
    transport_name: static
    heartbeat_interval: 1s
`

func errorsOf(t *testing.T, r response) []string {
	t.Helper()
	return result[struct {
		Errors []string `json:"errors"`
	}](t, r).Errors
}

func hasError(errs []string, sub string) bool {
	return slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, sub) })
}

func TestAuth(t *testing.T) {
	c := startCluster(t)
	p := start(t, c.config(t, staticWorkers))
	basic := func(u, pw string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u+":"+pw)))
		}
	}
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	for _, tc := range []struct {
		name string
		auth func(*http.Request)
		want int
	}{
		{"none", nil, 401},
		{"wrong token", bearer("nope"), 401},
		{"token prefix", bearer(token[:4]), 401},
		{"wrong password", basic(user, "nope"), 401},
		{"wrong user", basic("root", pass), 401},
		{"token", bearer(token), 200},
		{"basic", basic(user, pass), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/channels", "/api/v1/dashboard", "/"} {
				req, _ := http.NewRequest("GET", p.url+path, nil)
				if tc.auth != nil {
					tc.auth(req)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, tc.want)
				}
				if tc.want == 401 && !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), ","), "Basic") {
					t.Errorf("GET %s: 401 without a Basic challenge: %v", path, resp.Header)
				}
			}
		})
	}
}

// TestChannelLifecycle: a channel created at run time runs, carries
// messages sent through the API, changes config, and goes away; bad
// configs are rejected with the config file's validation messages.
func TestChannelLifecycle(t *testing.T) {
	c := startCluster(t)
	p := start(t, c.config(t, staticWorkers))

	rejected := []struct {
		name, path string
		body       any
		code       int
		want       string
	}{
		{"missing key", "/api/v1/channels", map[string]any{"id": "bad", "kind": "devnull", "config": map[string]any{"transport_name": "bad", "failure_rate": 0, "reply_rate": 0}}, 400, "key ack_rate: is required"},
		{"unknown key", "/api/v1/channels", map[string]any{"id": "bad", "kind": "devnull", "config": map[string]any{"transport_name": "bad", "ack_rate": 1, "failure_rate": 0, "reply_rate": 0, "ack_rat": 1}}, 400, "key ack_rat: unknown key"},
		{"unknown kind", "/api/v1/channels", map[string]any{"id": "bad", "kind": "carrier-pigeon"}, 400, `unknown kind "carrier-pigeon"`},
		{"router as channel", "/api/v1/channels", map[string]any{"id": "bad", "kind": "echo", "config": map[string]any{"transport_name": "x"}}, 400, "is a application, not a transport"},
		{"channel as router", "/api/v1/routers", map[string]any{"id": "bad", "kind": "devnull", "config": map[string]any{"transport_name": "bad", "ack_rate": 1, "failure_rate": 0, "reply_rate": 0}}, 400, "not a dispatcher"},
		{"bad id", "/api/v1/channels", map[string]any{"id": "no spaces", "kind": "devnull"}, 400, "may only contain"},
		{"static name", "/api/v1/channels", map[string]any{"id": "static_dn", "kind": "devnull"}, 409, ""},
		{"unknown field", "/api/v1/channels", map[string]any{"id": "x", "kind": "devnull", "colour": "red"}, 400, `unknown field "colour"`},
		{"not json", "/api/v1/channels", "{", 400, "unexpected EOF"},
	}
	for _, tc := range rejected {
		t.Run("reject "+tc.name, func(t *testing.T) {
			code, r := p.call(t, "POST", tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("%d %s %s, want %d", code, r.Description, r.Result, tc.code)
			}
			if tc.want != "" && !hasError(errorsOf(t, r), tc.want) {
				t.Errorf("errors %q do not say %q", errorsOf(t, r), tc.want)
			}
		})
	}
	big := `{"id":"x","kind":"devnull","label":"` + strings.Repeat("a", 2<<20) + `"}`
	if code, r := p.call(t, "POST", "/api/v1/channels", big); code != 413 {
		t.Errorf("2 MiB body: %d %s", code, r.Description)
	}

	// Create.
	code, r := p.call(t, "POST", "/api/v1/channels", map[string]any{
		"id": "dn1", "kind": "devnull", "label": "load test",
		"config": map[string]any{"transport_name": "dn1", "ack_rate": 1, "failure_rate": 0, "reply_rate": 0, "heartbeat_interval": "1s", "publish_status": true},
	})
	if code != 201 {
		t.Fatalf("create: %d %s %s", code, r.Description, r.Result)
	}
	v := result[management.View](t, r)
	if v.ID != "dn1" || v.Kind != "devnull" || v.Source != "api" || v.TransportName != "dn1" || v.Label != "load test" {
		t.Errorf("created view %+v", v)
	}
	waitFor(t, 30*time.Second, "dn1 running here", func() bool { return p.here(t)["dn1"].State == "running" })
	fp1 := p.here(t)["dn1"].Fingerprint

	// List: the config file's channel and the API's.
	_, r = p.call(t, "GET", "/api/v1/channels", nil)
	list := result[[]management.View](t, r)
	sources := map[string]string{}
	for _, v := range list {
		sources[v.ID] = v.Source
	}
	if sources["static_dn"] != "config" || sources["dn1"] != "api" || len(list) != 2 {
		t.Errorf("channels %v", sources)
	}

	// Send through it: the devnull transport acks it.
	events := c.consumer(t, "dn1.event", "dn1.inbound")
	code, r = p.call(t, "POST", "/api/v1/channels/dn1/messages", map[string]any{"to": "+27831234567", "from": "1234", "content": "hello"})
	if code != 201 {
		t.Fatalf("send: %d %s %s", code, r.Description, r.Result)
	}
	sent := result[map[string]any](t, r)
	msgID, _ := sent["message_id"].(string)
	if msgID == "" || sent["transport_name"] != "dn1" || sent["to_addr"] != "+27831234567" {
		t.Fatalf("sent message %v", sent)
	}
	c.Collect(t, events, 30*time.Second, func(got []any) bool {
		return slices.ContainsFunc(got, func(v any) bool {
			e, ok := v.(*schemas.Event)
			return ok && e.UserMessageID == msgID && e.EventType == schemas.EventAck
		})
	})
	if code, r := p.call(t, "POST", "/api/v1/channels/dn1/messages", map[string]any{"content": "no address", "session_event": "later"}); code != 400 ||
		!hasError(errorsOf(t, r), "to: is required") || !hasError(errorsOf(t, r), `session_event: "later"`) {
		t.Errorf("bad message: %d %v", code, r.Result)
	}

	// Logs by message id and by channel.
	_, r = p.call(t, "GET", "/api/v1/messages/"+msgID+"/logs", nil)
	if logs := result[[]management.LogRecord](t, r); !slices.ContainsFunc(logs, func(l management.LogRecord) bool {
		return strings.Contains(l.Message, "message sent") && l.Attrs["message_id"] == msgID
	}) {
		t.Errorf("message logs %+v", logs)
	}
	_, r = p.call(t, "GET", "/api/v1/channels/dn1/logs?n=50", nil)
	logs := result[[]management.LogRecord](t, r)
	if len(logs) == 0 || slices.ContainsFunc(logs, func(l management.LogRecord) bool { return l.Worker != "dn1" }) {
		t.Errorf("channel logs %+v", logs)
	}
	if code, _ := p.call(t, "GET", "/api/v1/channels/dn1/logs?n=zero", nil); code != 400 {
		t.Errorf("logs?n=zero: %d", code)
	}

	// Status: the supervisor's start event, heartbeats, the rates.
	// Once the monitor samples dn1's topics, traffic shows in its rates.
	waitFor(t, 30*time.Second, "dn1 sampled", func() bool {
		_, r := p.call(t, "GET", "/api/v1/channels/dn1/status", nil)
		st := result[management.StatusResult](t, r)
		return st.Figures != nil && len(st.Figures.History.Outbound) >= 2
	})
	if code, r := p.call(t, "POST", "/api/v1/channels/dn1/messages", map[string]any{"to": "+27831234567", "content": "again"}); code != 201 {
		t.Fatalf("send: %d %s", code, r.Description)
	}
	var lastStatus response
	defer func() {
		if t.Failed() {
			t.Logf("last status: %s", lastStatus.Result)
		}
	}()
	waitFor(t, 30*time.Second, "dn1's status with heartbeats, its start and its traffic", func() bool {
		_, r := p.call(t, "GET", "/api/v1/channels/dn1/status", nil)
		lastStatus = r
		st := result[management.StatusResult](t, r)
		started := slices.ContainsFunc(st.Statuses, func(s management.StatusView) bool {
			return s.Component == "supervisor" && s.Type == "worker_started"
		})
		return started && len(st.Instances) == 1 && st.Figures != nil && slices.Max(append(st.Figures.History.Outbound, 0)) > 0
	})

	// Update (merge patch): replies on; the worker restarts with it.
	code, r = p.call(t, "PATCH", "/api/v1/channels/dn1", map[string]any{"config": map[string]any{"reply_rate": 1}})
	if code != 200 {
		t.Fatalf("patch: %d %s %s", code, r.Description, r.Result)
	}
	waitFor(t, 30*time.Second, "dn1 restarted with the new config", func() bool {
		st := p.here(t)["dn1"]
		return st.State == "running" && st.Fingerprint != fp1
	})
	code, r = p.call(t, "POST", "/api/v1/channels/dn1/messages", map[string]any{"to": "+27831234567", "content": "echo me"})
	if code != 201 {
		t.Fatalf("send: %d %s", code, r.Description)
	}
	// devnull's reply echoes the content, from the address sent to.
	c.Collect(t, events, 30*time.Second, func(got []any) bool {
		return slices.ContainsFunc(got, func(v any) bool {
			m, ok := v.(*schemas.UserMessage)
			return ok && m.Text() == "echo me" && m.From() == "+27831234567"
		})
	})

	// A bad update is rejected and changes nothing.
	code, r = p.call(t, "PUT", "/api/v1/channels/dn1", map[string]any{"kind": "devnull", "config": map[string]any{"transport_name": "dn1", "ack_rate": 1, "failure_rate": 0, "reply_rate": 5}})
	if code != 400 || !hasError(errorsOf(t, r), "key reply_rate: 5 is not between 0.0 and 1.0") {
		t.Errorf("bad update: %d %v", code, r.Result)
	}
	_, r = p.call(t, "GET", "/api/v1/channels/dn1", nil)
	if got := string(result[management.View](t, r).Config); !strings.Contains(got, `"reply_rate":1`) {
		t.Errorf("config after the rejected update: %s", got)
	}

	// The config file's channels are not the API's to change.
	if code, _ := p.call(t, "DELETE", "/api/v1/channels/static_dn", nil); code != 409 {
		t.Errorf("delete static: %d", code)
	}
	if code, _ := p.call(t, "PATCH", "/api/v1/channels/static_dn", map[string]any{"config": map[string]any{"reply_rate": 1}}); code != 409 {
		t.Errorf("patch static: %d", code)
	}

	// Delete.
	if code, r := p.call(t, "DELETE", "/api/v1/channels/dn1", nil); code != 200 {
		t.Fatalf("delete: %d %s", code, r.Description)
	}
	waitFor(t, 30*time.Second, "dn1 stopped", func() bool { _, ok := p.here(t)["dn1"]; return !ok })
	if code, _ := p.call(t, "GET", "/api/v1/channels/dn1", nil); code != 404 {
		t.Errorf("get deleted: %d", code)
	}
	if st := p.here(t)["static_dn"]; st.State != "running" || st.Restarts != 0 {
		t.Errorf("static_dn: %+v", st)
	}
}

// TestRouterAtRunTime: a router (dispatcher) created through the API runs.
func TestRouterAtRunTime(t *testing.T) {
	c := startCluster(t)
	p := start(t, c.config(t, staticWorkers))
	router := func(exposed string) map[string]any {
		return map[string]any{
			"id": "fanout", "kind": "vumi.dispatchers.base.SimpleDispatchRouter",
			"config": map[string]any{
				"transport_names": []string{"static"}, "exposed_names": []string{exposed},
				"route_mappings": map[string]any{"static": []string{exposed}},
			},
		}
	}
	// Nothing writes app2.outbound: the whole graph is checked.
	code, r := p.call(t, "POST", "/api/v1/routers", router("app2"))
	if code != 400 || !hasError(errorsOf(t, r), "topic app2.outbound: consumed by fanout but no worker produces it") {
		t.Errorf("router without a producer: %d %s", code, r.Result)
	}
	code, r = p.call(t, "POST", "/api/v1/routers", router("app1"))
	if code != 201 {
		t.Fatalf("create router: %d %s %s", code, r.Description, r.Result)
	}
	waitFor(t, 30*time.Second, "router running", func() bool { return p.here(t)["fanout"].State == "running" })
	_, r = p.call(t, "GET", "/api/v1/routers", nil)
	if l := result[[]management.View](t, r); len(l) != 1 || l[0].Role != topology.RoleDispatcher {
		t.Errorf("routers %+v", l)
	}
}

// TestChannelRateLimit: a channel created with Junebug's rate limit
// hands out at most rate_limit_count messages per window; the rest wait
// on the topic and show as outbound lag.
func TestChannelRateLimit(t *testing.T) {
	c := startCluster(t)
	p := start(t, c.config(t, staticWorkers))
	code, r := p.call(t, "POST", "/api/v1/channels", map[string]any{
		"id": "slow", "kind": "devnull",
		"config": map[string]any{"transport_name": "slow", "ack_rate": 1, "failure_rate": 0, "reply_rate": 0, "rate_limit_count": 2, "rate_limit_window": "1s"},
	})
	if code != 201 {
		t.Fatalf("create: %d %s %s", code, r.Description, r.Result)
	}
	if code, r := p.call(t, "POST", "/api/v1/channels", map[string]any{
		"id": "bad", "kind": "devnull",
		"config": map[string]any{"transport_name": "bad", "ack_rate": 1, "failure_rate": 0, "reply_rate": 0, "rate_limit_count": -1},
	}); code != 400 || !hasError(errorsOf(t, r), "key rate_limit_count: must be 0 (no limit) or more") {
		t.Errorf("negative rate limit: %d %s", code, r.Result)
	}
	waitFor(t, 30*time.Second, "slow running", func() bool { return p.here(t)["slow"].State == "running" })
	events := c.consumer(t, "slow.event")
	const n = 7
	for i := range n {
		if code, r := p.call(t, "POST", "/api/v1/channels/slow/messages", map[string]any{"to": fmt.Sprint(i), "content": "x"}); code != 201 {
			t.Fatalf("send: %d %s", code, r.Description)
		}
	}
	var acks []time.Time
	c.Collect(t, events, 60*time.Second, func(got []any) bool {
		acks = acks[:0]
		for _, v := range got {
			if e, ok := v.(*schemas.Event); ok && e.EventType == schemas.EventAck {
				acks = append(acks, e.Timestamp)
			}
		}
		return len(acks) == n
	})
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	// 7 messages at 2 per window need at least 4 windows: the last ack
	// comes at least 3 windows after the first. (The margins allow for
	// the time between a message's release and its ack on a busy machine;
	// without the limit all 7 are acked within milliseconds.)
	if span := acks[n-1].Sub(acks[0]); span < 3*time.Second-500*time.Millisecond {
		t.Errorf("7 acks within %v: the limit of 2 per second was not kept", span)
	}
	// Four acks in a row span at least one window.
	for i := 0; i+3 < n; i++ {
		if acks[i+3].Sub(acks[i]) < time.Second-500*time.Millisecond {
			t.Errorf("acks %d..%d within %v", i, i+3, acks[i+3].Sub(acks[i]))
		}
	}
}
