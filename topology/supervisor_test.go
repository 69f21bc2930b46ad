package topology

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type nopConfig struct{}

func (nopConfig) Validate() error { return nil }
func (nopConfig) IO(string) IO    { return IO{} }
func testDeps() *Deps             { return &Deps{Logger: slog.New(slog.DiscardHandler)} }
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type eventLog struct {
	mu  sync.Mutex
	evs []SupervisorEvent
}

func (l *eventLog) add(ev SupervisorEvent) { l.mu.Lock(); l.evs = append(l.evs, ev); l.mu.Unlock() }
func (l *eventLog) count(worker, typ string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ev := range l.evs {
		if ev.Worker == worker && ev.Type == typ {
			n++
		}
	}
	return n
}

// TestSupervisorRestartsAndIsolates: a worker that panics and then returns
// an error is restarted each time with growing backoff and reported, while
// a healthy worker of the same supervisor runs on untouched.
func TestSupervisorRestartsAndIsolates(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sup := NewSupervisor(ctx, testDeps(), nil)
	sup.MinBackoff, sup.MaxBackoff = 20*time.Millisecond, 80*time.Millisecond
	var evs eventLog
	sup.OnEvent = evs.add

	var attempts atomic.Int32
	bad := &Kind{Name: "bad", Role: RoleTransport, NewConfig: func() WorkerConfig { return nopConfig{} },
		Build: func(*Deps, *WorkerSpec) (Worker, error) {
			return WorkerFunc(func(ctx context.Context) error {
				switch attempts.Add(1) {
				case 1:
					panic("boom")
				case 2:
					return errors.New("connection lost")
				case 3:
					return nil // returning before shutdown is a failure too
				}
				<-ctx.Done()
				return nil
			}), nil
		}}
	var goodRuns, goodStopped atomic.Int32
	good := &Kind{Name: "good", Role: RoleApplication, NewConfig: func() WorkerConfig { return nopConfig{} },
		Build: func(*Deps, *WorkerSpec) (Worker, error) {
			return WorkerFunc(func(ctx context.Context) error {
				goodRuns.Add(1)
				<-ctx.Done()
				goodStopped.Add(1)
				return nil
			}), nil
		}}
	if err := sup.Start(&WorkerSpec{Name: "g", Kind: good, Config: nopConfig{}}, "", false); err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(&WorkerSpec{Name: "b", Kind: bad, Config: nopConfig{}}, "v1", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three restarts of b", func() bool { return evs.count("b", EventRestarted) == 3 })
	var bs WorkerState
	for _, st := range sup.States() {
		if st.Name == "b" {
			bs = st
		}
	}
	if bs.Restarts != 3 || bs.State != "running" || !bs.Dynamic || bs.LastError != "returned before shutdown" {
		t.Errorf("b's state = %+v", bs)
	}
	evs.mu.Lock()
	var failed []SupervisorEvent
	for _, ev := range evs.evs {
		if ev.Worker == "b" && ev.Type == EventFailed {
			failed = append(failed, ev)
		}
	}
	evs.mu.Unlock()
	if len(failed) != 3 {
		t.Fatalf("failed events of b = %d, want 3", len(failed))
	}
	var pe *PanicError
	if !errors.As(failed[0].Err, &pe) || pe.Value != "boom" || pe.Stack == "" {
		t.Errorf("first failure = %v, want the recovered panic with its stack", failed[0].Err)
	}
	if failed[1].Err.Error() != "connection lost" {
		t.Errorf("second failure = %v", failed[1].Err)
	}
	if !(failed[0].Backoff < failed[1].Backoff && failed[1].Backoff < failed[2].Backoff) {
		t.Errorf("backoffs %v, %v, %v do not grow", failed[0].Backoff, failed[1].Backoff, failed[2].Backoff)
	}
	if goodRuns.Load() != 1 || goodStopped.Load() != 0 || evs.count("g", EventFailed) != 0 {
		t.Errorf("the healthy worker was disturbed: runs %d, stopped %d", goodRuns.Load(), goodStopped.Load())
	}

	// Ensure with the same fingerprint leaves it alone; a new one restarts it.
	before := attempts.Load()
	if err := sup.Ensure(&WorkerSpec{Name: "b", Kind: bad, Config: nopConfig{}}, "v1", true); err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != before {
		t.Error("Ensure with the same fingerprint restarted the worker")
	}
	if err := sup.Ensure(&WorkerSpec{Name: "b", Kind: bad, Config: nopConfig{}}, "v2", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b restarted with v2", func() bool { return attempts.Load() == before+1 })
	if fp, _ := sup.Fingerprint("b"); fp != "v2" {
		t.Errorf("fingerprint = %q", fp)
	}
	if err := sup.Start(&WorkerSpec{Name: "g", Kind: good, Config: nopConfig{}}, "", false); !errors.Is(err, ErrWorkerRunning) {
		t.Errorf("starting g twice: %v", err)
	}
	if !sup.Stop("g") || goodStopped.Load() != 1 {
		t.Error("g not stopped")
	}
	if sup.Stop("g") {
		t.Error("stopping g twice reported a running worker")
	}
	cancel()
	sup.Wait()
}

// TestSupervisorBuildPanic: a kind whose Build panics is an error, not a
// crash.
func TestSupervisorBuildPanic(t *testing.T) {
	sup := NewSupervisor(context.Background(), testDeps(), nil)
	k := &Kind{Name: "x", NewConfig: func() WorkerConfig { return nopConfig{} },
		Build: func(*Deps, *WorkerSpec) (Worker, error) { panic("bad build") }}
	err := sup.Start(&WorkerSpec{Name: "x", Kind: k, Config: nopConfig{}}, "", true)
	if err == nil || len(sup.States()) != 0 {
		t.Fatalf("Start = %v, states %v", err, sup.States())
	}
}
