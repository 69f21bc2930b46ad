package management

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func (s *Server) routes(mux *http.ServeMux) {
	for _, typ := range []string{TypeChannel, TypeRouter} {
		base := "/api/v1/" + typ + "s"
		mux.HandleFunc("GET "+base, s.list(typ))
		mux.HandleFunc("POST "+base, s.create(typ))
		mux.HandleFunc("GET "+base+"/{id}", s.get(typ))
		mux.HandleFunc("PUT "+base+"/{id}", s.update(typ, false))
		mux.HandleFunc("PATCH "+base+"/{id}", s.update(typ, true))
		mux.HandleFunc("DELETE "+base+"/{id}", s.remove(typ))
		mux.HandleFunc("POST "+base+"/{id}/restart", s.restart(typ))
		mux.HandleFunc("GET "+base+"/{id}/status", s.status(typ))
		mux.HandleFunc("GET "+base+"/{id}/logs", s.workerLogs(typ))
	}
	mux.HandleFunc("POST /api/v1/channels/{id}/messages", s.send)
	mux.HandleFunc("GET /api/v1/messages/{message_id}/logs", s.messageLogs)
	mux.HandleFunc("GET /api/v1/workers", s.workers)
	mux.HandleFunc("GET /api/v1/dashboard", s.dashboardJSON)
	mux.HandleFunc("GET /api/v1/dashboard/stream", s.dashboardStream)
	if s.cfg.DashboardOn() {
		mux.Handle("GET /", dashboardHandler())
	}
}

