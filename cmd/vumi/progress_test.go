package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, "copying", false)
	p.update(0, 4)
	p.update(2, 4) // within 5s of the first line: not drawn off a terminal
	p.finish()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// The first line at once, the final state at the end.
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "copying [>") || !strings.Contains(lines[0], " 0/4   0%") ||
		!strings.HasPrefix(lines[1], "copying [===============>") || !strings.Contains(lines[1], " 2/4  50%") {
		t.Errorf("progress lines %q", lines)
	}
	b.Reset()
	q := newProgress(&b, "x", true)
	q.update(1, 1)
	q.finish()
	if b.Len() != 0 {
		t.Errorf("quiet progress wrote %q", b.String())
	}
	s := newProgress(&b, "scanning", false)
	s.onlySlow = true
	s.update(0, 10)
	s.update(10, 10)
	s.finish()
	if b.Len() != 0 {
		t.Errorf("fast work off a terminal wrote %q", b.String())
	}
}
