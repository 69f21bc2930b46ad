package topology_test

import (
	"strings"
	"testing"

	"github.com/vumi-kafka/vumi/topology"
)

// FuzzLoad feeds arbitrary config files to the loader: an error or a
// config, never a panic.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("workers:\n  - {name: a, kind: fake_app, transport_name: x}\n"))
	f.Add([]byte("cluster: {topics: {a: {partitions: 2, config: {x: y}}}}\nworkers: [{name: w, kind: fake_transport, transport_name: t, middleware: [{m: {class: logging}}], m: {log_level: info}}]\n"))
	f.Add([]byte("workers: [{name: w, kind: fake_transport, transport_name: \"${A:-b}$$\"}]"))
	reg := registry()
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := topology.Load("fuzz.yaml", b, reg, func(string) (string, bool) { return "", false })
		if err == nil {
			_ = topology.BuildGraph(cfg).Validate()
		}
	})
}

// FuzzLoadWorker feeds arbitrary worker configs (JSON from the management
// API) to LoadWorker: an error or a spec, never a panic.
func FuzzLoadWorker(f *testing.F) {
	f.Add("fake_transport", []byte(`{"transport_name": "t"}`))
	f.Add("fake_transport", []byte(`{"transport_name": "t", "middleware": [{"m": "logging"}], "m": {"log_level": "info"}}`))
	f.Add("fake_app", []byte(`{"name": "x"}`))
	f.Add("nope", []byte(`[1, 2]`))
	f.Add("fake_transport", []byte(`null`))
	reg := registry()
	f.Fuzz(func(t *testing.T, kind string, b []byte) {
		spec, err := topology.LoadWorker(reg, "w", kind, b)
		if err == nil && (spec.Name != "w" || spec.Kind == nil || spec.Config == nil) {
			t.Fatalf("spec %+v", spec)
		}
	})
}

// TestLoadWorker: a worker from JSON is validated like one of a file, and
// a management section may stand in for the workers list.
func TestLoadWorker(t *testing.T) {
	reg := registry()
	if _, err := topology.LoadWorker(reg, "w", "fake_transport", []byte(`{"transport_name": "t"}`)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ kind, config, want string }{
		{"fake_transport", `{"transport_nam": "t"}`, "key transport_nam: unknown key"},
		{"fake_transport", `{"kind": "x"}`, "key kind: give it outside config"},
		{"nope", `{}`, `unknown kind "nope"`},
		{"fake_transport", `[1]`, "config must be an object"},
	} {
		_, err := topology.LoadWorker(reg, "w", tc.kind, []byte(tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadWorker(%s, %s) = %v, want %q", tc.kind, tc.config, err, tc.want)
		}
	}
	cfg, err := topology.Load("m.yaml", []byte("management: {addr: '127.0.0.1:0', bearer_token: x}\n"), reg, nil)
	if err != nil || len(cfg.Workers) != 0 || cfg.ControlTopic() != "vumi.control" {
		t.Fatalf("management-only config: %v %+v", err, cfg)
	}
	if g := topology.BuildGraph(cfg); g.Topics["vumi.control"] == nil || !g.Topics["vumi.control"].Compacted || g.Topics["vumi.control"].Partitions != 1 {
		t.Errorf("control topic in the graph: %+v", g.Topics["vumi.control"])
	}
	for _, tc := range []struct{ text, want string }{
		{"management: {addr: ':0'}\n", "management.addr: the management API requires auth"},
		{"management: {addr: ':0', username: u}\n", "management.username: username and password must be given together"},
		{"management: {addr: ':0', bearer_token: x, sample_interval: 1ms}\n", "management.sample_interval"},
		{"management: {adr: ':0'}\n", "key management.adr: unknown key"},
		{"cluster: {}\n", "at least one worker is required"},
	} {
		_, err := topology.Load("m.yaml", []byte(tc.text), reg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q) = %v, want %q", tc.text, err, tc.want)
		}
	}
}
