// Package sendapi is the HTTP send API that sits beside the transports, in
// the spirit of Vumi 0.1's "HTTP API for SMS messaging": clients send a
// message through a named transport with one POST, query its delivery
// status, and receive inbound messages and events on HTTP callbacks,
// retried with backoff. docs/send-api.md and docs/send-api.openapi.yaml
// describe it.
package sendapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config configures the send API.
type Config struct {
	// WebPort and WebInterface to listen on (port 0: any free port).
	WebPort      int    `yaml:"web_port"`
	WebInterface string `yaml:"web_interface"`
	// WebPath prefixes every endpoint; default "/api/v1".
	WebPath string `yaml:"web_path"`
	// WebUsername and WebPassword require HTTP Basic auth (both or none).
	WebUsername string `yaml:"web_username"`
	WebPassword string `yaml:"web_password"`
	// Transports clients may send through (transport_name values).
	Transports []string `yaml:"transports"`
	// InboundURL receives every inbound message of those transports as
	// Vumi JSON (POST); EventURL every event. Both optional.
	InboundURL string `yaml:"inbound_url"`
	EventURL   string `yaml:"event_url"`
	// CallbackUsername and CallbackPassword: Basic auth for callbacks.
	CallbackUsername string `yaml:"callback_username"`
	CallbackPassword string `yaml:"callback_password"`
	// CallbackTimeout per attempt; default 10s.
	CallbackTimeout time.Duration `yaml:"callback_timeout"`
	// CallbackMaxRetries after the first attempt; default 5. A callback
	// that still fails goes to <transport>.failures.
	CallbackMaxRetries int `yaml:"callback_max_retries"`
	// CallbackBackoff before the first retry, doubling up to 1 minute;
	// default 1s.
	CallbackBackoff time.Duration `yaml:"callback_backoff"`
	// CallbacksFrom is where a new deployment's callbacks start: "end"
	// (default: only messages and events from now on) or "start" (the
	// transports' whole history).
	CallbacksFrom string `yaml:"callbacks_from"`
	worker.Common `yaml:",inline"`
}

var transportNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.WebPath == "" {
		c.WebPath = "/api/v1"
	}
	c.WebPath = "/" + strings.Trim(c.WebPath, "/")
	if c.CallbackTimeout == 0 {
		c.CallbackTimeout = 10 * time.Second
	}
	if c.CallbackMaxRetries == 0 {
		c.CallbackMaxRetries = 5
	}
	if c.CallbackBackoff == 0 {
		c.CallbackBackoff = time.Second
	}
	if c.CallbacksFrom == "" {
		c.CallbacksFrom = "end"
	}
	c.Common.Defaults()
	var errs []error
	if c.CallbacksFrom != "end" && c.CallbacksFrom != "start" {
		errs = append(errs, fmt.Errorf("key callbacks_from: %q is not end or start", c.CallbacksFrom))
	}
	if len(c.Transports) == 0 {
		errs = append(errs, errors.New("key transports: name at least one transport to send through"))
	}
	for _, t := range c.Transports {
		if !transportNameRe.MatchString(t) {
			errs = append(errs, fmt.Errorf("key transports: %q is not a transport name", t))
		}
	}
	if c.WebPort < 0 || c.WebPort > 65535 {
		errs = append(errs, fmt.Errorf("key web_port: %d is not a port", c.WebPort))
	}
	if (c.WebUsername == "") != (c.WebPassword == "") {
		errs = append(errs, errors.New("key web_username: web_username and web_password go together"))
	}
	for key, u := range map[string]string{"inbound_url": c.InboundURL, "event_url": c.EventURL} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("key %s: %q is not an http(s) URL", key, u))
		}
	}
	if c.CallbackMaxRetries < 0 || c.CallbackTimeout < 0 || c.CallbackBackoff < 0 {
		errs = append(errs, errors.New("key callback_max_retries: callback settings must not be negative"))
	}
	return errors.Join(errs...)
}

// SendsTopic is where send requests wait for the processor.
func SendsTopic(worker string) string { return worker + ".sends" }

