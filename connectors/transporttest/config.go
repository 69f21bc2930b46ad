package transporttest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/vumi-kafka/vumi/topology"
)

// LoadWorker loads a config of one worker whose settings are fields: the
// inside of a YAML flow mapping, e.g. "name: a, kind: x, web_path: /x".
func LoadWorker(kinds *topology.Registry, fields string) (*topology.Config, error) {
	return topology.Load("c.yaml", []byte("workers:\n  - {"+fields+"}\n"), kinds, nil)
}

// ValidConfig loads the one-worker config fields (see LoadWorker) and
// fails the test unless it is valid.
func ValidConfig(t testing.TB, kinds *topology.Registry, fields string) *topology.Config {
	t.Helper()
	cfg, err := LoadWorker(kinds, fields)
	if err != nil {
		t.Fatalf("valid config: %v", err)
	}
	return cfg
}

// ConfigErrors loads each case's one-worker config (see LoadWorker) and
// fails the test unless loading fails with an error naming "key <case
// name>"; a case name may go on with more of the expected message, e.g.
// "twisted_endpoint: give either".
func ConfigErrors(t testing.TB, kinds *topology.Registry, cases map[string]string) {
	t.Helper()
	list := make([][2]string, 0, len(cases))
	for key, fields := range cases {
		list = append(list, [2]string{"  - {" + fields + "}", "key " + key})
	}
	WantConfigErrors(t, kinds, list)
}

// Instances is the workers YAML of n instances of one worker: worker
// repeated for i from 0 to n-1 with every "{i}" replaced by i, e.g.
// "name: foo{i}" and "web_port: ${PORT{i}}".
func Instances(n int, worker string) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.ReplaceAll(worker, "{i}", strconv.Itoa(i)))
	}
	return b.String()
}

// StartInstances is StartMulti of n Instances of worker.
func StartInstances(t testing.TB, kinds *topology.Registry, transportName string, n int, worker string) *Env {
	t.Helper()
	return StartMulti(t, kinds, transportName, Instances(n, worker), n)
}
