package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"time"
)

// Supervisor runs a process's workers (Vumi's supervisor worker, from the
// Dynamic Workers roadmap): it starts and stops workers by name while the
// process runs, restarts one that returns an error or panics with
// exponential backoff, and reports each of these events. A panic is
// recovered per worker, so one misbehaving worker cannot take the others
// in its process down.
type Supervisor struct {
	deps *Deps
	log  *slog.Logger
	// OnEvent, if set, is told of every start, stop, failure and restart
	// (Run publishes them to vumi.status). Set it before the first Start.
	OnEvent func(SupervisorEvent)
	// MinBackoff and MaxBackoff bound the restart delay, which doubles
	// from MinBackoff on each failure in a row (default 1 s to 30 s); a
	// worker that ran for a minute before failing starts again from
	// MinBackoff.
	MinBackoff, MaxBackoff time.Duration

	ctx context.Context
	mu  sync.Mutex
	ws  map[string]*supervised
	wg  sync.WaitGroup
}

// SupervisorEvent is something that happened to a supervised worker.
type SupervisorEvent struct {
	Worker string
	// Type is started, stopped, failed (with Err and the Backoff before
	// the next attempt) or restarted.
	Type     string
	Err      error
	Backoff  time.Duration
	Restarts int
	Dynamic  bool
}

// Supervisor event types.
const (
	EventStarted   = "started"
	EventStopped   = "stopped"
	EventFailed    = "failed"
	EventRestarted = "restarted"
)

type supervised struct {
	spec        *WorkerSpec
	fingerprint string
	dynamic     bool
	cancel      context.CancelFunc
	done        chan struct{}

	mu        sync.Mutex
	state     string
	restarts  int
	lastErr   string
	lastErrAt time.Time
	since     time.Time
}

// WorkerState is a supervised worker as the supervisor sees it.
type WorkerState struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Role Role   `json:"role"`
	// State is running, backoff (waiting to restart after a failure) or
	// stopping.
	State string `json:"state"`
	// Dynamic workers were started at run time (from the control topic),
	// not from the config file.
	Dynamic     bool      `json:"dynamic"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Restarts    int       `json:"restarts"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Since       time.Time `json:"since"`
}

// NewSupervisor returns a supervisor whose workers run until ctx is done.
func NewSupervisor(ctx context.Context, deps *Deps, log *slog.Logger) *Supervisor {
	if log == nil {
		log = slog.Default()
	}
	return &Supervisor{deps: deps, log: log, ctx: ctx, ws: map[string]*supervised{}, MinBackoff: time.Second, MaxBackoff: 30 * time.Second}
}

// ErrWorkerRunning is returned by Start for a name already running.
var ErrWorkerRunning = errors.New("a worker of that name is already running")

// Start builds and starts the worker of spec. fingerprint identifies its
// config (Ensure restarts a worker whose fingerprint changed); dynamic
// marks a worker started at run time. A build error is returned and
// nothing runs.
func (s *Supervisor) Start(spec *WorkerSpec, fingerprint string, dynamic bool) error {
	return s.start(spec, nil, fingerprint, dynamic)
}

// StartBuilt starts a worker built already (Run builds every worker of the
// config before it starts any).
func (s *Supervisor) StartBuilt(spec *WorkerSpec, w Worker, fingerprint string, dynamic bool) error {
	return s.start(spec, w, fingerprint, dynamic)
}

func (s *Supervisor) start(spec *WorkerSpec, w Worker, fingerprint string, dynamic bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ws[spec.Name]; ok {
		return fmt.Errorf("worker %s: %w", spec.Name, ErrWorkerRunning)
	}
	if s.ctx.Err() != nil {
		return fmt.Errorf("worker %s: the process is stopping", spec.Name)
	}
	if w == nil {
		var err error
		if w, err = s.build(spec); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	sw := &supervised{spec: spec, fingerprint: fingerprint, dynamic: dynamic, cancel: cancel, done: make(chan struct{}), state: "running", since: time.Now()}
	s.ws[spec.Name] = sw
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(sw.done)
		s.supervise(ctx, sw, w)
	}()
	s.emit(SupervisorEvent{Worker: spec.Name, Type: EventStarted, Dynamic: dynamic})
	return nil
}

// build makes a worker, turning a panic in the kind's Build into an error.
func (s *Supervisor) build(spec *WorkerSpec) (w Worker, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("worker %s: build panicked: %v", spec.Name, r)
		}
	}()
	w, err = spec.Kind.Build(s.deps, spec)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", spec.Name, err)
	}
	return w, nil
}

