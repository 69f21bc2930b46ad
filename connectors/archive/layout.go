package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Archive kinds: the kind=<...> directory of a topic.
const (
	KindInbound  = "inbound"
	KindOutbound = "outbound"
	KindEvent    = "event"
)

// DateFormat is the format of the date=<...> directory (UTC).
const DateFormat = "2006-01-02"

// Dir is the directory of one kind, transport and date.
func Dir(root, kind, transport, date string) string {
	return filepath.Join(root, "kind="+kind, "transport="+transport, "date="+date)
}

// FileName is the name of a finished file: the partition and the offsets
// of its first and last rows, so that the name of a file is fixed by its
// content.
func FileName(partition int32, first, last int64) string {
	return fmt.Sprintf("part-%d-%d-%d.parquet", partition, first, last)
}

func tempName(partition int32, first int64) string {
	return fmt.Sprintf(".part-%d-%d.parquet.tmp", partition, first)
}

// parseFileName reads the partition and offsets of a finished file's name;
// names not written by FileName are not archive files.
func parseFileName(name string) (partition int32, first, last int64, ok bool) {
	rest, found := strings.CutPrefix(name, "part-")
	if !found {
		return 0, 0, 0, false
	}
	rest, found = strings.CutSuffix(rest, ".parquet")
	if !found {
		return 0, 0, 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 {
		return 0, 0, 0, false
	}
	p, err1 := strconv.ParseInt(parts[0], 10, 32)
	f, err2 := strconv.ParseInt(parts[1], 10, 64)
	l, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || f > l || f < 0 || p < 0 {
		return 0, 0, 0, false
	}
	// Only the names the archiver writes (no sign, no leading zeros).
	if FileName(int32(p), f, l) != name {
		return 0, 0, 0, false
	}
	return int32(p), f, l, true
}

// scanArchived returns, per date, the highest offset of partition already
// in finished files of one kind and transport, and removes the temporary
// files a crash left behind for that partition. Only the owner of a
// partition writes its files, so the removal cannot race a writer.
func scanArchived(root, kind, transport string, partition int32) (map[string]int64, error) {
	base := filepath.Join(root, "kind="+kind, "transport="+transport)
	out := map[string]int64{}
	dates, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan archive: %w", err)
	}
	tmpPrefix := fmt.Sprintf(".part-%d-", partition)
	for _, d := range dates {
		date, ok := strings.CutPrefix(d.Name(), "date=")
		if !ok || !d.IsDir() {
			continue
		}
		dir := filepath.Join(base, d.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("scan archive: %w", err)
		}
		for _, f := range files {
			name := f.Name()
			if strings.HasPrefix(name, tmpPrefix) && strings.HasSuffix(name, ".tmp") {
				if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("remove leftover temporary file: %w", err)
				}
				continue
			}
			p, _, last, ok := parseFileName(name)
			if !ok || p != partition {
				continue
			}
			if cur, seen := out[date]; !seen || last > cur {
				out[date] = last
			}
		}
	}
	return out, nil
}

// compressionOption maps the config's compression to a writer option.
func compressionOption(name string) parquet.WriterOption {
	switch name {
	case CompressionSnappy:
		return parquet.Compression(&parquet.Snappy)
	case CompressionGzip:
		return parquet.Compression(&parquet.Gzip)
	case CompressionNone:
		return parquet.Compression(&parquet.Uncompressed)
	default:
		return parquet.Compression(&parquet.Zstd)
	}
}

// segment is one file being written: the rows of one topic partition and
// one date, streamed into a hidden temporary file in the date directory
// and renamed to its final name when rolled.
type segment struct {
	dir        string
	newDirs    []string // directories created for this file, deepest first
	partition  int32
	first      int64
	last       int64
	bytes      int64
	opened     time.Time
	groupRows  int
	maxGroup   int
	f          File
	msgs       *parquet.GenericWriter[MessageRow]
	events     *parquet.GenericWriter[EventRow]
	pendingMsg []MessageRow
	pendingEv  []EventRow
}

// File is what an archive file is written through: an *os.File, or in
// tests a wrapper that fails as a full disk does.
type File interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

func createFile(name string) (File, error) {
	return os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
}

