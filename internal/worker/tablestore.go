package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	ldbiter "github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// tableStorage returns goka's LevelDB storage under the worker's state
// directory, checked against the table's changelog at open: a local copy
// that is ahead of its changelog (the broker's data was wiped or restored
// from an older backup, or the process died between writing the local copy
// and its changelog) is deleted and rebuilt from the changelog, with a log
// line saying so, instead of goka refusing to start or serving stale rows.
func (b *Base) tableStorage() storage.Builder { return b.storageIn(b.Deps.StateDir(b.Name)) }

// viewStorage is tableStorage for views, in a directory of their own (a
// view and a processor of one worker may hold the same table).
func (b *Base) viewStorage() storage.Builder { return b.storageIn(b.Deps.StateDir(b.Name) + "/views") }

func (b *Base) storageIn(dir string) storage.Builder {
	return CheckedTableStorage(dir, b.Client, b.Log)
}

// CheckedTableStorage is TableStorage checked against the table's topic at
// open, as a Base's tables are (see tableStorage): a local copy ahead of
// its topic is deleted and rebuilt from the topic. cl looks the topic's
// end offsets up; log says when a copy is deleted.
func CheckedTableStorage(dir string, cl *kgo.Client, log *slog.Logger) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		path := filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition))
		st, err := openLevelDB(path)
		if err != nil {
			return nil, err
		}
		const none = math.MinInt64
		local, err := st.GetOffset(none)
		if err != nil || local == none || local < 0 {
			return st, nil //nolint:nilerr // unreadable offset: goka reports it itself
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("table %s partition %d: changelog end offset: %w", topic, partition, err)
		}
		end, ok := ends.Lookup(topic, partition)
		if !ok || end.Err != nil {
			return nil, fmt.Errorf("table %s partition %d: changelog end offset unknown: %v", topic, partition, end.Err)
		}
		if local < end.Offset {
			return st, nil
		}
		log.Warn("local copy of a table is ahead of its changelog; deleting it and rebuilding from the changelog",
			"table", topic, "partition", partition, "local_offset", local, "changelog_end", end.Offset, "path", path)
		if err := st.Close(); err != nil {
			return nil, err
		}
		if err := os.RemoveAll(path); err != nil {
			return nil, fmt.Errorf("table %s partition %d: remove stale local copy: %w", topic, partition, err)
		}
		return openLevelDB(path)
	}
}

func openLevelDB(path string) (storage.Storage, error) {
	db, err := leveldb.OpenFile(path, levelDBOptions())
	if err != nil {
		return nil, fmt.Errorf("open table storage %s: %w", path, err)
	}
	return newBatchedStore(db), nil
}

// levelDBOptions: a bloom filter per table file, so that looking up a key
// that is not there (every new message id) does not read a block of each
// level.
func levelDBOptions() *opt.Options {
	return &opt.Options{
		Filter:      filter.NewBloomFilter(10),
		WriteBuffer: 8 << 20,
	}
}

// TableStorage is the goka storage builder for tables kept outside a
// Base (e.g. a transport's own views): LevelDB files under dir, one per
// partition, written in batches (see batchedStore).
func TableStorage(dir string) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		return openLevelDB(filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition)))
	}
}

// flushEvery is how long at most a write to a table's local copy waits in
// memory before it is written to LevelDB; maxPending is how many keys may
// wait (a write beyond that flushes at once).
const (
	flushEvery = 100 * time.Millisecond
	maxPending = 8192
)

// offsetKey is where goka's LevelDB storage keeps the changelog offset a
// local copy has reached; batchedStore uses the same key and encoding, so
// local copies written by either can be read by the other.
const offsetKey = "__offset"

// pendingEntry is a write not yet in LevelDB; del marks a deletion.
type pendingEntry struct {
	value []byte
	del   bool
}

// batchedStore is a goka storage.Storage over LevelDB that keeps writes
// in memory and writes them to LevelDB in one batch at most every
// flushEvery (or when maxPending keys wait, or before an iteration, on
// recovery and on close), together with the changelog offset they reach.
//
// Why: every goka table write used to be its own LevelDB write (a journal
// write and a lock round), and every lookup of a key written a moment
// before went through LevelDB's memtable and levels; in the end-to-end
// benchmark LevelDB was ~18 % of all CPU. A message's status is typically
// written three times within a few milliseconds (sent, ack, delivery
// report): batched, it reaches LevelDB once, and the lookups between the
// writes are answered from memory.
//
// What a crash costs: LevelDB is not the durable copy (the changelog
// topic is). The batch holding the values also holds the offset they
// reach, and is written atomically, so after a crash the stored offset is
// never ahead of the stored values; goka re-applies the changelog from
// the stored offset, which restores the writes of the last flushEvery.
//
// Readers may run concurrently with the one writer goka allows. Values
// returned by Get must not be modified.
type batchedStore struct {
	db *leveldb.DB

	mu        sync.RWMutex
	pending   map[string]pendingEntry
	flushing  map[string]pendingEntry // being written by flush (read-only)
	offset    int64
	offsetSet bool // offset holds the latest SetOffset
	dirty     bool // offset not yet written
	scheduled bool
	err       error // a failed batch write: every later call fails
	closed    bool

	flushMu sync.Mutex // one flush at a time

	// filter answers lookups of keys never written without LevelDB (nil
	// until built); filterLog collects the keys written while a filter is
	// being built (nil otherwise). See keyFilter.
	filter    *keyFilter
	filterLog []string
	building  sync.WaitGroup
}

func newBatchedStore(db *leveldb.DB) *batchedStore {
	s := &batchedStore{db: db, pending: map[string]pendingEntry{}}
	s.building.Add(1)
	go s.buildFilter()
	return s
}