// Stop stops the worker called name, waiting for it to drain its
// in-flight work. It reports whether such a worker was running.
func (s *Supervisor) Stop(name string) bool {
	s.mu.Lock()
	sw, ok := s.ws[name]
	if ok {
		sw.mu.Lock()
		sw.state = "stopping"
		sw.mu.Unlock()
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	sw.cancel()
	<-sw.done
	s.mu.Lock()
	if s.ws[name] == sw {
		delete(s.ws, name)
	}
	s.mu.Unlock()
	s.emit(SupervisorEvent{Worker: name, Type: EventStopped, Dynamic: sw.dynamic})
	return true
}

// Ensure makes the worker of spec run with this fingerprint: it starts
// it if it is not running, restarts it if it runs with another
// fingerprint, and leaves it alone otherwise.
func (s *Supervisor) Ensure(spec *WorkerSpec, fingerprint string, dynamic bool) error {
	s.mu.Lock()
	sw, ok := s.ws[spec.Name]
	s.mu.Unlock()
	if ok && sw.fingerprint == fingerprint {
		return nil
	}
	if ok {
		s.Stop(spec.Name)
	}
	return s.Start(spec, fingerprint, dynamic)
}

// Fingerprint returns the fingerprint the worker called name runs with.
func (s *Supervisor) Fingerprint(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sw, ok := s.ws[name]
	if !ok {
		return "", false
	}
	return sw.fingerprint, true
}

// States returns every supervised worker, sorted by name.
func (s *Supervisor) States() []WorkerState {
	s.mu.Lock()
	list := make([]*supervised, 0, len(s.ws))
	for _, sw := range s.ws {
		list = append(list, sw)
	}
	s.mu.Unlock()
	out := make([]WorkerState, 0, len(list))
	for _, sw := range list {
		sw.mu.Lock()
		out = append(out, WorkerState{
			Name: sw.spec.Name, Kind: sw.spec.Kind.Name, Role: sw.spec.Kind.Role, State: sw.state,
			Dynamic: sw.dynamic, Fingerprint: sw.fingerprint, Restarts: sw.restarts,
			LastError: sw.lastErr, LastErrorAt: sw.lastErrAt, Since: sw.since,
		})
		sw.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Specs returns the specs of the running workers.
func (s *Supervisor) Specs() []*WorkerSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*WorkerSpec, 0, len(s.ws))
	for _, sw := range s.ws {
		out = append(out, sw.spec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Wait returns once every worker has stopped (after the supervisor's
// context is done, or every worker was stopped).
func (s *Supervisor) Wait() { s.wg.Wait() }

func (s *Supervisor) emit(ev SupervisorEvent) {
	if s.OnEvent != nil {
		s.OnEvent(ev)
	}
}

// supervise runs w until ctx is cancelled, restarting it with backoff
// when it returns an error or panics.
func (s *Supervisor) supervise(ctx context.Context, sw *supervised, w Worker) {
	name := sw.spec.Name
	log := s.deps.WorkerLogger(name)
	minB, maxB := s.MinBackoff, s.MaxBackoff
	if minB <= 0 {
		minB = time.Second
	}
	if maxB < minB {
		maxB = minB
	}
	backoff := minB
	for {
		started := time.Now()
		err := runSafely(ctx, w)
		if ctx.Err() != nil {
			if err != nil {
				log.Warn("worker stopped with an error", "error", err)
			}
			return
		}
		if err == nil {
			err = errors.New("returned before shutdown")
		}
		if time.Since(started) > time.Minute {
			backoff = minB
		}
		sw.mu.Lock()
		sw.state = "backoff"
		sw.restarts++
		sw.lastErr, sw.lastErrAt = err.Error(), time.Now()
		restarts := sw.restarts
		sw.mu.Unlock()
		var pe *PanicError
		if errors.As(err, &pe) {
			log.Error("worker panicked; restarting", "error", err, "in", backoff, "stack", pe.Stack)
		} else {
			log.Error("worker failed; restarting", "error", err, "in", backoff)
		}
		s.emit(SupervisorEvent{Worker: name, Type: EventFailed, Err: err, Backoff: backoff, Restarts: restarts, Dynamic: sw.dynamic})
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		sw.mu.Lock()
		if sw.state == "backoff" {
			sw.state = "running"
		}
		sw.since = time.Now()
		sw.mu.Unlock()
		s.emit(SupervisorEvent{Worker: name, Type: EventRestarted, Restarts: restarts, Dynamic: sw.dynamic})
		backoff = min(backoff*2, maxB)
	}
}

// PanicError is a worker's panic, recovered by the supervisor.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// runSafely runs w, turning a panic into a *PanicError so that it is
// restarted like any other failure.
func runSafely(ctx context.Context, w Worker) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: string(debug.Stack())}
		}
	}()
	return w.Run(ctx)
}
