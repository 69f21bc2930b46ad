// Package management is the management plane of a deployment: the
// control topic holding the channels and routers created at run time, the
// reconciler that makes every process run them (Vumi's supervisor worker
// acting on control messages), the management HTTP API and the dashboard.
package management

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/internal/kvtopic"
	"github.com/vumi-kafka/vumi/topology"
)

// Entry types: what an entry of the control topic is.
const (
	TypeChannel = "channel"
	TypeRouter  = "router"
)

// roleOf is the worker role an entry type must have.
var roleOf = map[string]topology.Role{TypeChannel: topology.RoleTransport, TypeRouter: topology.RoleDispatcher}

// Entry is one channel or router of the control topic (key
// "<type>/<id>", value this as JSON; a tombstone deletes it).
type Entry struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Config is the worker's keys, as in a config file's worker entry
	// (without name and kind).
	Config json.RawMessage `json:"config"`
	// Label and Metadata are the operator's, kept as given.
	Label    string          `json:"label,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// Generation grows on each restart request, so that every process
	// restarts the worker.
	Generation int64     `json:"generation"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Key is the entry's control topic key.
func (e *Entry) Key() string { return e.Type + "/" + e.ID }

// Fingerprint identifies what the worker runs with: a change restarts it.
func (e *Entry) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", e.Kind, e.ID, e.Generation)
	h.Write(e.Config)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Spec validates the entry as a worker of the registry (the same
// validation as a config file) and checks its role.
func (e *Entry) Spec(reg *topology.Registry) (*topology.WorkerSpec, error) {
	spec, err := topology.LoadWorker(reg, e.ID, e.Kind, e.Config)
	if err != nil {
		return nil, err
	}
	if want := roleOf[e.Type]; spec.Kind.Role != want {
		var known []string
		known = reg.KindNamesOf(want)
		return nil, fmt.Errorf("worker %s: kind %s is a %s, not a %s (a %s is one of: %s)", e.ID, e.Kind, spec.Kind.Role, want, e.Type, strings.Join(known, ", "))
	}
	return spec, nil
}

// Control is the control topic of a deployment, followed by this process.
type Control struct {
	store *kvtopic.Store
}

// OpenControl loads the control topic (which Prepare created) and follows it.
func OpenControl(ctx context.Context, rt *topology.Runtime) (*Control, error) {
	st, err := kvtopic.Open(ctx, rt.Config.ControlTopic(), rt.Deps.KafkaOpts("control"), rt.Logger)
	if err != nil {
		return nil, err
	}
	return &Control{store: st}, nil
}

// Close stops following.
func (c *Control) Close() error { return c.store.Close() }

// Changed fires after a change of any process.
func (c *Control) Changed() <-chan struct{} { return c.store.Changed() }

// Entries returns every entry, sorted by key; undecodable values are
// returned as errors by key.
func (c *Control) Entries() ([]*Entry, map[string]error) {
	snap := c.store.Snapshot()
	keys := make([]string, 0, len(snap))
	for k := range snap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*Entry
	bad := map[string]error{}
	for _, k := range keys {
		var e Entry
		if err := json.Unmarshal(snap[k], &e); err != nil {
			bad[k] = fmt.Errorf("control topic key %s: %w", k, err)
			continue
		}
		if e.Key() != k {
			bad[k] = fmt.Errorf("control topic key %s: value is for %s", k, e.Key())
			continue
		}
		out = append(out, &e)
	}
	return out, bad
}

// Get returns one entry.
func (c *Control) Get(typ, id string) (*Entry, bool) {
	v, ok := c.store.Get(typ + "/" + id)
	if !ok {
		return nil, false
	}
	var e Entry
	if json.Unmarshal(v, &e) != nil {
		return nil, false
	}
	return &e, true
}

// Put writes an entry (acked by the broker before it returns).
func (c *Control) Put(ctx context.Context, e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return c.store.Put(ctx, e.Key(), b)
}

// Delete writes a tombstone.
func (c *Control) Delete(ctx context.Context, typ, id string) error {
	return c.store.Delete(ctx, typ+"/"+id)
}

// Reconciler makes this process's supervisor run exactly the control
// topic's channels and routers, each with its current config.
type Reconciler struct {
	rt      *topology.Runtime
	control *Control
	log     *slog.Logger
	// Interval between full reconciliations besides those on change
	// (which retry workers that could not start); default 5s.
	Interval time.Duration

	mu       sync.Mutex
	problems map[string]string // id -> why it is not running here
}

// NewReconciler returns the reconciler of a process.
func NewReconciler(rt *topology.Runtime, c *Control) *Reconciler {
	return &Reconciler{rt: rt, control: c, log: rt.Logger.With("component", "reconciler"), Interval: 5 * time.Second, problems: map[string]string{}}
}

// Run reconciles on every change until ctx is done.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		r.Reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-r.control.Changed():
		case <-t.C:
		}
	}
}

// Problems returns why entries are not running in this process, by id.
func (r *Reconciler) Problems() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.problems))
	for k, v := range r.problems {
		out[k] = v
	}
	return out
}

// Reconcile starts, restarts and stops dynamic workers once.
func (r *Reconciler) Reconcile(ctx context.Context) {
	entries, bad := r.control.Entries()
	problems := map[string]string{}
	for k, err := range bad {
		problems[k] = err.Error()
	}
	sup := r.rt.Supervisor
	want := map[string]bool{}
	for _, e := range entries {
		if _, static := r.rt.Config.Worker(e.ID); static {
			problems[e.ID] = "a worker of the config file has this name; it is not started"
			continue
		}
		want[e.ID] = true
		fp := e.Fingerprint()
		if cur, ok := sup.Fingerprint(e.ID); ok && cur == fp {
			continue
		}
		if err := r.start(ctx, e, fp); err != nil {
			problems[e.ID] = err.Error()
			r.log.Error("channel or router not started", "id", e.ID, "type", e.Type, "error", err)
		}
	}
	for _, st := range sup.States() {
		if st.Dynamic && !want[st.Name] {
			r.log.Info("stopping a worker removed from the control topic", "worker", st.Name)
			sup.Stop(st.Name)
		}
	}
	r.mu.Lock()
	r.problems = problems
	r.mu.Unlock()
}

func (r *Reconciler) start(ctx context.Context, e *Entry, fp string) error {
	spec, err := e.Spec(r.rt.Deps.Kinds)
	if err != nil {
		return err
	}
	// The worker's topics: created if missing, schemas registered with
	// this process's codecs.
	if err := topology.Prepare(ctx, r.rt.Deps, topology.BuildGraph(r.rt.Config.Only(spec)), r.log); err != nil {
		return err
	}
	if err := r.rt.Supervisor.Ensure(spec, fp, true); err != nil {
		if errors.Is(err, topology.ErrWorkerRunning) {
			return nil
		}
		return err
	}
	r.log.Info("started a worker of the control topic", "worker", e.ID, "type", e.Type, "kind", e.Kind)
	return nil
}