// Open implements storage.Storage.
func (s *batchedStore) Open() error { return nil }

// Has implements storage.Storage.
func (s *batchedStore) Has(key string) (bool, error) {
	v, err := s.Get(key)
	return v != nil, err
}

// Get implements storage.Storage.
func (s *batchedStore) Get(key string) ([]byte, error) {
	s.mu.RLock()
	if s.err != nil {
		defer s.mu.RUnlock()
		return nil, s.err
	}
	if e, ok := s.pending[key]; ok {
		s.mu.RUnlock()
		return e.value, nil
	}
	if e, ok := s.flushing[key]; ok {
		s.mu.RUnlock()
		return e.value, nil
	}
	if s.filter != nil && !s.filter.mayContain(key) {
		s.mu.RUnlock()
		return nil, nil // never written
	}
	s.mu.RUnlock()
	// Not waiting in memory: LevelDB has the latest value (a flush drops
	// its keys from flushing only once they are written).
	v, err := s.db.Get([]byte(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("table storage: get %q: %w", key, err)
	}
	return v, nil
}

// Set implements storage.Storage.
func (s *batchedStore) Set(key string, value []byte) error {
	return s.put(key, pendingEntry{value: append([]byte(nil), value...)})
}

// Delete implements storage.Storage.
func (s *batchedStore) Delete(key string) error { return s.put(key, pendingEntry{del: true}) }

func (s *batchedStore) put(key string, e pendingEntry) error {
	s.mu.Lock()
	if s.err != nil {
		defer s.mu.Unlock()
		return s.err
	}
	s.pending[key] = e
	if !e.del {
		s.noteKeyLocked(key)
	}
	full := len(s.pending) >= maxPending
	s.scheduleLocked()
	s.mu.Unlock()
	if full {
		return s.Flush()
	}
	return nil
}

// scheduleLocked arranges a flush within flushEvery, if none is due.
func (s *batchedStore) scheduleLocked() {
	if s.scheduled || s.closed {
		return
	}
	s.scheduled = true
	time.AfterFunc(flushEvery, func() { _ = s.Flush() })
}

// SetOffset implements storage.Storage.
func (s *batchedStore) SetOffset(offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.offset, s.offsetSet, s.dirty = offset, true, true
	s.scheduleLocked()
	return nil
}

// GetOffset implements storage.Storage.
func (s *batchedStore) GetOffset(def int64) (int64, error) {
	s.mu.RLock()
	if s.offsetSet {
		defer s.mu.RUnlock()
		return s.offset, nil
	}
	s.mu.RUnlock()
	v, err := s.db.Get([]byte(offsetKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return def, nil
	}
	if err != nil {
		return 0, fmt.Errorf("table storage: read offset: %w", err)
	}
	o, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("table storage: stored offset %q: %w", v, err)
	}
	return o, nil
}

// Flush writes what waits in memory, and the offset it reaches, to
// LevelDB in one batch.
func (s *batchedStore) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	s.scheduled = false
	if s.err != nil || (len(s.pending) == 0 && !s.dirty) {
		defer s.mu.Unlock()
		return s.err
	}
	writing := s.pending
	s.flushing, s.pending = writing, make(map[string]pendingEntry, len(writing))
	offset, withOffset := s.offset, s.dirty
	s.dirty = false
	s.mu.Unlock()

	var b leveldb.Batch
	for k, e := range writing {
		if e.del {
			b.Delete([]byte(k))
		} else {
			b.Put([]byte(k), e.value)
		}
	}
	if withOffset {
		b.Put([]byte(offsetKey), strconv.AppendInt(nil, offset, 10))
	}
	err := s.db.Write(&b, nil)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Every later call fails with this error: the processor fails
		// and its local copy is rebuilt from the changelog.
		s.err = fmt.Errorf("table storage: write batch: %w", err)
	}
	s.flushing = nil
	return s.err
}

// MarkRecovered implements storage.Storage.
func (s *batchedStore) MarkRecovered() error { return s.Flush() }

// Iterator implements storage.Storage: what waits in memory is written
// first, so the iteration sees every write.
func (s *batchedStore) Iterator() (storage.Iterator, error) {
	if err := s.Flush(); err != nil {
		return nil, err
	}
	return &skipOffsetIter{s.db.NewIterator(nil, &opt.ReadOptions{DontFillCache: true})}, nil
}

// IteratorWithRange implements storage.Storage (as goka's: a prefix when
// limit is empty).
func (s *batchedStore) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	if err := s.Flush(); err != nil {
		return nil, err
	}
	r := util.BytesPrefix(start)
	if len(limit) > 0 {
		r = &util.Range{Start: start, Limit: limit}
	}
	return &skipOffsetIter{s.db.NewIterator(r, nil)}, nil
}

// Close implements storage.Storage.
func (s *batchedStore) Close() error {
	err := s.Flush()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.building.Wait() // a filter being built gives up
	return errors.Join(err, s.db.Close())
}

// skipOffsetIter hides the offset key from iterations.
type skipOffsetIter struct{ it ldbiter.Iterator }

func (i *skipOffsetIter) Next() bool {
	for i.it.Next() {
		if string(i.it.Key()) != offsetKey {
			return true
		}
	}
	return false
}
func (i *skipOffsetIter) Err() error             { return i.it.Error() }
func (i *skipOffsetIter) Key() []byte            { return i.it.Key() }
func (i *skipOffsetIter) Value() ([]byte, error) { return i.it.Value(), nil }
func (i *skipOffsetIter) Release()               { i.it.Release() }

// Seek as goka's LevelDB iterator does.
func (i *skipOffsetIter) Seek(key []byte) bool { return i.it.Seek(key) }
