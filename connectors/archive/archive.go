// Package archive is the archiver: a sink worker that consumes the history
// topics (<name>.inbound, <name>.outbound, <name>.event) of configured
// transport names in the consumer group "<prefix>archive.<worker>" and
// writes them as Parquet files in a Hive-style layout partitioned by kind,
// transport and date (docs/archive.md).
//
// Each file holds the rows of one topic partition and one UTC date. It is
// written to a hidden temporary file, synced, renamed to
// part-<partition>-<first offset>-<last offset>.parquet and its directory
// synced; only then are the partition's offsets committed. The finished
// files are the record of what has been archived: when a partition is
// assigned, the archiver reads the highest offset archived per date from
// the file names and skips records at or below it, so records read again
// after a crash (written but not yet committed) are not archived twice,
// and records not yet in a finished file are read again because their
// offsets were not committed.
package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Kind is the archiver worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name:    "archiver",
		Role:    topology.RoleSink,
		Summary: "archives <name>.inbound/.outbound/.event as Parquet files partitioned by kind, transport and date",
		NewConfig: func() topology.WorkerConfig {
			return &Config{}
		},
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return &Archiver{deps: deps, spec: spec, cfg: spec.Config.(*Config)}, nil
		},
	}
}

// Archiver is the archiver worker.
type Archiver struct {
	deps *topology.Deps
	spec *topology.WorkerSpec
	cfg  *Config

	// Test hooks. hardStop makes a cancelled Run return at once, as a
	// killed process would: open files are left as temporary files and
	// nothing more is committed. afterRename, when set, is called after
	// each file is durable and before the offsets are committed; an error
	// stops Run there, as a crash would.
	hardStop    bool
	afterRename func(path string) error
	now         func() time.Time
	// createFile, when set, opens archive files instead of os.OpenFile
	// (tests inject a full disk with it).
	createFile func(name string) (File, error)

	// degraded is set when archive files could not be written, until a
	// file is written again (kept across the supervisor's restarts).
	degraded atomic.Bool
}

// topicInfo is what a consumed topic is in the archive.
type topicInfo struct {
	kind      string
	transport string
}

type tpKey struct {
	topic     string
	partition int32
}

// partState is the archiver's state for one assigned partition.
type partState struct {
	info     topicInfo
	archived map[string]int64 // date -> highest offset in finished files
	open     map[string]*segment
	last     *kgo.Record // last record handled, not yet committed
}

// state is shared by the poll loop and the rebalance callbacks.
type state struct {
	mu     sync.Mutex
	a      *Archiver
	b      *worker.Base
	log    *slog.Logger
	topics map[string]topicInfo
	parts  map[tpKey]*partState
}

// Run consumes and archives until ctx is cancelled; then it finishes the
// open files and commits their offsets.
func (a *Archiver) Run(ctx context.Context) error {
	if a.now == nil {
		a.now = time.Now
	}
	b, err := worker.NewBase(a.deps, a.spec, a.cfg.Common)
	if err != nil {
		return err
	}
	defer b.Close()
	st := &state{a: a, b: b, log: b.Log, topics: map[string]topicInfo{}, parts: map[tpKey]*partState{}}
	var topics []string
	for _, t := range a.cfg.Transports {
		n := a.deps.Names
		for topic, kind := range map[string]string{n.Inbound(t): KindInbound, n.Outbound(t): KindOutbound, n.Event(t): KindEvent} {
			st.topics[topic] = topicInfo{kind: kind, transport: t}
			topics = append(topics, topic)
		}
	}
	group := a.deps.Names.Prefix + "archive." + a.spec.Name
	cl, err := kgo.NewClient(append(a.deps.KafkaOpts(a.spec.Name+".archive"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.OnPartitionsRevoked(st.revoked),
		kgo.OnPartitionsLost(st.lost),
	)...)
	if err != nil {
		return fmt.Errorf("archiver %s: consumer: %w", a.spec.Name, err)
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go b.RunHeartbeat(hbCtx)
	b.Log.Info("archiver running", "directory", a.cfg.Directory, "transports", a.cfg.Transports, "group", group,
		"roll_bytes", a.cfg.RollBytes, "roll_interval", a.cfg.RollInterval)

	tick := min(a.cfg.RollInterval/4, time.Second)
	for {
		pollCtx, cancel := context.WithTimeout(ctx, tick)
		fetches := cl.PollRecords(pollCtx, a.cfg.PollRecords)
		cancel()
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return st.stop(cl)
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				b.Log.Error("fetch error", "topic", t, "partition", p, "error", err)
			}
		})
		err := st.handle(ctx, cl, fetches.Records())
		cl.AllowRebalance()
		if err != nil {
			if ctx.Err() != nil {
				return st.stop(cl)
			}
			// Nothing unwritten was committed: the open files are
			// dropped and the worker restarts (with the supervisor's
			// backoff) from the last committed offsets, until files can
			// be written again.
			a.writeFailed(ctx, b, err)
			st.closeAbandon()
			cl.Close()
			return fmt.Errorf("archiver %s: %w", a.spec.Name, err)
		}
	}
}

