package topology_test

import (
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
