package worker

import (
	"fmt"
	"hash/maphash"
	"path/filepath"
	"testing"
)

func TestKeyFilterNoFalseNegatives(t *testing.T) {
	f := newKeyFilter(maphash.MakeSeed(), 0)
	n := f.capacity
	for i := range n {
		f.add(fmt.Sprintf("msg-%d", i))
	}
	for i := range n {
		if !f.mayContain(fmt.Sprintf("msg-%d", i)) {
			t.Fatalf("msg-%d added but not found", i)
		}
	}
	fp := 0
	for i := range 100000 {
		if f.mayContain(fmt.Sprintf("other-%d", i)) {
			fp++
		}
	}
	if fp > 3000 {
		t.Errorf("%d false positives in 100,000 lookups at capacity, want ~1 %%", fp)
	}
	if f.full() {
		t.Error("full at capacity")
	}
	f.add("one more")
	if !f.full() {
		t.Error("not full past capacity")
	}
}

// A reopened store builds its filter from LevelDB and from the writes made
// while it is built; then keys never written are answered without
// LevelDB, and every key written is still found.
func TestBatchedStoreFilter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.0")
	s := openTestStore(t, path)
	for i := range 1000 {
		_ = s.Set(fmt.Sprintf("old-%d", i), []byte("v"))
	}
	_ = s.Delete("old-7")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, path)
	defer s.Close()
	// Written while the filter may be being built.
	for i := range 1000 {
		_ = s.Set(fmt.Sprintf("new-%d", i), []byte("w"))
	}
	s.building.Wait()
	if s.filter == nil {
		t.Fatal("no filter after the build")
	}
	for i := range 1000 {
		if i != 7 {
			if got := mustGet(t, s, fmt.Sprintf("old-%d", i)); got != "v" {
				t.Fatalf("old-%d = %s after reopening", i, got)
			}
		}
		if got := mustGet(t, s, fmt.Sprintf("new-%d", i)); got != "w" {
			t.Fatalf("new-%d = %s", i, got)
		}
	}
	if got := mustGet(t, s, "old-7"); got != "<nil>" {
		t.Errorf("deleted key = %s", got)
	}
	if s.filter.mayContain("never-written") {
		t.Log("false positive for never-written (allowed, ~1 %)")
	}
	if got := mustGet(t, s, "never-written"); got != "<nil>" {
		t.Errorf("never-written = %s", got)
	}
	skipped := 0
	for i := range 1000 {
		if !s.filter.mayContain(fmt.Sprintf("absent-%d", i)) {
			skipped++
		}
	}
	if skipped < 950 {
		t.Errorf("the filter rules out only %d of 1,000 absent keys", skipped)
	}

	// Past its capacity a filter twice the size is built, with every key.
	c := s.filter.capacity
	for i := range c {
		if err := s.Set(fmt.Sprintf("more-%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	s.building.Wait()
	if s.filter.capacity < 2*c {
		t.Fatalf("filter capacity %d after %d more keys, want >= %d", s.filter.capacity, c, 2*c)
	}
	for _, k := range []string{"old-0", "new-999", "more-0", fmt.Sprintf("more-%d", c-1)} {
		if got := mustGet(t, s, k); got == "<nil>" {
			t.Errorf("%s lost after the filter grew", k)
		}
	}
}