// writeFailed reports the archiver degraded (status event "disk_full" when
// the disk is full, "write_failed" otherwise) once per outage.
func (a *Archiver) writeFailed(ctx context.Context, b *worker.Base, err error) {
	b.Count("write_errors", 1)
	if a.degraded.Swap(true) {
		return
	}
	typ, msg := "write_failed", "Archive files cannot be written; records are not committed and will be archived once they can: "
	if errors.Is(err, syscall.ENOSPC) {
		typ, msg = "disk_full", "The archive's disk is full; records are not committed and will be archived once there is room: "
	}
	_ = b.PublishStatus(context.WithoutCancel(ctx), "", &schemas.Status{
		Component: "archive", Status: schemas.StatusDegraded, Type: typ, Message: msg + err.Error(),
		Details: schemas.Metadata{"directory": a.cfg.Directory},
	})
}

// written reports recovery after a degraded spell, when a file was written.
func (a *Archiver) written(ctx context.Context, b *worker.Base) {
	if !a.degraded.Swap(false) {
		return
	}
	_ = b.PublishStatus(context.WithoutCancel(ctx), "", &schemas.Status{
		Component: "archive", Status: schemas.StatusOK, Type: "write_recovered", Message: "Archive files are written again",
		Details: schemas.Metadata{"directory": a.cfg.Directory},
	})
}

// stop ends Run after ctx was cancelled: a clean stop finishes the open
// files and commits; a hard stop (tests) leaves them as a crash would.
func (s *state) stop(cl *kgo.Client) error {
	if s.a.hardStop {
		s.mu.Lock()
		for _, p := range s.parts {
			for _, seg := range p.open {
				_ = seg.f.Close() // the temporary file stays, as after a kill
			}
		}
		s.parts = map[tpKey]*partState{}
		s.mu.Unlock()
		cl.Close()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.mu.Lock()
	var errs []error
	for k, p := range s.parts {
		if err := s.roll(ctx, cl, k, p); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Unlock()
	cl.Close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("archiver %s: finishing files at stop: %w", s.a.spec.Name, err)
	}
	return nil
}

// closeAbandon drops every open file (after an error).
func (s *state) closeAbandon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.parts {
		for _, seg := range p.open {
			seg.abandon()
		}
	}
	s.parts = map[tpKey]*partState{}
}

