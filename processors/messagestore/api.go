package messagestore

import (
	"context"
	"crypto/subtle"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/processors/tagpool"
	"github.com/vumi-kafka/vumi/schemas"
)

// apiTimeout bounds how long a write waits to be applied.
const apiTimeout = 30 * time.Second

// Handler returns the HTTP API (see docs/message-store.md).
func (s *Store) Handler() http.Handler {
	p := strings.TrimRight(s.cfg.WebPath, "/")
	mux := http.NewServeMux()
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(method+" "+p+path, func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				writeError(w, err)
			}
		})
	}
	h("GET /batches", s.listBatches)
	h("POST /batches", s.createBatch)
	h("GET /batches/{id}", s.getBatch)
	h("POST /batches/{id}/done", s.batchDone)
	h("GET /batches/{id}/status", s.batchStatus)
	h("GET /batches/{id}/{file}", s.batchMessages)
	h("GET /{id}/{file}", s.batchMessages) // Vumi's message_store_resource paths
	h("GET /messages/{id}", s.getMessage)
	h("GET /messages/{id}/events", s.getMessageEvents)
	h("GET /events/{id}", s.getEvent)
	h("GET /tags/{pool}/{tag}", s.tagInfo)
	h("GET /tagpools", s.listPools)
	h("GET /tagpools/{pool}", s.getPool)
	h("DELETE /tagpools/{pool}", s.purgePool)
	h("POST /tagpools/{pool}/declare", s.declareTags)
	h("POST /tagpools/{pool}/acquire", s.acquireTag)
	h("POST /tagpools/{pool}/release", s.releaseTag)
	h("PUT /tagpools/{pool}/metadata", s.setMetadata)
	h("GET /tagpools/{pool}/tags/{tag}", s.acquiredBy)
	h("GET /owned_tags", s.ownedTags)
	health := s.cfg.HealthPath
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == health || r.URL.Path == strings.TrimRight(health, "/") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "OK")
			return
		}
		if s.cfg.Username != "" && !s.authorised(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="vumi message store"`)
			writeError(w, &httpError{http.StatusUnauthorized, "authentication required"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Store) authorised(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	uOK := subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.Username)) == 1
	pOK := subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) == 1
	return uOK && pOK
}

type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		code = he.code
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func readJSON(r *http.Request, v any) error {
	d := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

func writeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), apiTimeout)
}

// --- batches ---

// BatchView is a batch with its status.
type BatchView struct {
	*Batch
	Status *StatusView `json:"status,omitempty"`
}

// StatusView is a batch's status counts.
type StatusView struct {
	BatchID string `json:"batch_id"`
	// Counts: sent is outbound messages, inbound inbound messages; acked,
	// nacked, delivered, failed and pending count events.
	Counts map[string]int64 `json:"counts"`
	// Latest counts the batch's outbound messages by their latest
	// delivery status ("sent": no event yet).
	Latest map[string]int64 `json:"latest"`
	// VumiStatus is Vumi's batch_status hash: ack, nack, delivery_report,
	// delivery_report.<status>, sent.
	VumiStatus map[string]int64 `json:"vumi_status"`
}

func (s *Store) statusOf(id string) (*StatusView, error) {
	c, err := s.ix.Counts(id)
	if err != nil {
		return nil, err
	}
	v := &StatusView{BatchID: id, Counts: map[string]int64{}, Latest: map[string]int64{}, VumiStatus: map[string]int64{}}
	for _, k := range []string{"ack", "nack", "delivery_report", "delivery_report.delivered", "delivery_report.failed", "delivery_report.pending", "sent"} {
		v.VumiStatus[k] = c[k]
	}
	v.Counts["sent"], v.Counts["inbound"] = c["sent"], c["inbound"]
	v.Counts["acked"], v.Counts["nacked"] = c["ack"], c["nack"]
	for _, st := range []string{"delivered", "failed", "pending"} {
		v.Counts[st] = c["delivery_report."+st]
	}
	for _, st := range []string{"sent", "acked", "nacked", "delivered", "failed", "pending"} {
		v.Latest[st] = c["latest."+st]
	}
	return v, nil
}

func (s *Store) listBatches(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"batches": s.ix.Batches()})
	return nil
}

type createBatchRequest struct {
	Tags     []tagpool.Tag  `json:"tags"`
	Metadata map[string]any `json:"metadata"`
}

func (s *Store) createBatch(w http.ResponseWriter, r *http.Request) error {
	var req createBatchRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Tags == nil {
		req.Tags = []tagpool.Tag{}
	}
	b := &Batch{ID: schemas.GenerateID(), Tags: req.Tags, Metadata: req.Metadata, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	ctx, cancel := writeCtx(r)
	defer cancel()
	if err := s.putBatch(ctx, b); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, b)
	return nil
}

func (s *Store) batch(r *http.Request) (*Batch, error) {
	id := r.PathValue("id")
	b, ok := s.ix.Batch(id)
	if !ok {
		return nil, notFound("no batch %q", id)
	}
	return b, nil
}

func (s *Store) getBatch(w http.ResponseWriter, r *http.Request) error {
	b, err := s.batch(r)
	if err != nil {
		return err
	}
	st, err := s.statusOf(b.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, BatchView{Batch: b, Status: st})
	return nil
}

func (s *Store) batchDone(w http.ResponseWriter, r *http.Request) error {
	b, err := s.batch(r)
	if err != nil {
		return err
	}
	if b.DoneAt == nil {
		now := time.Now().UTC().Truncate(time.Microsecond)
		b.DoneAt = &now
		ctx, cancel := writeCtx(r)
		defer cancel()
		if err := s.putBatch(ctx, b); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (s *Store) batchStatus(w http.ResponseWriter, r *http.Request) error {
	b, err := s.batch(r)
	if err != nil {
		return err
	}
	st, err := s.statusOf(b.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

var (
	messageCSV = []string{"timestamp", "message_id", "to_addr", "from_addr", "in_reply_to", "session_event", "content", "group"}
	eventCSV   = []string{"timestamp", "event_id", "status", "user_message_id", "nack_reason"}
)

func parseTimeArg(r *http.Request, name string) (time.Time, error) {
	vals := r.URL.Query()[name]
	if len(vals) == 0 {
		return time.Time{}, nil
	}
	if len(vals) > 1 {
		return time.Time{}, badRequest("Invalid '%s' parameter: Too many values", name)
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05.999999", "2006-01-02"} {
		if t, err := time.Parse(layout, vals[0]); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, badRequest("Invalid '%s' parameter: %q is not an ISO 8601 time", name, vals[0])
}

// batchMessages streams a batch's inbound, outbound or events as JSON
// lines or CSV (Vumi's message_store_resource), oldest first, optionally
// limited to [start, end).
func (s *Store) batchMessages(w http.ResponseWriter, r *http.Request) error {
	b, err := s.batch(r)
	if err != nil {
		return err
	}
	file := r.PathValue("file")
	name, format, _ := strings.Cut(file, ".")
	idx := map[string]string{"inbound": idxIn, "outbound": idxOut, "events": idxEvent}[name]
	if idx == "" || (format != "json" && format != "csv") {
		return notFound("no resource %q (want inbound, outbound or events, .json or .csv)", file)
	}
	start, err := parseTimeArg(r, "start")
	if err != nil {
		return err
	}
	end, err := parseTimeArg(r, "end")
	if err != nil {
		return err
	}
	var cw *csv.Writer
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw = csv.NewWriter(w)
		if idx == idxEvent {
			_ = cw.Write(eventCSV)
		} else {
			_ = cw.Write(messageCSV)
		}
	} else {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	var werr error
	err = s.ix.BatchKeys(b.ID, idx, start, end, func(id string) bool {
		var line []byte
		var row []string
		if idx == idxEvent {
			e, ok := s.event(r.Context(), id)
			if !ok {
				return true
			}
			line, werr = e.MarshalJSON()
			row = []string{schemas.FormatVumiTime(e.Timestamp), e.EventID, e.Status(), e.UserMessageID, deref(e.NackReason)}
		} else {
			m, _, ok := s.message(r.Context(), id)
			if !ok {
				return true
			}
			line, werr = m.MarshalJSON()
			row = []string{schemas.FormatVumiTime(m.Timestamp), m.MessageID, m.To(), m.From(), deref(m.InReplyTo), string(m.Session()), m.Text(), deref(m.Group)}
		}
		if werr != nil {
			return false
		}
		if cw != nil {
			werr = cw.Write(row)
		} else {
			_, werr = w.Write(append(line, '\n'))
		}
		return werr == nil
	})
	if cw != nil {
		cw.Flush()
	}
	return errors.Join(err, werr)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *Store) message(ctx context.Context, id string) (*schemas.UserMessage, *StoredMessage, bool) {
	sm, ok, err := s.ix.Message(id)
	if err != nil || !ok {
		return nil, nil, false
	}
	var m schemas.UserMessage
	if err := s.Deps.Codecs.UserMessage.DecodeContext(ctx, sm.Raw, &m); err != nil {
		s.Log.Warn("stored message cannot be decoded", "message_id", id, "error", err)
		return nil, nil, false
	}
	return &m, sm, true
}

func (s *Store) event(ctx context.Context, id string) (*schemas.Event, bool) {
	raw, ok, err := s.ix.Event(id)
	if err != nil || !ok {
		return nil, false
	}
	var e schemas.Event
	if err := s.Deps.Codecs.Event.DecodeContext(ctx, raw, &e); err != nil {
		s.Log.Warn("stored event cannot be decoded", "event_id", id, "error", err)
		return nil, false
	}
	return &e, true
}

// MessageView is a stored message with what the store knows about it.
type MessageView struct {
	Message        json.RawMessage   `json:"message"`
	Direction      string            `json:"direction"`
	Batches        []string          `json:"batches"`
	DeliveryStatus *DeliveryStatus   `json:"delivery_status"`
	Events         []json.RawMessage `json:"events"`
}

func (s *Store) events(ctx context.Context, msgID string) ([]json.RawMessage, error) {
	ids, err := s.ix.MessageEvents(msgID)
	if err != nil {
		return nil, err
	}
	out := []json.RawMessage{}
	for _, id := range ids {
		if e, ok := s.event(ctx, id); ok {
			js, err := e.MarshalJSON()
			if err != nil {
				return nil, err
			}
			out = append(out, js)
		}
	}
	return out, nil
}

func (s *Store) getMessage(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	m, sm, ok := s.message(r.Context(), id)
	if !ok {
		return notFound("no message %q", id)
	}
	js, err := m.MarshalJSON()
	if err != nil {
		return err
	}
	v := MessageView{Message: js, Direction: sm.Direction, Batches: sm.Batches}
	if v.Batches == nil {
		v.Batches = []string{}
	}
	if v.DeliveryStatus, _, err = s.ix.Status(id); err != nil {
		return err
	}
	if v.Events, err = s.events(r.Context(), id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Store) getMessageEvents(w http.ResponseWriter, r *http.Request) error {
	evs, err := s.events(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs})
	return nil
}

func (s *Store) getEvent(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	e, ok := s.event(r.Context(), id)
	if !ok {
		return notFound("no event %q", id)
	}
	js, err := e.MarshalJSON()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, err = w.Write(append(js, '\n'))
	return err
}

func (s *Store) tagInfo(w http.ResponseWriter, r *http.Request) error {
	tag := tagpool.Tag{Pool: r.PathValue("pool"), Name: r.PathValue("tag")}
	var current any
	if id, ok := s.ix.CurrentBatch(tag, time.Now()); ok {
		current = id
	}
	writeJSON(w, http.StatusOK, map[string]any{"tag": tag, "current_batch": current})
	return nil
}

// --- tag pools ---

// PoolView is a tag pool as the API shows it.
type PoolView struct {
	Name     string         `json:"name"`
	Free     []tagpool.Tag  `json:"free"`
	InUse    []tagpool.Tag  `json:"inuse"`
	Metadata map[string]any `json:"metadata"`
}

func poolView(p *tagpool.Pool) PoolView {
	v := PoolView{Name: p.Name, Free: p.FreeTags(), InUse: p.InUseTags(), Metadata: p.Metadata}
	if v.Metadata == nil {
		v.Metadata = map[string]any{}
	}
	return v
}

func (s *Store) listPools(w http.ResponseWriter, _ *http.Request) error {
	pools, err := s.ix.Pools()
	if err != nil {
		return err
	}
	names := []string{}
	for _, p := range pools {
		names = append(names, p.Name)
	}
	writeJSON(w, http.StatusOK, map[string]any{"pools": names})
	return nil
}

func (s *Store) pool(r *http.Request) (*tagpool.Pool, error) {
	name := r.PathValue("pool")
	p, ok, err := s.ix.Pool(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("no tag pool %q", name)
	}
	return p, nil
}

func (s *Store) getPool(w http.ResponseWriter, r *http.Request) error {
	p, err := s.pool(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, poolView(p))
	return nil
}

func (s *Store) run(w http.ResponseWriter, r *http.Request, c *tagpool.Command) error {
	c.Pool = r.PathValue("pool")
	ctx, cancel := writeCtx(r)
	defer cancel()
	res, err := s.command(ctx, c)
	if err != nil {
		return err
	}
	if res.Error != "" {
		return &httpError{http.StatusConflict, res.Error}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Store) declareTags(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Tags []string `json:"tags"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	return s.run(w, r, &tagpool.Command{Op: tagpool.OpDeclare, Tags: req.Tags})
}