// IO implements topology.WorkerConfig.
func (c *Config) IO(name string) topology.IO {
	table := string(goka.GroupTable(goka.Group(name)))
	sends := SendsTopic(name)
	io := topology.IO{
		Consumes: []topology.Stream{{Topic: sends, Kind: "user_message"}, {Topic: table, Kind: "state", Compacted: true}},
		Produces: []topology.Stream{{Topic: sends, Kind: "user_message"}, {Topic: table, Kind: "state", Compacted: true}},
	}
	group := []string{sends, table}
	for _, t := range c.Transports {
		io.Consumes = append(io.Consumes,
			topology.Stream{Topic: t + topology.SuffixEvent, Kind: "event"},
			topology.Stream{Topic: t + topology.SuffixInbound, Kind: "user_message"})
		io.Produces = append(io.Produces,
			topology.Stream{Topic: t + topology.SuffixOutbound, Kind: "user_message"},
			topology.Stream{Topic: t + topology.SuffixFailures, Kind: "failure"})
		group = append(group, t+topology.SuffixEvent)
	}
	io.CoPartitioned = [][]string{group}
	return io
}

// Kind is the send API worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "http_send_api", Role: topology.RoleApplication,
		Summary:   "HTTP API to send messages through transports, query delivery status and get inbound and events on callbacks",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				b, err := worker.NewBase(deps, spec, cfg.Common)
				if err != nil {
					return err
				}
				defer b.Close()
				return (&API{Base: b, cfg: cfg}).Run(ctx)
			}), nil
		},
	}
}

// Record is what the API keeps about a message it sent. Its JSON (the
// table's value and the status answer) has events before status: an
// event is added by splicing (see addEvent), without decoding the record.
type Record struct {
	MessageID     string        `json:"message_id"`
	TransportName string        `json:"transport_name"`
	ToAddr        string        `json:"to_addr"`
	Submitted     string        `json:"submitted_at"`
	Events        []EventRecord `json:"events"`
	Status        string        `json:"status"`
}

// EventRecord is one event about a message.
type EventRecord struct {
	EventType      string `json:"event_type"`
	DeliveryStatus string `json:"delivery_status,omitempty"`
	NackReason     string `json:"nack_reason,omitempty"`
	SentMessageID  string `json:"sent_message_id,omitempty"`
	Timestamp      string `json:"timestamp"`
}

// API is a running send API.
type API struct {
	*worker.Base
	cfg   *Config
	proc  *goka.Processor
	group goka.Group
	sends string
	ln    net.Listener
	// partitions of the group table (and of the inputs co-partitioned
	// with it).
	partitions int32

	// owned: the partitions of this instance's latest assignment (from
	// goka's rebalance callback).
	ownMu sync.Mutex
	owned []bool

	// view: a view of the whole table, started only once another
	// instance holds some of its partitions (see rebalanced), then kept
	// running. nil until then.
	view       atomic.Pointer[goka.View]
	viewOnce   sync.Once
	viewStarts atomic.Int32
	runCtx     context.Context
	errs       chan error
	running    sync.WaitGroup

	// waiting: send requests waiting for their record to become readable
	// here (message id -> closed when this instance's processor or view
	// has written it).
	waitMu  sync.Mutex
	waiting map[string]chan struct{}
}

// Addr is the listening address once the API runs.
func (a *API) Addr() net.Addr { return a.ln.Addr() }

// Run serves until ctx is cancelled.
func (a *API) Run(ctx context.Context) error {
	a.sends = a.Deps.Names.Prefix + SendsTopic(a.Name)
	a.group = goka.Group(a.Deps.Names.Prefix + a.Name)
	a.waiting = map[string]chan struct{}{}
	var err error
	if a.partitions, err = a.tablePartitions(ctx); err != nil {
		return err
	}
	if a.proc, err = a.NewProcessor(a.graph(a.group), goka.WithRebalanceCallback(a.rebalanced)); err != nil {
		return err
	}
	addr := net.JoinHostPort(a.cfg.WebInterface, strconv.Itoa(a.cfg.WebPort))
	if a.ln, err = net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("send api: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 30 * time.Second}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.runCtx = runCtx
	a.errs = make(chan error, 8)
	a.running.Add(1)
	go func() {
		defer a.running.Done()
		a.errs <- a.proc.Run(runCtx)
	}()
	go func() { a.errs <- a.runCallbacks(runCtx) }()
	go func() {
		if err := srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.errs <- err
		}
	}()
	go a.RunHeartbeat(runCtx)
	a.Log.Info("send api listening", "addr", a.ln.Addr().String(), "path", a.cfg.WebPath, "transports", a.cfg.Transports)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-a.errs:
	}
	// Requests first (a send under way waits for its record, which needs
	// the processor), so that no status read meets a table goka closes.
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = srv.Shutdown(shutdown)
	cancel()
	// The processor and the view close their tables before Run returns.
	stopped := make(chan struct{})
	go func() { a.running.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		a.Log.Warn("status table did not close within 20s of the stop")
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return fmt.Errorf("send api %s: %w", a.Name, runErr)
	}
	return nil
}

