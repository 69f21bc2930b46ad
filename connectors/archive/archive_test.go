package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/internal/testcluster"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// env is an embedded broker and registry, a producer and an archive dir.
type env struct {
	t      *testing.T
	b      *broker.Broker
	codecs *schemas.Codecs
	cl     *kgo.Client
	dir    string
	state  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	tc := testcluster.Start(t)
	b, codecs := tc.B, tc.Codecs
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ProducerLinger(0), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	var topics []string
	for _, n := range []string{"sms", "ussd"} {
		topics = append(topics, n+".inbound", n+".outbound", n+".event", n+".failures")
	}
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 2, 1, nil, topics...); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, b: b, codecs: codecs, cl: cl, dir: filepath.Join(t.TempDir(), "archive"), state: tc.State}
}

// hooks configure the archiver instances a test runs.
type hooks struct {
	hardStop    bool
	afterRename func(a *Archiver, path string) error
	createFile  func(name string) (File, error)
}

// run starts the archiver with extra config lines; the returned stop
// cancels it and waits for it to return.
func (e *env) run(extra string, h hooks) (stop func() error) {
	t := e.t
	t.Helper()
	k := Kind()
	build := k.Build
	k.Build = func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
		w, err := build(deps, spec)
		if err != nil {
			return nil, err
		}
		a := w.(*Archiver)
		a.hardStop = h.hardStop
		a.createFile = h.createFile
		if h.afterRename != nil {
			a.afterRename = func(path string) error { return h.afterRename(a, path) }
		}
		return a, nil
	}
	kinds := topology.NewRegistry().Add(k)
	text := fmt.Sprintf(`cluster:
  kafka: {brokers: [%s]}
  schema_registry: {url: %s}
  partitions: 2
  state_dir: %s
  topics:
    sms.inbound: {external: true}
    sms.outbound: {external: true}
    sms.event: {external: true}
    ussd.inbound: {external: true}
    ussd.outbound: {external: true}
    ussd.event: {external: true}
workers:
  - name: archive
    kind: archiver
    directory: %s
    transports: [sms, ussd]
    heartbeat_interval: -1s
%s`, e.b.KafkaAddr(), e.b.RegistryURL(), e.state, e.dir, extra)
	cfg, err := topology.Load("archive-test.yaml", []byte(text), kinds, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- topology.Run(ctx, cfg, kinds, topology.RunOptions{Logger: testlog.New(t), Ready: func([]string, string) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("archiver failed to start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("archiver not ready within 60s")
	}
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(30 * time.Second):
				result = errors.New("archiver did not stop within 30s")
			}
		})
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func (e *env) register(topics ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, topic := range topics {
		var err error
		if strings.HasSuffix(topic, ".event") {
			err = e.codecs.Event.Register(ctx, topic)
		} else {
			err = e.codecs.UserMessage.Register(ctx, topic)
		}
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) produceMessage(topic string, m *schemas.UserMessage) {
	e.t.Helper()
	v, err := e.codecs.UserMessage.Encode(m)
	if err != nil {
		e.t.Fatal(err)
	}
	e.produce(topic, topology.UserMessageKey(topic, m), v)
}

func (e *env) produceEvent(topic string, ev *schemas.Event) {
	e.t.Helper()
	v, err := e.codecs.Event.Encode(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	e.produce(topic, topology.EventKey(ev), v)
}

func (e *env) produce(topic string, key, value []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: key, Value: value}).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// archived is what the archive directory holds.
type archived struct {
	files    []string // relative paths of finished files
	temps    []string
	messages map[string][]MessageRow // "kind/transport/date" -> rows
	events   map[string][]EventRow
}

func (a *archived) messageCount() int {
	n := 0
	for _, rs := range a.messages {
		n += len(rs)
	}
	return n
}

func (a *archived) eventCount() int {
	n := 0
	for _, rs := range a.events {
		n += len(rs)
	}
	return n
}

var fileRE = regexp.MustCompile(`^kind=(inbound|outbound|event)/transport=([a-z]+)/date=(\d{4}-\d{2}-\d{2})/part-(\d+)-(\d+)-(\d+)\.parquet$`)

// read reads every file of the archive back with parquet-go, checking the
// layout: the path's date is every row's date, the name's offsets are the
// first and last rows' offsets, the partition is every row's partition.
func (e *env) read() *archived {
	t := e.t
	t.Helper()
	a := &archived{messages: map[string][]MessageRow{}, events: map[string][]EventRow{}}
	err := filepath.WalkDir(e.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == e.dir {
				return fs.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(e.dir, path)
		rel = filepath.ToSlash(rel)
		if strings.HasSuffix(rel, ".tmp") {
			a.temps = append(a.temps, rel)
			return nil
		}
		m := fileRE.FindStringSubmatch(rel)
		if m == nil {
			t.Errorf("unexpected file in archive: %s", rel)
			return nil
		}
		a.files = append(a.files, rel)
		kind, date := m[1], m[3]
		group := kind + "/" + m[2] + "/" + date
		var parts []int32
		var offsets []int64
		var dates []string
		if kind == KindEvent {
			rows, err := parquet.ReadFile[EventRow](path)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			a.events[group] = append(a.events[group], rows...)
			for _, r := range rows {
				parts, offsets, dates = append(parts, r.KafkaPartition), append(offsets, r.KafkaOffset), append(dates, r.Timestamp.UTC().Format(DateFormat))
			}
		} else {
			rows, err := parquet.ReadFile[MessageRow](path)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			a.messages[group] = append(a.messages[group], rows...)
			for _, r := range rows {
				parts, offsets, dates = append(parts, r.KafkaPartition), append(offsets, r.KafkaOffset), append(dates, r.Timestamp.UTC().Format(DateFormat))
			}
		}
		if len(offsets) == 0 {
			t.Errorf("%s: empty file", rel)
			return nil
		}
		if want := fmt.Sprintf("part-%d-%d-%d.parquet", parts[0], offsets[0], offsets[len(offsets)-1]); filepath.Base(rel) != want {
			t.Errorf("%s: name does not match its rows, want %s", rel, want)
		}
		for i := range offsets {
			if fmt.Sprint(parts[i]) != m[4] || dates[i] != date || (i > 0 && offsets[i] <= offsets[i-1]) {
				t.Errorf("%s: row %d (partition %d offset %d date %s) does not belong here", rel, i, parts[i], offsets[i], dates[i])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(a.files)
	return a
}

// waitFor reads the archive until ok says so or 30 s have passed.
func (e *env) waitFor(what string, ok func(*archived) bool) *archived {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := e.read()
		if ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; archive has %d files, %d messages, %d events", what, len(a.files), a.messageCount(), a.eventCount())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sms(id string, ts time.Time, from string) *schemas.UserMessage {
	return &schemas.UserMessage{
		MessageID: id, Timestamp: ts, FromAddr: schemas.String(from), ToAddr: schemas.String("1234"),
		Content: schemas.String("hello " + id), TransportName: schemas.String("sms"), TransportType: schemas.String("sms"),
		HelperMetadata: schemas.Metadata{"batch_id": "b1"},
	}
}

// TestArchiveLayoutAndRows: messages and events of two transports and two
// dates land in the right kind/transport/date directories with every
// field in its typed column, and a clean stop leaves no temporary file.
func TestArchiveLayoutAndRows(t *testing.T) {
	e := newEnv(t)
	e.register("sms.inbound", "sms.outbound", "sms.event", "ussd.inbound")
	day1 := time.Date(2026, 11, 21, 23, 59, 59, 123456000, time.UTC)
	day2 := time.Date(2026, 11, 22, 0, 0, 1, 0, time.UTC)
	e.produceMessage("sms.inbound", sms("in1", day1, "+27820000001"))
	e.produceMessage("sms.inbound", sms("in2", day2, "+27820000002"))
	out := sms("out1", day2, "1234")
	out.ToAddr, out.FromAddr, out.InReplyTo = schemas.String("+27820000001"), schemas.String("1234"), schemas.String("in1")
	e.produceMessage("sms.outbound", out)
	close := schemas.SessionClose
	ussd := &schemas.UserMessage{MessageID: "u1", Timestamp: day2, FromAddr: schemas.String("+27820000003"), ToAddr: schemas.String("*120#"),
		SessionEvent: &close, TransportName: schemas.String("ussd"), TransportType: schemas.String("ussd"),
		RoutingMetadata: schemas.Metadata{"endpoint_name": "menu"}}
	e.produceMessage("ussd.inbound", ussd)
	delivered := schemas.DeliveryDelivered
	e.produceEvent("sms.event", &schemas.Event{EventID: "e1", EventType: schemas.EventAck, UserMessageID: "out1", Timestamp: day2, SentMessageID: schemas.String("smsc-1"), TransportName: schemas.String("sms")})
	e.produceEvent("sms.event", &schemas.Event{EventID: "e2", EventType: schemas.EventDeliveryReport, UserMessageID: "out1", Timestamp: day2.Add(time.Second), DeliveryStatus: &delivered, TransportName: schemas.String("sms")})
	// Not a record of any schema: goes to sms.failures, not the archive.
	e.produce("sms.inbound", []byte("k"), []byte("not avro"))

	stop := e.run("    roll_interval: 100ms\n", hooks{})
	e.waitFor("4 messages and 2 events", func(a *archived) bool { return a.messageCount() == 4 && a.eventCount() == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	a := e.read()
	if len(a.temps) != 0 {
		t.Errorf("temporary files left after a clean stop: %v", a.temps)
	}
	want := map[string][]string{
		"inbound/sms/2026-11-21":  {"in1"},
		"inbound/sms/2026-11-22":  {"in2"},
		"outbound/sms/2026-11-22": {"out1"},
		"inbound/ussd/2026-11-22": {"u1"},
	}
	for group, ids := range want {
		var got []string
		for _, r := range a.messages[group] {
			got = append(got, r.MessageID)
		}
		if fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Errorf("%s: got %v, want %v", group, got, ids)
		}
	}
	r := a.messages["inbound/sms/2026-11-21"][0]
	if !r.Timestamp.Equal(day1) || *r.FromAddr != "+27820000001" || *r.ToAddr != "1234" || *r.Content != "hello in1" ||
		*r.TransportType != "sms" || r.Endpoint != "default" || r.HelperMetadata != `{"batch_id":"b1"}` || r.RoutingMetadata != "{}" || r.SessionEvent != nil {
		t.Errorf("inbound row: %+v", r)
	}
	if o := a.messages["outbound/sms/2026-11-22"][0]; o.InReplyTo == nil || *o.InReplyTo != "in1" {
		t.Errorf("outbound row in_reply_to: %+v", o)
	}
	if u := a.messages["inbound/ussd/2026-11-22"][0]; u.SessionEvent == nil || *u.SessionEvent != "close" || u.Endpoint != "menu" || u.Content != nil {
		t.Errorf("ussd row: %+v", u)
	}
	evs := a.events["event/sms/2026-11-22"]
	sort.Slice(evs, func(i, j int) bool { return evs[i].EventID < evs[j].EventID })
	if len(evs) != 2 || evs[0].EventType != "ack" || *evs[0].SentMessageID != "smsc-1" || evs[0].DeliveryStatus != nil ||
		evs[1].EventType != "delivery_report" || *evs[1].DeliveryStatus != "delivered" || evs[1].UserMessageID != "out1" {
		t.Errorf("event rows: %+v", evs)
	}
	// The undecodable record went to sms.failures.
	fc, err := kgo.NewClient(kgo.SeedBrokers(e.b.KafkaAddr()), kgo.ConsumeTopics("sms.failures"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs := fc.PollFetches(ctx)
	if fs.NumRecords() != 1 {
		t.Fatalf("sms.failures: want 1 record, got %d (%v)", fs.NumRecords(), fs.Errors())
	}
	var f schemas.Failure
	if err := e.codecs.Failure.Decode(fs.Records()[0].Value, &f); err != nil {
		t.Fatal(err)
	}
	if string(f.Raw) != "not avro" || f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent {
		t.Errorf("failure: %+v", f)
	}
}

// TestArchiveCrashExactlyOnce kills the archiver twice while messages keep
// arriving — once by cancelling it without finishing its files, once right
// after a file was renamed into place but before its offsets were
// committed — and restarts it each time: every message is in the archive
// exactly once.
func TestArchiveCrashExactlyOnce(t *testing.T) {
	e := newEnv(t)
	e.register("sms.inbound", "sms.event")
	const n = 600
	base := time.Date(2026, 11, 21, 23, 59, 0, 0, time.UTC)
	var produced atomic.Int64
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for i := range n {
			// Timestamps cross midnight so that partitions write two dates.
			m := sms(fmt.Sprintf("m%04d", i), base.Add(time.Duration(i)*200*time.Millisecond), fmt.Sprintf("+2782%07d", i%17))
			v, err := e.codecs.UserMessage.Encode(m)
			if err != nil {
				t.Error(err)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = e.cl.ProduceSync(ctx, &kgo.Record{Topic: "sms.inbound", Key: topology.InboundKey(m), Value: v}).FirstErr()
			cancel()
			if err != nil {
				t.Error(err)
				return
			}
			produced.Add(1)
			if i%50 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	cfg := "    roll_bytes: 4000\n    roll_interval: 150ms\n"

	// 1: hard kill with files open.
	stop := e.run(cfg, hooks{hardStop: true})
	// Killed while files are open: their temporary files stay behind.
	e.waitFor("finished and open files", func(a *archived) bool { return len(a.files) >= 3 && len(a.temps) > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// 2: crash after a file is durable, before the commit: Run fails and
	// the deployment's supervisor restarts the worker, which must skip
	// the records of that file when it reads them again. It restarts with
	// another roll_bytes, so that the files it writes again have other
	// boundaries than the ones already there: only the skip of what is
	// archived keeps the rows from being archived twice.
	var renamed atomic.Int64
	stop = e.run(cfg, hooks{hardStop: true, afterRename: func(a *Archiver, _ string) error {
		if renamed.Add(1) == 3 {
			a.cfg.RollBytes = 7000
			return errors.New("simulated crash after rename")
		}
		return nil
	}})
	deadline := time.Now().Add(30 * time.Second)
	for renamed.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if renamed.Load() < 6 {
		t.Fatalf("the second archiver wrote %d files, want a crash at the 3rd and more after its restart", renamed.Load())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// 3: run to the end and stop cleanly.
	stop = e.run(cfg, hooks{})
	<-prodDone
	if produced.Load() != n {
		t.Fatalf("produced %d of %d", produced.Load(), n)
	}
	a := e.waitFor("every message", func(a *archived) bool { return a.messageCount() >= n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	a = e.read()
	seen := map[string]int{}
	for _, rows := range a.messages {
		for _, r := range rows {
			seen[r.MessageID]++
		}
	}
	for i := range n {
		id := fmt.Sprintf("m%04d", i)
		if seen[id] != 1 {
			t.Errorf("message %s archived %d times", id, seen[id])
		}
	}
	if len(seen) != n || a.messageCount() != n {
		t.Errorf("archive has %d rows of %d distinct messages, want %d", a.messageCount(), len(seen), n)
	}
	if len(a.messages["inbound/sms/2026-11-21"]) == 0 || len(a.messages["inbound/sms/2026-11-22"]) == 0 {
		t.Errorf("expected rows on both dates, got groups %v", keys(a.messages))
	}
	if len(a.temps) != 0 {
		t.Errorf("temporary files left: %v", a.temps)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestArchiveRollBySize: with roll_bytes at five records' size, records
// already waiting are written five to a file.
func TestArchiveRollBySize(t *testing.T) {
	e := newEnv(t)
	e.register("sms.inbound")
	ts := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	var size int
	for i := range 23 {
		m := sms(fmt.Sprintf("s%04d", i), ts, "+27820000001") // one key: one partition
		v, err := e.codecs.UserMessage.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		size = len(v)
		e.produce("sms.inbound", topology.InboundKey(m), v)
	}
	stop := e.run(fmt.Sprintf("    roll_bytes: %d\n    roll_interval: 1h\n", 5*size), hooks{})
	a := e.waitFor("4 full files", func(a *archived) bool { return len(a.files) >= 4 })
	if len(a.files) != 4 || a.messageCount() != 20 {
		t.Errorf("before stop: %d files, %d rows; want 4 files of 5 rows: %v", len(a.files), a.messageCount(), a.files)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	a = e.read()
	if len(a.files) != 5 || a.messageCount() != 23 {
		t.Fatalf("after stop: %d files, %d rows; want 5 files, 23 rows: %v", len(a.files), a.messageCount(), a.files)
	}
	for i, f := range a.files {
		m := fileRE.FindStringSubmatch(f)
		var first, last int
		fmt.Sscan(m[5], &first)
		fmt.Sscan(m[6], &last)
		if n := last - first + 1; n != 5 && !(n == 3 && first == 20) {
			t.Errorf("file %d %s: %d rows", i, f, n)
		}
	}
}

// TestArchiveRollByTime: a file is closed roll_interval after its first
// record even though no more records come, while the archiver runs.
func TestArchiveRollByTime(t *testing.T) {
	e := newEnv(t)
	e.register("sms.inbound")
	stop := e.run("    roll_interval: 300ms\n", hooks{})
	ts := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	for i := range 3 {
		e.produceMessage("sms.inbound", sms(fmt.Sprintf("t%d", i), ts, "+27820000001"))
	}
	a := e.waitFor("a file with 3 rows", func(a *archived) bool { return a.messageCount() == 3 })
	if len(a.files) != 1 {
		t.Errorf("want 1 file, got %v", a.files)
	}
	for i := 3; i < 5; i++ {
		e.produceMessage("sms.inbound", sms(fmt.Sprintf("t%d", i), ts, "+27820000001"))
	}
	a = e.waitFor("a second file", func(a *archived) bool { return a.messageCount() == 5 })
	if len(a.files) != 2 {
		t.Errorf("want 2 files, got %v", a.files)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Transports: []string{"sms"}}, "key directory"},
		{Config{Directory: "a"}, "key transports"},
		{Config{Directory: "a", Transports: []string{"../x"}}, "key transports[0]"},
		{Config{Directory: "a", Transports: []string{"sms", "sms"}}, "key transports[1]"},
		{Config{Directory: "a", Transports: []string{"sms"}, RollBytes: -1}, "key roll_bytes"},
		{Config{Directory: "a", Transports: []string{"sms"}, RollInterval: time.Millisecond}, "key roll_interval"},
		{Config{Directory: "a", Transports: []string{"sms"}, RowGroupRows: -1}, "key row_group_rows"},
		{Config{Directory: "a", Transports: []string{"sms"}, PollRecords: -1}, "key poll_records"},
		{Config{Directory: "a", Transports: []string{"sms"}, Compression: "lzo"}, "key compression"},
		{Config{Directory: "a", Transports: []string{"sms"}}, ""},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.cfg, err)
			}
			if tc.cfg.RollBytes != DefaultRollBytes || tc.cfg.RollInterval != DefaultRollInterval || tc.cfg.Compression != CompressionZstd {
				t.Errorf("defaults not filled: %+v", tc.cfg)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error starting %q", tc.cfg, err, tc.want)
		}
	}
}

func TestParseFileName(t *testing.T) {
	for _, tc := range []struct {
		name        string
		p           int32
		first, last int64
		ok          bool
	}{
		{"part-1-10-20.parquet", 1, 10, 20, true},
		{FileName(3, 0, 0), 3, 0, 0, true},
		{"part-1-20-10.parquet", 0, 0, 0, false},
		{"part-1-10.parquet", 0, 0, 0, false},
		{".part-1-10.parquet.tmp", 0, 0, 0, false},
		{"part-a-1-2.parquet", 0, 0, 0, false},
		{"part-01-1-2.parquet", 0, 0, 0, false},
		{"part-+1-1-2.parquet", 0, 0, 0, false},
	} {
		p, f, l, ok := parseFileName(tc.name)
		if ok != tc.ok || (ok && (p != tc.p || f != tc.first || l != tc.last)) {
			t.Errorf("%s: got %d %d %d %v", tc.name, p, f, l, ok)
		}
	}
}

// TestArchiveRebalance: a second instance joins the group while messages
// flow (partitions move from the first instance, which finishes and commits
// their files first), then the first leaves: every message is archived
// exactly once.
func TestArchiveRebalance(t *testing.T) {
	e := newEnv(t)
	e.register("sms.inbound")
	const n = 400
	ts := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			e.produceMessage("sms.inbound", sms(fmt.Sprintf("r%04d", i), ts, fmt.Sprintf("+2782%07d", i%23)))
		}
	}
	cfg := "    roll_bytes: 3000\n    roll_interval: 200ms\n"
	stopA := e.run(cfg, hooks{})
	produce(0, 150)
	e.waitFor("the first messages", func(a *archived) bool { return a.messageCount() > 0 })
	stopB := e.run(cfg, hooks{})
	produce(150, 300)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	produce(300, n)
	e.waitFor("every message", func(a *archived) bool { return a.messageCount() >= n })
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	a := e.read()
	seen := map[string]int{}
	for _, rows := range a.messages {
		for _, r := range rows {
			seen[r.MessageID]++
		}
	}
	for i := range n {
		if id := fmt.Sprintf("r%04d", i); seen[id] != 1 {
			t.Errorf("message %s archived %d times", id, seen[id])
		}
	}
	if a.messageCount() != n || len(a.temps) != 0 {
		t.Errorf("archive has %d rows (want %d) and temporary files %v", a.messageCount(), n, a.temps)
	}
}

// TestConfigLoad: the archiver's section of a config file is decoded
// strictly; mistakes fail at load with the key in the message.
func TestConfigLoad(t *testing.T) {
	for _, tc := range []struct{ worker, want string }{
		{"    directory: /tmp/a\n    transports: [sms]\n    rol_bytes: 5\n", "rol_bytes"},
		{"    directory: /tmp/a\n    transports: [sms]\n    roll_interval: soon\n", "roll_interval"},
		{"    transports: [sms]\n", "key directory"},
		{"    directory: /tmp/a\n    transports: [sms]\n    roll_bytes: 1000\n    roll_interval: 1s\n", ""},
	} {
		text := "cluster:\n  topics:\n    sms.inbound: {external: true}\n    sms.outbound: {external: true}\n    sms.event: {external: true}\n" +
			"workers:\n  - name: archive\n    kind: archiver\n" + tc.worker
		cfg, err := topology.Load("archive.yaml", []byte(text), topology.NewRegistry().Add(Kind()), nil)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.worker, err)
				continue
			}
			c := cfg.Workers[0].Config.(*Config)
			if c.RollBytes != 1000 || c.RollInterval != time.Second || c.PollRecords != DefaultPollRecords {
				t.Errorf("loaded %+v", c)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error naming %s", tc.worker, err, tc.want)
		}
	}
}
