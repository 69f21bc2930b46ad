package archive

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
)

// fullDisk makes archive files fail as on a full disk (ENOSPC from write
// and fsync) while full is set.
type fullDisk struct{ full atomic.Bool }

type fullDiskFile struct {
	*os.File
	d *fullDisk
}

func (d *fullDisk) create(name string) (File, error) {
	f, err := createFile(name)
	if err != nil {
		return nil, err
	}
	return &fullDiskFile{File: f.(*os.File), d: d}, nil
}

func (f *fullDiskFile) Write(p []byte) (int, error) {
	if f.d.full.Load() {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func (f *fullDiskFile) Sync() error {
	if f.d.full.Load() {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Sync()
}

// TestArchiveDiskFull: the archive's disk fills up mid-stream. The
// archiver commits no offset of a record that is not in a finished file,
// reports itself degraded (status disk_full), and once there is room again
// archives everything, each record once, and reports that it recovered.
func TestArchiveDiskFull(t *testing.T) {
	e := newEnv(t)
	e.register("sms.inbound")
	disk := &fullDisk{}
	e.run("    roll_bytes: 4000\n    roll_interval: 150ms\n    publish_status: true\n", hooks{createFile: disk.create})
	ts := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			e.produceMessage("sms.inbound", sms(fmt.Sprintf("d%04d", i), ts, fmt.Sprintf("+2782%07d", i%17)))
		}
	}
	send(0, 100)
	e.waitFor("the first 100 messages", func(a *archived) bool { return a.messageCount() >= 100 })

	statuses := e.statusReader()
	disk.full.Store(true)
	send(100, 300)
	st := statuses.next(t, func(s *schemas.Status) bool { return s.Status == schemas.StatusDegraded })
	if st.Type != "disk_full" || st.Component != "archive" {
		t.Errorf("degraded status %+v, want component archive, type disk_full", st)
	}
	// While the disk is full: nothing is committed beyond what is in a
	// finished file (each partition's committed offset is one past its
	// last archived record), and no file is finished.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		a := e.read()
		if committed := e.committed("sms.inbound"); committed > int64(a.messageCount()) {
			t.Fatalf("%d records committed, only %d archived", committed, a.messageCount())
		}
		if a.messageCount() > 100 {
			t.Fatalf("%d messages archived while the disk was full", a.messageCount())
		}
		time.Sleep(100 * time.Millisecond)
	}

	disk.full.Store(false)
	st = statuses.next(t, func(s *schemas.Status) bool { return s.Status == schemas.StatusOK && s.Type == "write_recovered" })
	a := e.waitFor("every message after the disk has room", func(a *archived) bool { return a.messageCount() >= 300 })
	seen := map[string]int{}
	for _, rows := range a.messages {
		for _, r := range rows {
			seen[r.MessageID]++
		}
	}
	for i := range 300 {
		if id := fmt.Sprintf("d%04d", i); seen[id] != 1 {
			t.Errorf("message %s archived %d times", id, seen[id])
		}
	}
	if len(a.temps) != 0 {
		t.Errorf("temporary files left: %v", a.temps)
	}
	if c := e.committed("sms.inbound"); c > 300 {
		t.Errorf("%d offsets committed for 300 records", c)
	}
}

// committed is the sum of the archiver group's committed offsets on topic.
func (e *env) committed(topic string) int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(e.cl).FetchOffsets(ctx, "archive.archive")
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At > 0 {
			n += o.At
		}
	})
	return n
}

// statusReader follows vumi.status from its start.
type statusReader struct {
	e  *env
	cl *kgo.Client
}

func (e *env) statusReader() *statusReader {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.b.KafkaAddr()), kgo.ConsumeTopics("vumi.status"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return &statusReader{e: e, cl: cl}
}

// next returns the next status that ok accepts, within 60 s.
func (r *statusReader) next(t *testing.T, ok func(*schemas.Status) bool) *schemas.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		var found *schemas.Status
		r.cl.PollRecords(ctx, 1).EachRecord(func(rec *kgo.Record) {
			var s schemas.Status
			if err := r.e.codecs.Status.DecodeContext(ctx, rec.Value, &s); err != nil {
				t.Errorf("vumi.status@%d: %v", rec.Offset, err)
				return
			}
			if ok(&s) {
				found = &s
			}
		})
		if found != nil {
			return found
		}
		if ctx.Err() != nil {
			t.Fatal("no such status within 60s")
		}
	}
}
