package transport

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func rec(p int32, off int64) *kgo.Record {
	return &kgo.Record{Topic: "t.outbound", Partition: p, Offset: off, LeaderEpoch: 3}
}

// committed returns the offset ready to commit for partition p, -1 for none.
func committed(tr *tracker, p int32) int64 {
	off, ok := tr.ready()["t.outbound"][p]
	if !ok {
		return -1
	}
	if off.Epoch != 3 {
		panic("epoch lost")
	}
	return off.Offset
}

// TestTrackerCommitsHandledPrefix: a partition's offset moves past a
// record only once it and every record before it were handled; records
// that fail are never passed; partitions are independent; a partition
// read again from an older offset (after it was lost) keeps its order.
func TestTrackerCommitsHandledPrefix(t *testing.T) {
	tr := newTracker()
	rs := map[int64]*kgo.Record{}
	for off := int64(10); off <= 14; off++ {
		rs[off] = rec(0, off)
		tr.start(rs[off])
	}
	other := rec(1, 7)
	tr.start(other)

	steps := []struct {
		done int64
		want int64 // offset to commit after it, -1: nothing new
	}{
		{11, -1}, // 10 still in flight
		{12, -1},
		{10, 13}, // 10, 11, 12 handled: commit past 12
		{14, -1}, // 13 still in flight
		{13, 15},
	}
	for _, s := range steps {
		tr.done(rs[s.done])
		tr.finish(rs[s.done])
		if got := committed(tr, 0); got != s.want {
			t.Fatalf("after %d done: commit %d, want %d", s.done, got, s.want)
		}
	}
	// The other partition: a failed record (finished, never done) holds
	// its offset.
	tr.finish(other)
	if got := committed(tr, 1); got != -1 {
		t.Fatalf("a failed record was committed past: %d", got)
	}
	tr.waitIdle() // nothing in flight: returns

	// Partition 0 read again from 13 after a loss, while 16 and 17 were
	// in flight: the list stays in offset order, 13 and 14 once more.
	tr.start(rec(0, 16))
	tr.start(rec(0, 17))
	tr.start(rec(0, 15))
	tr.done(rec(0, 17))
	if got := committed(tr, 0); got != -1 {
		t.Fatalf("committed %d with 15 and 16 in flight", got)
	}
	tr.done(rec(0, 15))
	if got := committed(tr, 0); got != 16 {
		t.Fatalf("commit %d, want 16", got)
	}
	tr.done(rec(0, 16))
	if got := committed(tr, 0); got != 18 {
		t.Fatalf("commit %d, want 18", got)
	}
}
