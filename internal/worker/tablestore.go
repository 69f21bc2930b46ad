package worker

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/twmb/franz-go/pkg/kadm"
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
		ends, err := kadm.NewClient(b.Client).ListEndOffsets(ctx, topic)
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
		b.Log.Warn("local copy of a table is ahead of its changelog; deleting it and rebuilding from the changelog",
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
	db, err := leveldb.OpenFile(path, nil)
	if err != nil {
		return nil, fmt.Errorf("open table storage %s: %w", path, err)
	}
	return storage.New(db)
}
