package messagestore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/processors/tagpool"
	"github.com/vumi-kafka/vumi/schemas"
)

// Source is what a consumed topic holds.
type Source int

// Sources.
const (
	SourceInbound Source = iota + 1
	SourceOutbound
	SourceEvent
	SourceBatches
	SourceTagpool
)

// Record is one consumed record.
type Record struct {
	Source    Source
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
}

// Batch is a message batch (Vumi's Batch): messages whose tag is one of
// the batch's tags while the batch is open, or whose
// helper_metadata.batch_id names it, belong to it.
type Batch struct {
	ID        string         `json:"batch_id"`
	Tags      []tagpool.Tag  `json:"tags"`
	Metadata  map[string]any `json:"metadata"`
	CreatedAt time.Time      `json:"created_at"`
	DoneAt    *time.Time     `json:"done_at"`
}

// contains reports whether the batch was open for tag at t.
func (b *Batch) openAt(t time.Time) bool {
	return !t.Before(b.CreatedAt) && (b.DoneAt == nil || t.Before(*b.DoneAt))
}

// Direction of a stored user message.
const (
	DirInbound  = "inbound"
	DirOutbound = "outbound"
)

// StoredMessage is a user message as the store holds it.
type StoredMessage struct {
	Direction string   `json:"direction"`
	Micros    int64    `json:"ts"`
	Batches   []string `json:"batches"`
	Raw       []byte   `json:"raw"` // the record as consumed (Confluent Avro)
}

type storedEvent struct {
	Message string `json:"msg"`
	Micros  int64  `json:"ts"`
	Raw     []byte `json:"raw"`
}

// DeliveryStatus is the latest status of an outbound message.
type DeliveryStatus struct {
	// Status is acked, nacked, delivered, failed or pending.
	Status    string    `json:"status"`
	EventID   string    `json:"event_id"`
	Timestamp time.Time `json:"timestamp"`
}

type statusRecord struct {
	Status  string `json:"s"`
	EventID string `json:"e"`
	Micros  int64  `json:"ts"`
}

// Index is the message store's materialised state in a local LevelDB:
// messages and events by id, per-batch indexes ordered by time, per-batch
// counts, the latest status of each outbound message, batches, tag pools,
// and the offsets consumed, all written in one transaction per poll so
// that a restart resumes exactly where the last commit ended.
type Index struct {
	db     *leveldb.DB
	codecs *schemas.Codecs

	mu      sync.RWMutex
	batches map[string]*Batch
	byTag   map[tagpool.Tag][]*Batch
}

// Key prefixes.
const (
	pOffset  = "off/"
	pMsg     = "msg/"
	pEvent   = "ev/"
	pMsgEv   = "mev/"
	pStatus  = "st/"
	pBatch   = "batch/"
	pBIdx    = "bidx/"
	pCount   = "bcnt/"
	pPool    = "pool/"
	idxIn    = "i"
	idxOut   = "o"
	idxEvent = "e"
)

// OpenIndex opens (or creates) the index in dir.
func OpenIndex(dir string, codecs *schemas.Codecs) (*Index, error) {
	db, err := leveldb.OpenFile(dir, nil)
	if err != nil {
		return nil, fmt.Errorf("open message store index %s: %w", dir, err)
	}
	ix := &Index{db: db, codecs: codecs, batches: map[string]*Batch{}, byTag: map[tagpool.Tag][]*Batch{}}
	it := db.NewIterator(util.BytesPrefix([]byte(pBatch)), nil)
	defer it.Release()
	for it.Next() {
		var b Batch
		if err := json.Unmarshal(it.Value(), &b); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("message store index %s: batch %s: %w", dir, it.Key(), err)
		}
		ix.setBatch(&b)
	}
	return ix, nil
}

// Close closes the index.
func (ix *Index) Close() error { return ix.db.Close() }

