//go:build cgo

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryCommand: the command's errors and outputs on an (empty)
// archive; the views over real archives are tested in internal/e2e.
func TestQueryCommand(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	cases := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"missing dir", "", []string{"query", "-dir", missing, "SELECT 1"}, 1, "", "vumi query: archive directory not found: " + missing},
		{"bad SQL", "", []string{"query", "-dir", dir, "SELEC", "1"}, 1, "", "vumi query: SQL error: Parser Error: syntax error at or near \"SELEC\""},
		{"unknown table", "", []string{"query", "-dir", dir, "SELECT * FROM nope"}, 1, "", "Table with name nope does not exist"},
		{"no SQL", "", []string{"query", "-dir", dir}, 2, "", "no SQL given"},
		{"bad format", "", []string{"query", "-dir", dir, "-format", "xml", "SELECT 1"}, 2, "", `format "xml" is not one of table, csv, json, jsonl`},
		{"csv", "", []string{"query", "-dir", dir, "-format", "csv", "SELECT 1 AS a, 'x' AS b"}, 0, "a,b\n1,x\n", ""},
		{"stdin and flags after", "SELECT count(*) AS n FROM conversations", []string{"query", "-", "-dir", dir, "-format", "jsonl"}, 0, "{\"n\":0}\n", ""},
		{"views", "", []string{"query", "-dir", dir, "-views", "-format", "csv"}, 0, "view,summary,columns\nmessages,", ""},
		{"config without archiver", "", []string{"query", "-c", "../../deploy/local/vumi.yaml", "SELECT 1"}, 1, "", "no archiver worker"},
		{"export needs account", "", []string{"export", "-dir", dir}, 2, "", "-account is required"},
		{"export bad date", "", []string{"export", "-dir", dir, "-account", "a", "-from", "22/11/2026"}, 2, "", `-from: "22/11/2026" is not a date (YYYY-MM-DD)`},
		{"export bad range", "", []string{"export", "-dir", dir, "-account", "a", "-from", "2026-11-22", "-to", "2026-11-01"}, 1, "", "the range ends (2026-11-01) before it starts (2026-11-22)"},
		{"export empty", "", []string{"export", "-dir", dir, "-account", "a"}, 0, "message_id,", ""},
		{"accounts bad action", "", []string{"accounts", "frobnicate"}, 2, "", `unknown action "frobnicate"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runVumi(t, c.stdin, c.args...)
			if code != c.code || !strings.HasPrefix(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
				t.Errorf("vumi %s: exit %d, stdout %q, stderr %q; want exit %d, stdout starting %q, stderr containing %q",
					strings.Join(c.args, " "), code, stdout, stderr, c.code, c.stdout, c.stderr)
			}
		})
	}
	// -o writes the file only when complete; the count goes to stderr.
	out := filepath.Join(dir, "out.json")
	code, _, stderr := runVumi(t, "", "export", "-dir", dir, "-account", "a", "-format", "json", "-o", out)
	if code != 0 || !strings.Contains(stderr, "0 messages of account a written to "+out) {
		t.Fatalf("export -o: %d %s", code, stderr)
	}
	if b, err := os.ReadFile(out); err != nil || len(b) != 0 {
		t.Errorf("export file: %q %v", b, err)
	}
}
