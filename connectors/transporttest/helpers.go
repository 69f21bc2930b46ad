package transporttest

import (
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/topology"
)

// WantConfigErrors loads each case's workers YAML (case[0], the list
// under "workers:") with kinds and checks that it fails with an error
// containing case[1].
func WantConfigErrors(t testing.TB, kinds *topology.Registry, cases [][2]string) {
	t.Helper()
	for _, c := range cases {
		_, err := topology.Load("t.yaml", []byte("workers:\n"+c[0]+"\n"), kinds, nil)
		if err == nil || !strings.Contains(err.Error(), c[1]) {
			t.Errorf("%q: error %v, want %q", c[0], err, c[1])
		}
	}
}

// Worker is a workers YAML list item named w of kind with fields (YAML
// lines, "key: value\n...").
func Worker(kind, fields string) string {
	return "  - name: w\n    kind: " + kind + "\n    " + strings.ReplaceAll(strings.TrimSuffix(fields, "\n"), "\n", "\n    ")
}

// waitMatch waits for an item of *list matching match.
func waitMatch[T any](e *Env, within time.Duration, what string, list *[]T, match func(T) bool) T {
	e.t.Helper()
	var found T
	e.wait(within, what, func() bool {
		for _, v := range *list {
			if match(v) {
				found = v
				return true
			}
		}
		return false
	})
	return found
}