// handle archives one poll's records, then rolls the files that are due.
func (s *state) handle(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		if err := s.add(ctx, cl, r); err != nil {
			return err
		}
	}
	now := s.a.now()
	for k, p := range s.parts {
		due := false
		for _, seg := range p.open {
			if seg.bytes >= s.a.cfg.RollBytes || now.Sub(seg.opened) >= s.a.cfg.RollInterval {
				due = true
				break
			}
		}
		// A partition whose records were all skipped or sent to failures
		// has nothing open: commit it straight away.
		if due || (len(p.open) == 0 && p.last != nil) {
			if err := s.roll(ctx, cl, k, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// part returns the state of a record's partition, reading what is already
// archived on first use after an assignment.
func (s *state) part(r *kgo.Record) (*partState, error) {
	k := tpKey{r.Topic, r.Partition}
	if p, ok := s.parts[k]; ok {
		return p, nil
	}
	info, ok := s.topics[r.Topic]
	if !ok {
		return nil, fmt.Errorf("record from unexpected topic %s", r.Topic)
	}
	archived, err := scanArchived(s.a.cfg.Directory, info.kind, info.transport, r.Partition)
	if err != nil {
		return nil, err
	}
	p := &partState{info: info, archived: archived, open: map[string]*segment{}}
	s.parts[k] = p
	return p, nil
}

// add archives one record (or skips it, or sends it to failures).
func (s *state) add(ctx context.Context, cl *kgo.Client, r *kgo.Record) error {
	p, err := s.part(r)
	if err != nil {
		return err
	}
	var (
		ts  time.Time
		msg MessageRow
		ev  EventRow
	)
	// A writer schema not seen before, met while the registry is down,
	// waits for the registry: the partition is held, nothing is skipped.
	dctx := s.b.RegistryWait(ctx)
	decode := func() error {
		if p.info.kind == KindEvent {
			var e schemas.Event
			if err := s.a.deps.Codecs.Event.DecodeContext(dctx, r.Value, &e); err != nil {
				return err
			}
			row, err := eventRow(&e, r.Partition, r.Offset)
			ev, ts = row, row.Timestamp
			return err
		}
		var m schemas.UserMessage
		if err := s.a.deps.Codecs.UserMessage.DecodeContext(dctx, r.Value, &m); err != nil {
			return err
		}
		row, err := messageRow(&m, r.Partition, r.Offset)
		msg, ts = row, row.Timestamp
		return err
	}
	err = decode()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if schemas.IsRegistryUnavailable(err) {
			return err // not the record's fault: left unarchived and uncommitted
		}
		cause := worker.Permanent(fmt.Errorf("archiver: undecodable record: %w", err))
		s.b.Count("undecodable", 1)
		if ferr := s.b.SendFailure(ctx, p.info.transport, s.b.FailureFor(r, nil, "", cause)); ferr != nil {
			return fmt.Errorf("undecodable record %s/%d@%d not sent to failures: %w", r.Topic, r.Partition, r.Offset, ferr)
		}
		p.last = r
		return nil
	}
	date := ts.UTC().Format(DateFormat)
	if max, ok := p.archived[date]; ok && r.Offset <= max {
		s.b.Count("already_archived", 1)
		p.last = r
		return nil
	}
	seg := p.open[date]
	if seg == nil {
		seg, err = openSegment(Dir(s.a.cfg.Directory, p.info.kind, p.info.transport, date), r.Partition, r.Offset, p.info.kind == KindEvent, s.a.cfg, s.a.now(), s.a.createFile)
		if err != nil {
			return err
		}
		p.open[date] = seg
	}
	if p.info.kind == KindEvent {
		err = seg.addEvent(ev, len(r.Value))
	} else {
		err = seg.addMessage(msg, len(r.Value))
	}
	if err != nil {
		return err
	}
	p.last = r
	s.b.Count("archived", 1)
	if seg.bytes >= s.a.cfg.RollBytes {
		return s.roll(ctx, cl, tpKey{r.Topic, r.Partition}, p)
	}
	return nil
}

// roll finishes every open file of a partition, then commits its offsets.
// Must be called with s.mu held.
func (s *state) roll(ctx context.Context, cl *kgo.Client, k tpKey, p *partState) error {
	for date, seg := range p.open {
		path, err := seg.finish()
		delete(p.open, date)
		if err != nil {
			for _, other := range p.open {
				other.abandon()
			}
			p.open = map[string]*segment{}
			return fmt.Errorf("finish %s partition %d date %s: %w", k.topic, k.partition, date, err)
		}
		p.archived[date] = seg.last
		s.b.Count("files_written", 1)
		s.a.written(ctx, s.b)
		s.log.Debug("archive file written", "path", path, "rows_first_offset", seg.first, "rows_last_offset", seg.last, "bytes", seg.bytes)
		if s.a.afterRename != nil {
			if err := s.a.afterRename(path); err != nil {
				return err
			}
		}
	}
	if p.last == nil {
		return nil
	}
	if err := cl.CommitRecords(ctx, p.last); err != nil {
		// The files are durable: records read again are skipped, so a
		// failed commit costs a re-read, never a duplicate.
		s.log.Warn("commit failed; records will be read again and skipped", "topic", k.topic, "partition", k.partition, "error", err)
		return nil
	}
	p.last = nil
	return nil
}

// revoked finishes and commits the revoked partitions' files before
// another instance takes them over.
func (s *state) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range revoked {
		for _, part := range ps {
			k := tpKey{topic, part}
			p, ok := s.parts[k]
			if !ok {
				continue
			}
			if err := s.roll(ctx, cl, k, p); err != nil {
				s.log.Error("files of a revoked partition not finished; its records will be archived by the next owner", "topic", topic, "partition", part, "error", err)
			}
			for _, seg := range p.open {
				seg.abandon()
			}
			delete(s.parts, k)
		}
	}
	s.log.Info("partitions revoked; their files are finished and committed", "partitions", fmt.Sprint(revoked))
}

// lost drops the lost partitions' open files: their offsets were not
// committed, so the next owner archives the records.
func (s *state) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range lost {
		for _, part := range ps {
			k := tpKey{topic, part}
			if p, ok := s.parts[k]; ok {
				for _, seg := range p.open {
					seg.abandon()
				}
				delete(s.parts, k)
			}
		}
	}
}