// tablePartitions is the partition count of the group table (created by
// the topology before the workers start).
func (a *API) tablePartitions(ctx context.Context) (int32, error) {
	table := string(goka.GroupTable(a.group))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tds, err := kadm.NewClient(a.Client).ListTopics(ctx, table)
	if err != nil {
		return 0, fmt.Errorf("send api: partitions of %s: %w", table, err)
	}
	td, ok := tds[table]
	if !ok || td.Err != nil || len(td.Partitions) == 0 {
		return 0, fmt.Errorf("send api: partitions of %s unknown: %v", table, td.Err)
	}
	return int32(len(td.Partitions)), nil
}

// rebalanced records the processor's new assignment (goka calls it at the
// start of every generation, before the assigned partitions are set up).
// An assignment that does not cover every partition means another
// instance holds some: the view of the whole table is started then, and
// kept running (ownership can move back and forth).
func (a *API) rebalanced(as goka.Assignment) {
	goka.DefaultRebalance(as)
	owned := make([]bool, a.partitions)
	all := true
	for p := range as {
		if p >= 0 && p < a.partitions {
			owned[p] = true
		}
	}
	for _, o := range owned {
		all = all && o
	}
	a.ownMu.Lock()
	a.owned = owned
	a.ownMu.Unlock()
	if !all {
		a.startView(len(as))
	}
}

// startView starts the view of the whole table, once.
func (a *API) startView(assigned int) {
	a.viewOnce.Do(func() {
		a.viewStarts.Add(1)
		a.Count("status_view_started", 1)
		a.Log.Info("another instance holds some of the status table's partitions: starting a view of the whole table for their status queries",
			"assigned", assigned, "partitions", a.partitions)
		// The callback runs inside the processor's Run, which holds a
		// count of a.running: Add cannot race Run's Wait.
		a.running.Add(1)
		go func() {
			defer a.running.Done()
			// Reconnecting: a view that stopped on a Kafka outage would
			// close its copy under the status reads.
			v, err := a.NewView(goka.GroupTable(a.group), new(gokacodec.Bytes), goka.WithViewCallback(a.viewUpdated), goka.WithViewAutoReconnect())
			if err != nil {
				a.errs <- err
				return
			}
			a.view.Store(v)
			a.errs <- v.Run(a.runCtx)
		}()
	})
}

// ownsPartitionOf says whether this instance's latest assignment holds
// key's partition.
func (a *API) ownsPartitionOf(key string) bool {
	p := kafka.Partition([]byte(key), a.partitions)
	a.ownMu.Lock()
	defer a.ownMu.Unlock()
	return int(p) < len(a.owned) && a.owned[p]
}

// isNotAssigned recognises goka's error for a key whose partition this
// processor does not hold ((*Processor).find in goka v1.1.15; pinned by
// TestNotAssignedError).
func isNotAssigned(err error) bool {
	return err != nil && strings.Contains(err.Error(), "processor does not contain partition")
}

// localGet reads id's record from this instance's own processor table.
// local is false when that table does not hold id's partition here (now
// or any more: a rebalance may be under way); err is a real storage error.
func (a *API) localGet(id string) (rec []byte, local bool, err error) {
	if a.proc == nil || !a.ownsPartitionOf(id) || !a.proc.Recovered() {
		return nil, false, nil
	}
	defer func() {
		// goka swaps a processor's partition tables during a rebalance
		// without holding its lock over the storage they open; a read
		// that lost that race is a read of a partition not held here.
		if r := recover(); r != nil {
			rec, local, err = nil, false, nil
		}
	}()
	v, err := a.proc.Get(id)
	if err != nil {
		if isNotAssigned(err) || !a.proc.Recovered() {
			return nil, false, nil // revoked meanwhile
		}
		return nil, true, err
	}
	b, _ := v.([]byte)
	return b, true, nil
}