func openSegment(dir string, partition int32, first int64, event bool, cfg *Config, now time.Time, create func(string) (File, error)) (*segment, error) {
	created, err := mkdirAll(dir)
	if err != nil {
		return nil, fmt.Errorf("create archive directory: %w", err)
	}
	if create == nil {
		create = createFile
	}
	f, err := create(filepath.Join(dir, tempName(partition, first)))
	if err != nil {
		return nil, fmt.Errorf("create archive file: %w", err)
	}
	s := &segment{dir: dir, newDirs: created, partition: partition, first: first, last: first - 1, opened: now, maxGroup: cfg.RowGroupRows, f: f}
	opts := []parquet.WriterOption{compressionOption(cfg.Compression), parquet.CreatedBy("vumi archiver", "", "")}
	if event {
		s.events = parquet.NewGenericWriter[EventRow](f, opts...)
	} else {
		s.msgs = parquet.NewGenericWriter[MessageRow](f, opts...)
	}
	return s, nil
}

// mkdirAll creates dir and returns the directories it created, deepest
// first, so that their parents can be synced once a file is in them.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return missing, nil
}

const pendingBatch = 256

func (s *segment) addMessage(r MessageRow, size int) error {
	s.pendingMsg = append(s.pendingMsg, r)
	s.note(r.KafkaOffset, size)
	if len(s.pendingMsg) >= pendingBatch {
		return s.drain()
	}
	return nil
}

func (s *segment) addEvent(r EventRow, size int) error {
	s.pendingEv = append(s.pendingEv, r)
	s.note(r.KafkaOffset, size)
	if len(s.pendingEv) >= pendingBatch {
		return s.drain()
	}
	return nil
}

func (s *segment) note(offset int64, size int) {
	s.last = offset
	s.bytes += int64(size)
}

// drain hands the pending rows to the Parquet writer, cutting a row group
// every row_group_rows rows.
func (s *segment) drain() error {
	for len(s.pendingMsg) > 0 || len(s.pendingEv) > 0 {
		room := s.maxGroup - s.groupRows
		var n int
		var err error
		if s.msgs != nil {
			n = min(room, len(s.pendingMsg))
			_, err = s.msgs.Write(s.pendingMsg[:n])
			s.pendingMsg = s.pendingMsg[n:]
		} else {
			n = min(room, len(s.pendingEv))
			_, err = s.events.Write(s.pendingEv[:n])
			s.pendingEv = s.pendingEv[n:]
		}
		if err != nil {
			return fmt.Errorf("write parquet rows: %w", err)
		}
		s.groupRows += n
		if s.groupRows >= s.maxGroup {
			if s.msgs != nil {
				err = s.msgs.Flush()
			} else {
				err = s.events.Flush()
			}
			if err != nil {
				return fmt.Errorf("write parquet row group: %w", err)
			}
			s.groupRows = 0
		}
	}
	s.pendingMsg, s.pendingEv = s.pendingMsg[:0], s.pendingEv[:0]
	return nil
}

// finish makes the file durable under its final name: the Parquet footer
// is written, the file synced, renamed, and its directory synced (and the
// parents of any directory created for it). It returns the final path.
func (s *segment) finish() (string, error) {
	if err := s.drain(); err != nil {
		s.abandon()
		return "", err
	}
	var err error
	if s.msgs != nil {
		err = s.msgs.Close()
	} else {
		err = s.events.Close()
	}
	if err != nil {
		s.abandon()
		return "", fmt.Errorf("close parquet writer: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		s.abandon()
		return "", fmt.Errorf("sync archive file: %w", err)
	}
	tmp := s.f.Name()
	if err := s.f.Close(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("close archive file: %w", err)
	}
	final := filepath.Join(s.dir, FileName(s.partition, s.first, s.last))
	if err := os.Rename(tmp, final); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("rename archive file: %w", err)
	}
	dirs := append([]string{s.dir}, parents(s.newDirs)...)
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return "", fmt.Errorf("sync archive directory: %w", err)
		}
	}
	return final, nil
}

// parents returns the parent of each created directory, once.
func parents(created []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range created {
		p := filepath.Dir(d)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// abandon closes and removes the temporary file.
func (s *segment) abandon() {
	name := s.f.Name()
	_ = s.f.Close()
	_ = os.Remove(name)
}
