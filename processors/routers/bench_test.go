package routers

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/vumi-kafka/vumi/schemas"
)

// BenchmarkRoutingMemoryLookup measures an event's routing-memory lookup
// as the dispatcher does it in production: goka's storage over LevelDB
// (as internal/worker's table storage), holding 1,000,000 remembered
// message ids, read at random and decoded. Reports lookups/s.
func BenchmarkRoutingMemoryLookup(b *testing.B) {
	const n = 1_000_000
	db, err := leveldb.OpenFile(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	st, err := storage.New(db)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ids := make([]string, n)
	expires := time.Now().Add(DefaultExpireRoutingMemory).UnixMicro()
	batch := new(leveldb.Batch)
	for i := range ids {
		ids[i] = schemas.GenerateID()
		v, err := json.Marshal(&entry{Route: fmt.Sprintf("app%d", i%8), RouteExpires: expires})
		if err != nil {
			b.Fatal(err)
		}
		batch.Put([]byte(ids[i]), v)
		if batch.Len() == 10_000 {
			if err := db.Write(batch, nil); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
	if err := db.Write(batch, nil); err != nil {
		b.Fatal(err)
	}
	// Steady state: the bulk load's level-0 files compacted, as LevelDB
	// does in the background on a long-running table.
	if err := db.CompactRange(util.Range{}); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	lookups := 0
	for b.Loop() {
		v, err := st.Get(ids[rng.IntN(n)])
		if err != nil || v == nil {
			b.Fatalf("lookup: %v (value %q)", err, v)
		}
		var e entry
		if err := json.Unmarshal(v, &e); err != nil || e.Route == "" {
			b.Fatalf("decode: %v", err)
		}
		lookups++
	}
	b.ReportMetric(float64(lookups)/time.Since(start).Seconds(), "lookups/s")
}