// errNotReady: the status store cannot answer yet.
type errNotReady struct{ reason string }

func (e errNotReady) Error() string { return e.reason }

// lookup returns id's record (nil: none): from the processor's own table
// when this instance holds id's partition, otherwise from the view.
func (a *API) lookup(id string) ([]byte, error) {
	if rec, local, err := a.localGet(id); local {
		return rec, err
	}
	v := a.view.Load()
	if v == nil {
		if a.proc == nil || !a.proc.Recovered() {
			return nil, errNotReady{"the status table is recovering"}
		}
		return nil, errNotReady{"this message's partition is held by another instance and this instance's view of the table is starting"}
	}
	val, err := v.Get(id)
	if err != nil {
		return nil, errNotReady{err.Error()}
	}
	rec, _ := val.([]byte)
	if rec == nil && !v.Recovered() {
		return nil, errNotReady{"the view of the status table is recovering"}
	}
	return rec, nil
}

// tablesRecovered: the processor's table is recovered and running, and
// so is the view if it was started.
func (a *API) tablesRecovered() bool {
	if a.proc == nil || !a.proc.Recovered() {
		return false
	}
	v := a.view.Load()
	return a.viewStarts.Load() == 0 || (v != nil && v.Recovered())
}

// viewUpdated applies a table update to the view and wakes the send
// request waiting for that key, if any.
func (a *API) viewUpdated(ctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
	err := goka.DefaultUpdate(ctx, s, key, value)
	a.wake(key)
	return err
}

// wake wakes the send request waiting for id's record, if any.
func (a *API) wake(id string) {
	a.waitMu.Lock()
	if ch, ok := a.waiting[id]; ok {
		close(ch)
		delete(a.waiting, id)
	}
	a.waitMu.Unlock()
}

// awaitRecord returns a channel closed when this instance's processor
// (for its own partitions) or its view (for the others) next writes id's
// record, and a function that stops waiting.
func (a *API) awaitRecord(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	a.waitMu.Lock()
	a.waiting[id] = ch
	a.waitMu.Unlock()
	return ch, func() {
		a.waitMu.Lock()
		if a.waiting[id] == ch {
			delete(a.waiting, id)
		}
		a.waitMu.Unlock()
	}
}

// graph: sends become outbound messages and records; events update them.
func (a *API) graph(group goka.Group) *goka.GroupGraph {
	um := schemas.GokaCodec[schemas.UserMessage]{C: a.Deps.Codecs.UserMessage}
	edges := []goka.Edge{goka.Input(goka.Stream(a.sends), new(gokacodec.Bytes), a.onSend)}
	for _, t := range a.cfg.Transports {
		n := a.Deps.Names
		edges = append(edges,
			goka.Input(goka.Stream(n.Event(t)), new(gokacodec.Bytes), a.onEvent),
			goka.Output(goka.Stream(n.Outbound(t)), um),
			goka.Output(goka.Stream(n.Failures(t)), schemas.GokaCodec[schemas.Failure]{C: a.Deps.Codecs.Failure}))
	}
	edges = append(edges, goka.Persist(new(gokacodec.Bytes)))
	return goka.DefineGroup(group, edges...)
}

func (a *API) onSend(g goka.Context, v any) {
	raw, _ := v.([]byte)
	var m schemas.UserMessage
	// Undecodable: held while the registry is unreachable, otherwise to
	// the first transport's failures topic with its bytes.
	if !worker.DecodeInProcessor(a.Base, g, a.Deps.Codecs.UserMessage, raw, &m, a.cfg.Transports[0], schemas.TypeUserMessage) {
		return
	}
	if g.Value() != nil {
		// Already sent: a redelivered request. Its record is readable here
		// (a request waiting for it, say after a rebalance, is answered).
		a.wake(g.Key())
		return
	}
	g.SetValue(newRecordJSON(m.MessageID, m.Transport(), m.To(), schemas.FormatVumiTime(m.Timestamp)))
	// goka has written the record to this partition's local table
	// (synchronously; the changelog follows): the request waiting for it
	// can answer, and a status query here reads it with Processor.Get.
	a.wake(g.Key())
	g.Emit(goka.Stream(a.Deps.Names.Outbound(m.Transport())), string(topology.OutboundKey(&m)), &m)
	a.Count("sent", 1)
}