func (ix *Index) setBatch(b *Batch) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if old, ok := ix.batches[b.ID]; ok {
		for _, t := range old.Tags {
			l := ix.byTag[t]
			for i, x := range l {
				if x == old {
					ix.byTag[t] = append(l[:i:i], l[i+1:]...)
					break
				}
			}
		}
	}
	ix.batches[b.ID] = b
	for _, t := range b.Tags {
		l := append(ix.byTag[t], b)
		sort.SliceStable(l, func(i, j int) bool { return l[i].CreatedAt.Before(l[j].CreatedAt) })
		ix.byTag[t] = l
	}
}

// Offsets returns the next offset to consume of every partition seen.
func (ix *Index) Offsets() (map[string]map[int32]int64, error) {
	out := map[string]map[int32]int64{}
	it := ix.db.NewIterator(util.BytesPrefix([]byte(pOffset)), nil)
	defer it.Release()
	for it.Next() {
		rest := strings.TrimPrefix(string(it.Key()), pOffset)
		i := strings.LastIndexByte(rest, '/')
		if i < 0 || len(it.Value()) != 8 {
			continue
		}
		var p int32
		if _, err := fmt.Sscan(rest[i+1:], &p); err != nil {
			continue
		}
		if out[rest[:i]] == nil {
			out[rest[:i]] = map[int32]int64{}
		}
		out[rest[:i]][p] = int64(binary.BigEndian.Uint64(it.Value()))
	}
	return out, it.Error()
}

// txn is one poll's transaction with JSON helpers.
type txn struct {
	tr  *leveldb.Transaction
	ctx context.Context
	// counts cached for the transaction, written at commit
	counts map[string]map[string]int64
}