func (s *Store) acquireTag(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Tag    string         `json:"tag"`
		Owner  *string        `json:"owner"`
		Reason map[string]any `json:"reason"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	c := &tagpool.Command{Op: tagpool.OpAcquire, Owner: req.Owner, Reason: req.Reason}
	if req.Tag != "" {
		c.Op, c.Tag = tagpool.OpAcquireSpecific, req.Tag
	}
	return s.run(w, r, c)
}

func (s *Store) releaseTag(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Tag string `json:"tag"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Tag == "" {
		return badRequest("tag is required")
	}
	return s.run(w, r, &tagpool.Command{Op: tagpool.OpRelease, Tag: req.Tag})
}

func (s *Store) setMetadata(w http.ResponseWriter, r *http.Request) error {
	md := map[string]any{}
	if err := readJSON(r, &md); err != nil {
		return err
	}
	return s.run(w, r, &tagpool.Command{Op: tagpool.OpSetMetadata, Metadata: md})
}

func (s *Store) purgePool(w http.ResponseWriter, r *http.Request) error {
	return s.run(w, r, &tagpool.Command{Op: tagpool.OpPurge})
}

func (s *Store) acquiredBy(w http.ResponseWriter, r *http.Request) error {
	p, err := s.pool(r)
	if err != nil {
		return err
	}
	owner, reason := p.AcquiredBy(r.PathValue("tag"))
	writeJSON(w, http.StatusOK, map[string]any{"owner": owner, "reason": reason})
	return nil
}

func (s *Store) ownedTags(w http.ResponseWriter, r *http.Request) error {
	var owner *string
	if o := r.URL.Query().Get("owner"); o != "" {
		owner = &o
	}
	pools, err := s.ix.Pools()
	if err != nil {
		return err
	}
	out := []tagpool.Tag{}
	for _, p := range pools {
		out = append(out, p.OwnedBy(owner)...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tags": out})
	return nil
}
