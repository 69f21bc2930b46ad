package worker

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
)

func openTestStore(t *testing.T, path string) *batchedStore {
	t.Helper()
	db, err := leveldb.OpenFile(path, levelDBOptions())
	if err != nil {
		t.Fatal(err)
	}
	return newBatchedStore(db)
}

func mustGet(t *testing.T, s *batchedStore, key string) string {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if v == nil {
		return "<nil>"
	}
	return string(v)
}

func TestBatchedStoreReadsItsWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.0")
	s := openTestStore(t, path)
	for i := range 10 {
		if err := s.Set(fmt.Sprintf("k%d", i), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	buf := []byte("first")
	_ = s.Set("k0", buf)
	copy(buf, "XXXXX") // the store keeps its own copy
	_ = s.Delete("k9")
	if got := mustGet(t, s, "k0"); got != "first" {
		t.Errorf("k0 before flush = %s, want first", got)
	}
	if got := mustGet(t, s, "k9"); got != "<nil>" {
		t.Errorf("deleted k9 before flush = %s", got)
	}
	if ok, _ := s.Has("k3"); !ok {
		t.Error("Has(k3) = false before flush")
	}
	// Nothing is in LevelDB yet.
	if _, err := s.db.Get([]byte("k3"), nil); err != leveldb.ErrNotFound {
		t.Errorf("k3 in LevelDB before the flush: %v", err)
	}
	if err := s.SetOffset(41); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "k3"); got != "v3" {
		t.Errorf("k3 after flush = %s", got)
	}
	if got := mustGet(t, s, "k9"); got != "<nil>" {
		t.Errorf("deleted k9 after flush = %s", got)
	}
	// The iteration sees every key except the offset, including writes not
	// yet flushed.
	_ = s.Set("k99", []byte("late"))
	it, err := s.Iterator()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for it.Next() {
		keys = append(keys, string(it.Key()))
	}
	it.Release()
	if want := "[k0 k1 k2 k3 k4 k5 k6 k7 k8 k99]"; fmt.Sprint(keys) != want {
		t.Errorf("iteration = %v, want %s", keys, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, path)
	defer s.Close()
	if o, err := s.GetOffset(-1); err != nil || o != 41 {
		t.Errorf("offset after reopen = %d, %v; want 41", o, err)
	}
	if got := mustGet(t, s, "k0"); got != "first" {
		t.Errorf("k0 after reopen = %s", got)
	}
	if got := mustGet(t, s, "k99"); got != "late" {
		t.Errorf("k99 after reopen = %s", got)
	}
}

// A crash before the flush loses the values and the offset together: the
// stored offset is never ahead of the stored values, so goka re-applies
// the changelog from the older offset.
func TestBatchedStoreCrashKeepsOffsetBehindValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.0")
	s := openTestStore(t, path)
	_ = s.Set("a", []byte("1"))
	_ = s.SetOffset(10)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = s.Set("a", []byte("2"))
	_ = s.Set("b", []byte("3"))
	_ = s.SetOffset(12)
	if o, _ := s.GetOffset(-1); o != 12 {
		t.Errorf("in-memory offset = %d, want 12", o)
	}
	// Crash: LevelDB closed without the pending batch.
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, path)
	defer s.Close()
	if o, _ := s.GetOffset(-1); o != 10 {
		t.Errorf("offset after crash = %d, want 10", o)
	}
	if got := mustGet(t, s, "a"); got != "1" {
		t.Errorf("a after crash = %s, want 1", got)
	}
	if got := mustGet(t, s, "b"); got != "<nil>" {
		t.Errorf("b after crash = %s, want none", got)
	}
}

// Readers run beside the one writer, across flushes (go test -race).
func TestBatchedStoreConcurrentReaders(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "t.0"))
	defer s.Close()
	const n = 5 * maxPending / 2 // several size-triggered flushes
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad sync.Map
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("key-%d", (i*7+r)%n)
				v, err := s.Get(k)
				if err != nil {
					bad.Store(k, err.Error())
				} else if v != nil && string(v) != "v-"+k {
					bad.Store(k, string(v))
				}
			}
		}()
	}
	for i := range n {
		k := fmt.Sprintf("key-%d", i)
		if err := s.Set(k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
		_ = s.SetOffset(int64(i))
	}
	close(stop)
	wg.Wait()
	bad.Range(func(k, v any) bool {
		t.Errorf("reader saw %v = %v", k, v)
		return true
	})
	for i := range n {
		k := fmt.Sprintf("key-%d", i)
		if got := mustGet(t, s, k); got != "v-"+k {
			t.Fatalf("%s = %s", k, got)
		}
	}
	if o, _ := s.GetOffset(-1); o != n-1 {
		t.Errorf("offset = %d, want %d", o, n-1)
	}
}