func (t *txn) get(key string, v any) (bool, error) {
	b, err := t.tr.Get([]byte(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, v)
}

func (t *txn) has(key string) (bool, error) { return t.tr.Has([]byte(key), nil) }

func (t *txn) put(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.tr.Put([]byte(key), b, nil)
}

func (t *txn) mark(key string) error { return t.tr.Put([]byte(key), nil, nil) }

func (t *txn) count(batch string) (map[string]int64, error) {
	if c, ok := t.counts[batch]; ok {
		return c, nil
	}
	c := map[string]int64{}
	if _, err := t.get(pCount+batch, &c); err != nil {
		return nil, err
	}
	t.counts[batch] = c
	return c, nil
}

func (t *txn) add(batch string, deltas ...any) error {
	c, err := t.count(batch)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(deltas); i += 2 {
		c[deltas[i].(string)] += int64(deltas[i+1].(int))
	}
	return nil
}

// Apply indexes the records of one poll in one transaction and returns the
// results of the tag-pool commands among them. Records that cannot be
// decoded are counted in skipped and otherwise ignored (they are on the
// topic for anyone to inspect; the store must not stop on them).
func (ix *Index) Apply(ctx context.Context, recs []Record) (results map[string]tagpool.Result, skipped int, err error) {
	tr, err := ix.db.OpenTransaction()
	if err != nil {
		return nil, 0, fmt.Errorf("message store: open transaction: %w", err)
	}
	t := &txn{tr: tr, ctx: ctx, counts: map[string]map[string]int64{}}
	results = map[string]tagpool.Result{}
	for i := range recs {
		r := &recs[i]
		ok, err := ix.apply(t, r, results)
		if err != nil {
			tr.Discard()
			return nil, 0, fmt.Errorf("message store: %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		if !ok {
			skipped++
		}
		var off [8]byte
		binary.BigEndian.PutUint64(off[:], uint64(r.Offset+1))
		if err := tr.Put([]byte(fmt.Sprintf("%s%s/%d", pOffset, r.Topic, r.Partition)), off[:], nil); err != nil {
			tr.Discard()
			return nil, 0, err
		}
	}
	for b, c := range t.counts {
		if err := t.put(pCount+b, c); err != nil {
			tr.Discard()
			return nil, 0, err
		}
	}
	if err := tr.Commit(); err != nil {
		return nil, 0, fmt.Errorf("message store: commit: %w", err)
	}
	return results, skipped, nil
}

func (ix *Index) apply(t *txn, r *Record, results map[string]tagpool.Result) (bool, error) {
	switch r.Source {
	case SourceInbound, SourceOutbound:
		var m schemas.UserMessage
		if err := ix.codecs.UserMessage.DecodeContext(t.ctx, r.Value, &m); err != nil {
			if schemas.IsRegistryUnavailable(err) {
				return false, err // not the record's fault: the batch is not applied
			}
			return false, nil //nolint:nilerr // undecodable: skipped
		}
		dir := DirInbound
		if r.Source == SourceOutbound {
			dir = DirOutbound
		}
		return true, ix.addMessage(t, dir, &m, r.Value)
	case SourceEvent:
		var e schemas.Event
		err := ix.codecs.Event.DecodeContext(t.ctx, r.Value, &e)
		if schemas.IsRegistryUnavailable(err) {
			return false, err
		}
		if err != nil || e.EventID == "" || e.UserMessageID == "" {
			return false, nil //nolint:nilerr // undecodable: skipped
		}
		return true, ix.addEvent(t, &e, r.Value)
	case SourceBatches:
		if r.Value == nil {
			return true, nil
		}
		var b Batch
		if err := json.Unmarshal(r.Value, &b); err != nil || b.ID == "" {
			return false, nil //nolint:nilerr // undecodable: skipped
		}
		if err := t.put(pBatch+b.ID, &b); err != nil {
			return false, err
		}
		ix.setBatch(&b)
		_, err := t.count(b.ID)
		return true, err
	case SourceTagpool:
		var c tagpool.Command
		if err := json.Unmarshal(r.Value, &c); err != nil {
			return false, nil //nolint:nilerr // undecodable: skipped
		}
		var p *tagpool.Pool
		var stored tagpool.Pool
		found, err := t.get(pPool+c.Pool, &stored)
		if err != nil {
			return false, err
		}
		if found {
			p = &stored
		}
		p, res := tagpool.Apply(p, &c)
		if p == nil {
			err = t.tr.Delete([]byte(pPool+c.Pool), nil)
		} else {
			err = t.put(pPool+c.Pool, p)
		}
		if c.ID != "" {
			results[c.ID] = res
		}
		return true, err
	}
	return false, nil
}

func tsKey(micros int64) string { return fmt.Sprintf("%016x", uint64(max(micros, 0))) }

// batchesOf returns the batches a message belongs to: the one named by
// helper_metadata.batch_id, and the one open for its tag at its timestamp
// (the latest created when several are).
func (ix *Index) batchesOf(m *schemas.UserMessage) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []string
	if id, ok := m.HelperMetadata["batch_id"].(string); ok {
		if _, known := ix.batches[id]; known {
			out = append(out, id)
		}
	}
	if tag, ok := middleware.TagOf(m.HelperMetadata); ok {
		l := ix.byTag[tagpool.Tag{Pool: tag.Pool, Name: tag.Name}]
		for i := len(l) - 1; i >= 0; i-- {
			if l[i].openAt(m.Timestamp) {
				if len(out) == 0 || out[0] != l[i].ID {
					out = append(out, l[i].ID)
				}
				break
			}
		}
	}
	return out
}

func (ix *Index) addMessage(t *txn, dir string, m *schemas.UserMessage, raw []byte) error {
	if m.MessageID == "" {
		return nil
	}
	if seen, err := t.has(pMsg + m.MessageID); err != nil || seen {
		return err // a duplicate (at-least-once delivery, or stored twice)
	}
	sm := StoredMessage{Direction: dir, Micros: m.Timestamp.UnixMicro(), Batches: ix.batchesOf(m), Raw: raw}
	if err := t.put(pMsg+m.MessageID, &sm); err != nil {
		return err
	}
	idx, counter := idxIn, "inbound"
	if dir == DirOutbound {
		idx, counter = idxOut, "sent"
	}
	for _, b := range sm.Batches {
		if err := t.mark(pBIdx + b + "/" + idx + "/" + tsKey(sm.Micros) + "/" + m.MessageID); err != nil {
			return err
		}
		if err := t.add(b, counter, 1); err != nil {
			return err
		}
	}
	if dir != DirOutbound || len(sm.Batches) == 0 {
		return nil
	}
	// Events that arrived before their message now count for its batches.
	var st statusRecord
	hasStatus, err := t.get(pStatus+m.MessageID, &st)
	if err != nil {
		return err
	}
	latest := "sent"
	if hasStatus {
		latest = st.Status
	}
	it := t.tr.NewIterator(util.BytesPrefix([]byte(pMsgEv+m.MessageID+"/")), nil)
	defer it.Release()
	var early []string
	for it.Next() {
		early = append(early, string(it.Key()))
	}
	if err := it.Error(); err != nil {
		return err
	}
	for _, b := range sm.Batches {
		if err := t.add(b, "latest."+latest, 1); err != nil {
			return err
		}
	}
	for _, k := range early {
		parts := strings.Split(strings.TrimPrefix(k, pMsgEv), "/") // msg, ts, event
		if len(parts) != 3 {
			continue
		}
		var se storedEvent
		if _, err := t.get(pEvent+parts[2], &se); err != nil {
			return err
		}
		var e schemas.Event
		if err := ix.codecs.Event.DecodeContext(t.ctx, se.Raw, &e); err != nil {
			if schemas.IsRegistryUnavailable(err) {
				return err
			}
			continue
		}
		for _, b := range sm.Batches {
			if err := ix.countEvent(t, b, &e, parts[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// statusName is the delivery status an event gives its message.
func statusName(e *schemas.Event) string {
	switch e.EventType {
	case schemas.EventAck:
		return "acked"
	case schemas.EventNack:
		return "nacked"
	}
	if e.DeliveryStatus != nil {
		return string(*e.DeliveryStatus)
	}
	return "pending"
}

func (ix *Index) countEvent(t *txn, batch string, e *schemas.Event, ts string) error {
	if err := t.mark(pBIdx + batch + "/" + idxEvent + "/" + ts + "/" + e.EventID); err != nil {
		return err
	}
	if err := t.add(batch, string(e.EventType), 1); err != nil {
		return err
	}
	if e.EventType == schemas.EventDeliveryReport && e.DeliveryStatus != nil {
		return t.add(batch, "delivery_report."+string(*e.DeliveryStatus), 1)
	}
	return nil
}

func (ix *Index) addEvent(t *txn, e *schemas.Event, raw []byte) error {
	if seen, err := t.has(pEvent + e.EventID); err != nil || seen {
		return err
	}
	micros := e.Timestamp.UnixMicro()
	if err := t.put(pEvent+e.EventID, &storedEvent{Message: e.UserMessageID, Micros: micros, Raw: raw}); err != nil {
		return err
	}
	ts := tsKey(micros)
	if err := t.mark(pMsgEv + e.UserMessageID + "/" + ts + "/" + e.EventID); err != nil {
		return err
	}
	var old statusRecord
	hadStatus, err := t.get(pStatus+e.UserMessageID, &old)
	if err != nil {
		return err
	}
	newStatus := statusName(e)
	update := !hadStatus || micros >= old.Micros
	if update {
		if err := t.put(pStatus+e.UserMessageID, &statusRecord{Status: newStatus, EventID: e.EventID, Micros: micros}); err != nil {
			return err
		}
	}
	var sm StoredMessage
	found, err := t.get(pMsg+e.UserMessageID, &sm)
	if err != nil || !found || sm.Direction != DirOutbound {
		return err
	}
	oldStatus := "sent"
	if hadStatus {
		oldStatus = old.Status
	}
	for _, b := range sm.Batches {
		if err := ix.countEvent(t, b, e, ts); err != nil {
			return err
		}
		if update {
			if err := t.add(b, "latest."+oldStatus, -1, "latest."+newStatus, 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// --- reads ---

// Message returns a stored user message.
func (ix *Index) Message(id string) (*StoredMessage, bool, error) {
	var sm StoredMessage
	ok, err := ix.getJSON(pMsg+id, &sm)
	return &sm, ok, err
}

// Event returns a stored event's record.
func (ix *Index) Event(id string) ([]byte, bool, error) {
	var se storedEvent
	ok, err := ix.getJSON(pEvent+id, &se)
	return se.Raw, ok, err
}

// Status returns the latest delivery status of an outbound message.
func (ix *Index) Status(msgID string) (*DeliveryStatus, bool, error) {
	var st statusRecord
	ok, err := ix.getJSON(pStatus+msgID, &st)
	if !ok || err != nil {
		return nil, ok, err
	}
	return &DeliveryStatus{Status: st.Status, EventID: st.EventID, Timestamp: time.UnixMicro(st.Micros).UTC()}, true, nil
}

// MessageEvents returns the event ids of a message, oldest first.
func (ix *Index) MessageEvents(msgID string) ([]string, error) {
	var out []string
	it := ix.db.NewIterator(util.BytesPrefix([]byte(pMsgEv+msgID+"/")), nil)
	defer it.Release()
	for it.Next() {
		k := string(it.Key())
		out = append(out, k[strings.LastIndexByte(k, '/')+1:])
	}
	return out, it.Error()
}

func (ix *Index) getJSON(key string, v any) (bool, error) {
	b, err := ix.db.Get([]byte(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, v)
}

// Batch returns a batch.
func (ix *Index) Batch(id string) (*Batch, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	b, ok := ix.batches[id]
	if !ok {
		return nil, false
	}
	c := *b
	return &c, true
}

// Batches returns every batch, oldest first.
func (ix *Index) Batches() []*Batch {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]*Batch, 0, len(ix.batches))
	for _, b := range ix.batches {
		c := *b
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// CurrentBatch returns the batch open now for a tag (Vumi's
// get_tag_info(tag).current_batch).
func (ix *Index) CurrentBatch(tag tagpool.Tag, now time.Time) (string, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	l := ix.byTag[tag]
	for i := len(l) - 1; i >= 0; i-- {
		if l[i].DoneAt == nil || now.Before(*l[i].DoneAt) {
			return l[i].ID, true
		}
	}
	return "", false
}

// Counts returns a batch's raw counters.
func (ix *Index) Counts(batch string) (map[string]int64, error) {
	c := map[string]int64{}
	_, err := ix.getJSON(pCount+batch, &c)
	return c, err
}

// BatchKeys calls fn with the ids in a batch's index ("i" inbound, "o"
// outbound, "e" events) whose timestamps are in [start, end) (zero times
// are open ends), oldest first, until fn returns false.
func (ix *Index) BatchKeys(batch, idx string, start, end time.Time, fn func(id string) bool) error {
	prefix := pBIdx + batch + "/" + idx + "/"
	r := util.BytesPrefix([]byte(prefix))
	if !start.IsZero() {
		r.Start = []byte(prefix + tsKey(start.UnixMicro()))
	}
	if !end.IsZero() {
		r.Limit = []byte(prefix + tsKey(end.UnixMicro()))
	}
	it := ix.db.NewIterator(r, nil)
	defer it.Release()
	for it.Next() {
		k := string(it.Key())
		if !fn(k[strings.LastIndexByte(k, '/')+1:]) {
			break
		}
	}
	return it.Error()
}

// Pool returns a tag pool.
func (ix *Index) Pool(name string) (*tagpool.Pool, bool, error) {
	var p tagpool.Pool
	ok, err := ix.getJSON(pPool+name, &p)
	return &p, ok, err
}

// Pools returns every tag pool, by name.
func (ix *Index) Pools() ([]*tagpool.Pool, error) {
	var out []*tagpool.Pool
	it := ix.db.NewIterator(util.BytesPrefix([]byte(pPool)), nil)
	defer it.Release()
	for it.Next() {
		var p tagpool.Pool
		if err := json.Unmarshal(it.Value(), &p); err != nil {
			return nil, err
		}
		out = append(out, &p)
	}
	return out, it.Error()
}