func (a *API) onEvent(g goka.Context, v any) {
	raw, _ := v.([]byte)
	var e schemas.Event
	if !worker.DecodeInProcessor(a.Base, g, a.Deps.Codecs.Event, raw, &e, a.eventTransport(string(g.Topic())), schemas.TypeEvent) {
		return
	}
	cur, _ := g.Value().([]byte)
	if cur == nil {
		return // not one of ours
	}
	er := EventRecord{EventType: string(e.EventType), Timestamp: schemas.FormatVumiTime(e.Timestamp)}
	if e.DeliveryStatus != nil {
		er.DeliveryStatus = string(*e.DeliveryStatus)
	}
	if e.NackReason != nil {
		er.NackReason = *e.NackReason
	}
	if e.SentMessageID != nil {
		er.SentMessageID = *e.SentMessageID
	}
	b, err := addEvent(cur, &er, &e)
	if err != nil {
		a.Log.Error("corrupt record", "message_id", e.UserMessageID, "error", err)
		return
	}
	g.SetValue(b)
}

// eventTransport is the transport whose events topic is topic.
func (a *API) eventTransport(topic string) string {
	for _, t := range a.cfg.Transports {
		if a.Deps.Names.Event(t) == topic {
			return t
		}
	}
	return a.cfg.Transports[0]
}

// statusAfter folds an event into a message's status: a delivery report
// is final over an ack; an ack or nack settles a submitted message.
func statusAfter(cur string, e *schemas.Event) string {
	switch e.EventType {
	case schemas.EventAck:
		if cur == "submitted" {
			return "ack"
		}
	case schemas.EventNack:
		if cur == "submitted" || cur == "ack" {
			return "nack"
		}
	case schemas.EventDeliveryReport:
		if e.DeliveryStatus != nil {
			return string(*e.DeliveryStatus)
		}
	}
	return cur
}

// health is the /health answer: tables_recovered says whether status
// queries can be answered (the processor's table recovered, and the view
// too if it runs); status_view whether this instance runs a view of the
// whole table (only when other instances hold some of its partitions);
// partitions_owned the table partitions this instance holds.
func (a *API) health() map[string]any {
	view := "not started"
	if a.viewStarts.Load() > 0 {
		view = "starting"
		if v := a.view.Load(); v != nil {
			view = "recovering"
			if v.Recovered() {
				view = "running"
			}
		}
	}
	a.ownMu.Lock()
	owned := []int32{}
	for p, o := range a.owned {
		if o {
			owned = append(owned, int32(p))
		}
	}
	a.ownMu.Unlock()
	return map[string]any{"status": "ok", "tables_recovered": a.tablesRecovered(), "status_view": view,
		"partitions_owned": owned, "partitions": a.partitions}
}

func (a *API) authorized(r *http.Request) bool {
	if a.cfg.WebUsername == "" {
		return true
	}
	u, p, ok := r.BasicAuth()
	return ok && subtle.ConstantTimeCompare([]byte(u), []byte(a.cfg.WebUsername)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(a.cfg.WebPassword)) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string, fields map[string]string) {
	body := map[string]any{"error": msg}
	if len(fields) > 0 {
		body["fields"] = fields
	}
	writeJSON(w, status, body)
}

func (a *API) routes() http.Handler {
	mux := http.NewServeMux()
	p := a.cfg.WebPath
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, a.health())
	})
	mux.HandleFunc("POST "+p+"/transports/{transport}/messages", a.send)
	mux.HandleFunc("GET "+p+"/messages/{id}", a.status)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" && !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="vumi send api"`)
			writeError(w, http.StatusUnauthorized, "authentication required", nil)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// sendRequest is the POST body.
type sendRequest struct {
	ToAddr         *string        `json:"to_addr"`
	Content        *string        `json:"content"`
	FromAddr       *string        `json:"from_addr"`
	SessionEvent   *string        `json:"session_event"`
	InReplyTo      *string        `json:"in_reply_to"`
	HelperMetadata map[string]any `json:"helper_metadata"`
}