// View is a channel or router as the API shows it.
type View struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Kind     string          `json:"kind"`
	Role     topology.Role   `json:"role"`
	Source   string          `json:"source"` // "api" or "config"
	Label    string          `json:"label,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Config   json.RawMessage `json:"config,omitempty"`
	// TransportName is a channel's transport_name (its topics).
	TransportName string    `json:"transport_name,omitempty"`
	Generation    int64     `json:"generation,omitempty"`
	CreatedAt     time.Time `json:"created_at,omitzero"`
	UpdatedAt     time.Time `json:"updated_at,omitzero"`
	// Here is this process's supervisor's view of the worker (absent if
	// it does not run here); Problem says why it could not start here.
	Here    *topology.WorkerState `json:"here,omitempty"`
	Problem string                `json:"problem,omitempty"`
}

// transportOf returns the transport name of a transport spec: the topic
// it consumes outbound messages from, without prefix and suffix.
func transportOf(spec *topology.WorkerSpec) string {
	for _, st := range spec.Config.IO(spec.Name).Consumes {
		if strings.HasSuffix(st.Topic, topology.SuffixOutbound) {
			return strings.TrimSuffix(st.Topic, topology.SuffixOutbound)
		}
	}
	return ""
}

func (s *Server) here() map[string]topology.WorkerState {
	out := map[string]topology.WorkerState{}
	for _, st := range s.rt.Supervisor.States() {
		out[st.Name] = st
	}
	return out
}

// views returns the channels or routers: the config file's, then the
// control topic's.
func (s *Server) views(typ string) []View {
	here := s.here()
	problems := s.rec.Problems()
	var out []View
	for _, spec := range s.rt.Config.Workers {
		if spec.Kind.Role != roleOf[typ] {
			continue
		}
		v := View{ID: spec.Name, Type: typ, Kind: spec.Kind.Name, Role: spec.Kind.Role, Source: "config"}
		if typ == TypeChannel {
			v.TransportName = transportOf(spec)
		}
		if st, ok := here[spec.Name]; ok {
			v.Here = &st
		}
		out = append(out, v)
	}
	entries, _ := s.control.Entries()
	for _, e := range entries {
		if e.Type == typ {
			out = append(out, s.entryView(e, here, problems))
		}
	}
	return out
}

func (s *Server) entryView(e *Entry, here map[string]topology.WorkerState, problems map[string]string) View {
	v := View{ID: e.ID, Type: e.Type, Kind: e.Kind, Source: "api", Label: e.Label, Metadata: e.Metadata, Config: e.Config,
		Generation: e.Generation, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, Problem: problems[e.ID]}
	if spec, err := e.Spec(s.rt.Deps.Kinds); err == nil {
		v.Role = spec.Kind.Role
		if e.Type == TypeChannel {
			v.TransportName = transportOf(spec)
		}
	}
	if st, ok := here[e.ID]; ok {
		v.Here = &st
	}
	return v
}

// find returns the view of one channel or router.
func (s *Server) find(typ, id string) (View, bool) {
	for _, v := range s.views(typ) {
		if v.ID == id {
			return v, true
		}
	}
	return View{}, false
}

// transportNames are the channels the monitor samples.
func (s *Server) transportNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s.views(TypeChannel) {
		if v.TransportName != "" && !seen[v.TransportName] {
			seen[v.TransportName] = true
			out = append(out, v.TransportName)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) list(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		views := s.views(typ)
		if views == nil {
			views = []View{}
		}
		writeJSON(w, http.StatusOK, typ+"s listed", views)
	}
}

func (s *Server) get(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.find(typ, r.PathValue("id"))
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("%s %q not found", typ, r.PathValue("id")), nil)
			return
		}
		writeJSON(w, http.StatusOK, typ+" found", v)
	}
}

// createRequest is the body of a create, replace or patch.
type createRequest struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	Config   json.RawMessage `json:"config"`
	Label    *string         `json:"label"`
	Metadata json.RawMessage `json:"metadata"`
}

var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// readJSON decodes a bounded body strictly.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes (management.max_body_bytes)", mbe.Limit), nil)
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid JSON body", []string{err.Error()})
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "invalid JSON body", []string{"trailing data after the JSON object"})
		return false
	}
	return true
}

// validate checks an entry as the config file would, and against the
// rest of the deployment (names, the topology graph); it also creates
// the entry's topics so that it can be used as soon as it is stored.
func (s *Server) validate(ctx context.Context, e *Entry) (int, []string) {
	if !idRe.MatchString(e.ID) {
		return http.StatusBadRequest, []string{fmt.Sprintf("id %q: may only contain letters, digits, '.', '_' and '-' and must start with a letter or digit", e.ID)}
	}
	if e.Kind == "" {
		return http.StatusBadRequest, []string{"kind: is required; known " + e.Type + " kinds: " + strings.Join(s.rt.Deps.Kinds.KindNamesOf(roleOf[e.Type]), ", ")}
	}
	if len(e.Config) == 0 || string(e.Config) == "null" {
		e.Config = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(e.Config, &obj); err != nil {
		return http.StatusBadRequest, []string{"config: must be a JSON object of the worker's keys"}
	}
	spec, err := e.Spec(s.rt.Deps.Kinds)
	if err != nil {
		return http.StatusBadRequest, []string{err.Error()}
	}
	if _, static := s.rt.Config.Worker(e.ID); static {
		return http.StatusConflict, []string{fmt.Sprintf("id %q: a worker of the config file has this name", e.ID)}
	}
	other := TypeRouter
	if e.Type == TypeRouter {
		other = TypeChannel
	}
	if _, ok := s.control.Get(other, e.ID); ok {
		return http.StatusConflict, []string{fmt.Sprintf("id %q: a %s has this name", e.ID, other)}
	}
	// The whole deployment with this entry (replacing its old version).
	var extra []*topology.WorkerSpec
	entries, _ := s.control.Entries()
	for _, o := range entries {
		if o.Key() == e.Key() {
			continue
		}
		if os, err := o.Spec(s.rt.Deps.Kinds); err == nil {
			extra = append(extra, os)
		}
	}
	all, err := s.rt.Config.With(append(extra, spec)...)
	if err != nil {
		return http.StatusConflict, []string{err.Error()}
	}
	graph := topology.BuildGraph(all)
	// The API sends on every channel: its outbound topic has a producer.
	for _, w := range all.Workers {
		if w.Kind.Role != topology.RoleTransport {
			continue
		}
		if tn := transportOf(w); tn != "" {
			if t := graph.Topics[s.rt.Deps.Names.Outbound(tn)]; t != nil {
				t.Producers = append(t.Producers, "management API")
			}
		}
	}
	if err := graph.Validate(); err != nil {
		return http.StatusBadRequest, strings.Split("invalid topology: "+err.Error(), "\n")
	}
	if err := topology.Prepare(ctx, s.rt.Deps, topology.BuildGraph(s.rt.Config.Only(spec)), s.log); err != nil {
		return http.StatusServiceUnavailable, []string{"creating the topics: " + err.Error()}
	}
	return 0, nil
}

func (s *Server) create(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req createRequest
		if !s.readJSON(w, r, &req) {
			return
		}
		if req.ID == "" {
			req.ID = typ + "-" + schemas.GenerateID()[:12]
		}
		if _, ok := s.find(TypeChannel, req.ID); ok {
			writeError(w, http.StatusConflict, fmt.Sprintf("channel %q already exists", req.ID), nil)
			return
		}
		if _, ok := s.find(TypeRouter, req.ID); ok {
			writeError(w, http.StatusConflict, fmt.Sprintf("router %q already exists", req.ID), nil)
			return
		}
		now := time.Now().UTC()
		e := &Entry{Type: typ, ID: req.ID, Kind: req.Kind, Config: req.Config, Metadata: req.Metadata, CreatedAt: now, UpdatedAt: now}
		if req.Label != nil {
			e.Label = *req.Label
		}
		s.store(w, r, e, http.StatusCreated, typ+" created")
	}
}

func (s *Server) store(w http.ResponseWriter, r *http.Request, e *Entry, status int, description string) {
	if code, errs := s.validate(r.Context(), e); code != 0 {
		writeError(w, code, "invalid "+e.Type+" config", errs)
		return
	}
	if err := s.control.Put(r.Context(), e); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not stored", []string{err.Error()})
		return
	}
	s.log.Info(e.Type+" stored", "id", e.ID, "kind", e.Kind, "generation", e.Generation)
	// This process usually starts it at once; do not wait long for it.
	s.waitHere(r.Context(), e.ID, e.Fingerprint(), 3*time.Second)
	v, _ := s.find(e.Type, e.ID)
	writeJSON(w, status, description, v)
}

// waitHere waits a little for this process to run id with fingerprint fp.
func (s *Server) waitHere(ctx context.Context, id, fp string, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if cur, ok := s.rt.Supervisor.Fingerprint(id); ok && cur == fp {
			return
		}
		if _, bad := s.rec.Problems()[id]; bad {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// editable returns the stored entry of id, or writes why it cannot be
// changed.
func (s *Server) editable(w http.ResponseWriter, typ, id string) (*Entry, bool) {
	e, ok := s.control.Get(typ, id)
	if ok {
		return e, true
	}
	if v, found := s.find(typ, id); found && v.Source == "config" {
		writeError(w, http.StatusConflict, fmt.Sprintf("%s %q is defined in the config file %s; change it there", typ, id, s.rt.Config.File), nil)
		return nil, false
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("%s %q not found", typ, id), nil)
	return nil, false
}

func (s *Server) update(typ string, patch bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		old, ok := s.editable(w, typ, id)
		if !ok {
			return
		}
		var req createRequest
		if !s.readJSON(w, r, &req) {
			return
		}
		if req.ID != "" && req.ID != id {
			writeError(w, http.StatusBadRequest, "invalid "+typ+" config", []string{fmt.Sprintf("id %q: does not match the path's %q (ids cannot change)", req.ID, id)})
			return
		}
		e := *old
		e.UpdatedAt = time.Now().UTC()
		if req.Kind != "" {
			e.Kind = req.Kind
		} else if !patch {
			writeError(w, http.StatusBadRequest, "invalid "+typ+" config", []string{"kind: is required (PATCH changes only what is given)"})
			return
		}
		if req.Label != nil {
			e.Label = *req.Label
		}
		if req.Metadata != nil {
			e.Metadata = req.Metadata
		}
		switch {
		case !patch:
			e.Config = req.Config
		case req.Config != nil:
			merged, err := mergePatch(old.Config, req.Config)
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid "+typ+" config", []string{"config: " + err.Error()})
				return
			}
			e.Config = merged
		}
		s.store(w, r, &e, http.StatusOK, typ+" updated")
	}
}

// mergePatch applies a JSON merge patch (RFC 7396) of top-level keys: a
// null removes a key, anything else replaces it.
func mergePatch(base, patch json.RawMessage) (json.RawMessage, error) {
	var b, p map[string]json.RawMessage
	if len(base) > 0 {
		if err := json.Unmarshal(base, &b); err != nil {
			return nil, err
		}
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, errors.New("must be a JSON object of the keys to change")
	}
	if b == nil {
		b = map[string]json.RawMessage{}
	}
	for k, v := range p {
		if string(v) == "null" {
			delete(b, k)
		} else {
			b[k] = v
		}
	}
	return json.Marshal(b)
}

func (s *Server) remove(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if _, ok := s.editable(w, typ, id); !ok {
			return
		}
		if err := s.control.Delete(r.Context(), typ, id); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not deleted", []string{err.Error()})
			return
		}
		s.log.Info(typ+" deleted", "id", id)
		writeJSON(w, http.StatusOK, typ+" deleted", map[string]any{"id": id})
	}
}

func (s *Server) restart(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		e, ok := s.editable(w, typ, id)
		if !ok {
			return
		}
		e.Generation++
		e.UpdatedAt = time.Now().UTC()
		if err := s.control.Put(r.Context(), e); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not restarted", []string{err.Error()})
			return
		}
		s.waitHere(r.Context(), e.ID, e.Fingerprint(), 3*time.Second)
		v, _ := s.find(typ, id)
		writeJSON(w, http.StatusOK, typ+" restarted on every instance", v)
	}
}

// StatusResult is a channel's or router's status.
type StatusResult struct {
	ID string `json:"id"`
	// Status is the level of the newest status event (ok, degraded,
	// down), or "unknown" with none.
	Status   string          `json:"status"`
	Statuses []StatusView    `json:"statuses"`
	Figures  *ChannelFigures `json:"figures,omitempty"`
	// Instances are the heartbeats of the worker, one per process.
	Instances []InstanceView        `json:"instances"`
	Here      *topology.WorkerState `json:"here,omitempty"`
	Problem   string                `json:"problem,omitempty"`
}

func (s *Server) status(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.find(typ, r.PathValue("id"))
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("%s %q not found", typ, r.PathValue("id")), nil)
			return
		}
		res := StatusResult{ID: v.ID, Status: "unknown", Here: v.Here, Problem: v.Problem,
			Statuses: s.mon.Statuses(v.ID, v.TransportName), Instances: s.mon.Instances(v.ID)}
		if len(res.Statuses) > 0 {
			res.Status = res.Statuses[0].Status
		}
		if v.TransportName != "" {
			f := s.mon.Channel(v.TransportName, v.ID)
			res.Figures = &f
		}
		writeJSON(w, http.StatusOK, typ+" status", res)
	}
}

func count(r *http.Request, def int) (int, error) {
	q := r.URL.Query().Get("n")
	if q == "" {
		return def, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > 10000 {
		return 0, fmt.Errorf("n: %q is not a number from 1 to 10000", q)
	}
	return n, nil
}

func (s *Server) workerLogs(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if _, ok := s.find(typ, id); !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("%s %q not found", typ, id), nil)
			return
		}
		n, err := count(r, 100)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid query", []string{err.Error()})
			return
		}
		out := []LogRecord{}
		if s.logs != nil {
			out = append(out, s.logs.ForWorker(id, n)...)
		}
		writeJSON(w, http.StatusOK, "logs of this instance", out)
	}
}

func (s *Server) messageLogs(w http.ResponseWriter, r *http.Request) {
	n, err := count(r, 100)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid query", []string{err.Error()})
		return
	}
	out := []LogRecord{}
	if s.logs != nil {
		out = append(out, s.logs.ForValue(r.PathValue("message_id"), n)...)
	}
	writeJSON(w, http.StatusOK, "logs of this instance", out)
}

// sendRequest is a message to send on a channel (Junebug's fields, with
// Vumi's names accepted too).
type sendRequest struct {
	To                string           `json:"to"`
	From              string           `json:"from"`
	Content           *string          `json:"content"`
	InReplyTo         string           `json:"in_reply_to"`
	SessionEvent      string           `json:"session_event"`
	TransportType     string           `json:"transport_type"`
	HelperMetadata    schemas.Metadata `json:"helper_metadata"`
	TransportMetadata schemas.Metadata `json:"transport_metadata"`
	ChannelData       schemas.Metadata `json:"channel_data"`
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	v, ok := s.find(TypeChannel, r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("channel %q not found", r.PathValue("id")), nil)
		return
	}
	if v.TransportName == "" {
		writeError(w, http.StatusConflict, fmt.Sprintf("channel %q has no valid config (%s)", v.ID, v.Problem), nil)
		return
	}
	var req sendRequest
	if !s.readJSON(w, r, &req) {
		return
	}
	var errs []string
	if req.To == "" {
		errs = append(errs, "to: is required")
	}
	switch req.SessionEvent {
	case "", "new", "resume", "close":
	default:
		errs = append(errs, fmt.Sprintf("session_event: %q is not new, resume or close", req.SessionEvent))
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, "invalid message", errs)
		return
	}
	m := schemas.NewUserMessage()
	m.ToAddr = schemas.String(req.To)
	if req.From != "" {
		m.FromAddr = schemas.String(req.From)
	}
	m.Content = req.Content
	m.TransportName = schemas.String(v.TransportName)
	if req.TransportType != "" {
		m.TransportType = schemas.String(req.TransportType)
	}
	if req.InReplyTo != "" {
		m.InReplyTo = schemas.String(req.InReplyTo)
	}
	if req.SessionEvent != "" {
		se := schemas.SessionEvent(req.SessionEvent)
		m.SessionEvent = &se
	}
	m.HelperMetadata = req.HelperMetadata
	m.TransportMetadata = req.TransportMetadata
	if req.ChannelData != nil {
		if m.HelperMetadata == nil {
			m.HelperMetadata = schemas.Metadata{}
		}
		for k, val := range req.ChannelData {
			m.HelperMetadata[k] = val
		}
	}
	topic := s.rt.Deps.Names.Outbound(v.TransportName)
	val, err := s.rt.Deps.Codecs.UserMessage.Encode(m)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid message", []string{err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := s.prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(req.To), Value: val}).FirstErr(); err != nil {
		writeError(w, http.StatusServiceUnavailable, "message not sent", []string{err.Error()})
		return
	}
	s.log.Info("message sent through the management API", "channel", v.ID, "message_id", m.MessageID, "topic", topic)
	js, _ := m.MarshalJSON()
	writeJSON(w, http.StatusCreated, "message submitted", json.RawMessage(js))
}

// workers lists this process's supervised workers.
func (s *Server) workers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, "workers of this instance", s.rt.Supervisor.States())
}
