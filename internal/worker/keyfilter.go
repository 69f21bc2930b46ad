package worker

import (
	"hash/maphash"
	"math/bits"

	"github.com/syndtr/goleveldb/leveldb/opt"
)

// keyFilter is a Bloom filter of the keys a local copy may hold: a lookup
// of a key it has never seen (a new message id, checked for a duplicate
// before it is processed) is answered without LevelDB, whose search of
// its memtable and tables for a missing key cost as much as for a present
// one (~3 % of the end-to-end benchmark's CPU).
//
// It has no false negatives: every key written since it was built is
// added (put), and the keys already in LevelDB are added when it is built
// (buildFilter). Deleted keys stay in it (a false positive costs one
// LevelDB lookup). Once more keys were added than it was sized for, a
// filter twice the size is built from LevelDB in the background while
// this one goes on answering.
type keyFilter struct {
	seed     maphash.Seed
	bits     []uint64
	m        uint64 // number of bits
	added    int
	capacity int
}

// filterBitsPerKey and filterHashes give ~1 % false positives at capacity.
const (
	filterBitsPerKey = 10
	filterHashes     = 7
	// minFilterCapacity is the smallest filter (160 KiB).
	minFilterCapacity = 1 << 17
)

func newKeyFilter(seed maphash.Seed, capacity int) *keyFilter {
	capacity = max(capacity, minFilterCapacity)
	m := uint64(capacity) * filterBitsPerKey
	return &keyFilter{seed: seed, bits: make([]uint64, (m+63)/64), m: m, capacity: capacity}
}

// positions derives the filter's bit positions from one 64-bit hash
// (double hashing).
func positions(h uint64) (h1, h2 uint64) { return h, h>>32 | h<<32 | 1 }

// index maps a hash to a bit, without a division.
func (f *keyFilter) index(h uint64) uint64 {
	hi, _ := bits.Mul64(h, f.m)
	return hi
}

func (f *keyFilter) add(key string) { f.addHash(maphash.String(f.seed, key)) }

func (f *keyFilter) addHash(h uint64) {
	h1, h2 := positions(h)
	for i := range uint64(filterHashes) {
		b := f.index(h1 + i*h2)
		f.bits[b/64] |= 1 << (b % 64)
	}
	f.added++
}

// mayContain is false only for a key never added.
func (f *keyFilter) mayContain(key string) bool {
	h1, h2 := positions(maphash.String(f.seed, key))
	for i := range uint64(filterHashes) {
		b := f.index(h1 + i*h2)
		if f.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

func (f *keyFilter) full() bool { return f.added > f.capacity }

// buildFilter builds a filter of every key in LevelDB and of the keys
// written meanwhile, and installs it. It runs in the background: first
// when the store opens (until then every lookup goes to LevelDB), then
// whenever the filter in use is full. It gives up when the store closes.
func (s *batchedStore) buildFilter() {
	defer s.building.Done()
	seed := maphash.MakeSeed()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	// Writes from now on are also logged for the new filter; the ones
	// not yet in LevelDB are in pending and flushing.
	s.filterLog = []string{}
	var hashes []uint64
	for k := range s.pending {
		hashes = append(hashes, maphash.String(seed, k))
	}
	for k := range s.flushing {
		hashes = append(hashes, maphash.String(seed, k))
	}
	want := 0
	if s.filter != nil {
		want = 2 * s.filter.capacity
	}
	s.mu.Unlock()

	it := s.db.NewIterator(nil, &opt.ReadOptions{DontFillCache: true})
	for n := 0; it.Next(); n++ {
		if n%4096 == 0 && s.isClosed() {
			it.Release()
			return
		}
		hashes = append(hashes, maphash.Bytes(seed, it.Key()))
	}
	err := it.Error()
	it.Release()
	if err != nil {
		s.mu.Lock()
		s.filterLog = nil // lookups keep using LevelDB (or the old filter)
		s.mu.Unlock()
		return
	}
	f := newKeyFilter(seed, max(want, 2*len(hashes)))
	for _, h := range hashes {
		f.addHash(h)
	}
	s.mu.Lock()
	for _, k := range s.filterLog {
		f.add(k)
	}
	s.filterLog = nil
	if !s.closed {
		s.filter = f
	}
	s.mu.Unlock()
}

func (s *batchedStore) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// noteKeyLocked adds a written key to the filter (and to the log of the
// one being built); when the filter is full, a bigger one is built.
func (s *batchedStore) noteKeyLocked(key string) {
	if s.filterLog != nil {
		s.filterLog = append(s.filterLog, key)
	}
	if s.filter == nil {
		return
	}
	s.filter.add(key)
	if s.filter.full() && s.filterLog == nil && !s.closed {
		s.filterLog = []string{}
		s.building.Add(1)
		go s.buildFilter()
	}
}