// decodeSendRequest decodes a POST body as encoding/json does (unknown
// fields refused, numbers in helper_metadata kept as json.Number): the
// usual body (known keys, plain strings) without reflection, anything
// else through encoding/json. FuzzDecodeSendRequest checks they agree.
func decodeSendRequest(body []byte) (sendRequest, error) {
	if req, ok := decodeSendRequestFast(body); ok {
		return req, nil
	}
	return decodeSendRequestJSON(body)
}

// decodeSendRequestJSON is decodeSendRequest through encoding/json.
func decodeSendRequestJSON(body []byte) (sendRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req sendRequest
	err := dec.Decode(&req)
	return req, err
}

func decodeSendRequestFast(body []byte) (req sendRequest, ok bool) {
	obj, ok := schemas.ParseJSONObject(body)
	if !ok {
		return req, false
	}
	for k, v := range obj {
		var dst **string
		switch k {
		case "to_addr":
			dst = &req.ToAddr
		case "content":
			dst = &req.Content
		case "from_addr":
			dst = &req.FromAddr
		case "session_event":
			dst = &req.SessionEvent
		case "in_reply_to":
			dst = &req.InReplyTo
		case "helper_metadata":
			switch hm := v.(type) {
			case nil:
			case map[string]any:
				req.HelperMetadata = hm
			default:
				return req, false
			}
			continue
		default:
			return req, false // unknown, or a key in another case: encoding/json decides
		}
		switch s := v.(type) {
		case nil:
		case string:
			*dst = &s
		default:
			return req, false
		}
	}
	return req, true
}

func (a *API) send(w http.ResponseWriter, r *http.Request) {
	transport := r.PathValue("transport")
	known := false
	for _, t := range a.cfg.Transports {
		known = known || t == transport
	}
	if !known {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown transport %q (this API sends through %s)", transport, strings.Join(a.cfg.Transports, ", ")), nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error(), nil)
		return
	}
	req, err := decodeSendRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error(), nil)
		return
	}
	fields := map[string]string{}
	if req.ToAddr == nil || *req.ToAddr == "" {
		fields["to_addr"] = "is required"
	}
	m := schemas.NewUserMessage()
	m.ToAddr, m.Content, m.FromAddr, m.InReplyTo = req.ToAddr, req.Content, req.FromAddr, req.InReplyTo
	m.TransportName = schemas.String(transport)
	m.HelperMetadata = req.HelperMetadata
	if req.SessionEvent != nil {
		if err := m.SetString("session_event", *req.SessionEvent); err != nil {
			fields["session_event"] = "must be new, resume or close"
		}
	}
	if len(fields) > 0 {
		writeError(w, http.StatusBadRequest, "invalid message", fields)
		return
	}
	// Read your writes: wait (briefly) until the status can be queried
	// here. No polling: when this instance's processor holds the id's
	// partition, its onSend wakes the request once the record is in the
	// local table; otherwise the view's update callback does. The wait
	// is registered before the produce, so no write can be missed; a
	// partition moving meanwhile ends in a write by the new owner (here)
	// or the view, and at worst in the 5 s bound.
	written, stopWaiting := a.awaitRecord(m.MessageID)
	defer stopWaiting()
	if err := worker.Produce(r.Context(), a.Base, a.Deps.Codecs.UserMessage, a.sends, []byte(m.MessageID), m); err != nil {
		a.Log.Error("send request not stored", "error", err)
		writeError(w, http.StatusServiceUnavailable, "message not accepted, try again", nil)
		return
	}
	t := time.NewTimer(5 * time.Second)
	select {
	case <-written:
	case <-t.C:
	case <-r.Context().Done():
	}
	t.Stop()
	js, _ := m.MarshalJSON()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", a.cfg.WebPath+"/messages/"+m.MessageID)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(js)
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	b, err := a.lookup(r.PathValue("id"))
	var notReady errNotReady
	switch {
	case errors.As(err, &notReady):
		writeError(w, http.StatusServiceUnavailable, "status store not ready: "+err.Error(), nil)
		return
	case err != nil:
		a.Log.Error("status table read failed", "message_id", r.PathValue("id"), "error", err)
		writeError(w, http.StatusInternalServerError, "status store error", nil)
		return
	}
	if b == nil {
		writeError(w, http.StatusNotFound, "no message with this id was sent through this API", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
