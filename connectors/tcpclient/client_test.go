package tcpclient

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestConfigHelpers(t *testing.T) {
	var i, m float64
	if err := ReconnectDelays(&i, &m); err != nil || i != 1 || m != 3600 {
		t.Fatalf("defaults: %v %v %v", i, m, err)
	}
	i, m = 5, 2
	if err := ReconnectDelays(&i, &m); err == nil || err.Error() != "key max_reconnect_delay: must be at least initial_reconnect_delay (5), got 2" {
		t.Errorf("max < initial: %v", err)
	}
	i, m = -1, 2
	if err := ReconnectDelays(&i, &m); err == nil {
		t.Error("negative initial accepted")
	}
	if err := Required([2]string{"a", "x"}, [2]string{"b", ""}, [2]string{"c", ""}); err == nil || err.Error() != "key b: is required" {
		t.Errorf("Required: %v", err)
	}
	if err := Required([2]string{"a", "x"}); err != nil {
		t.Errorf("Required: %v", err)
	}
	var s int
	if err := Seconds("p", &s, 30); err != nil || s != 30 {
		t.Errorf("default: %d %v", s, err)
	}
	s = -2
	if err := Seconds("p", &s, 30); err == nil || err.Error() != "key p: must be at least 1 second, got -2" {
		t.Errorf("negative: %v", err)
	}
}

func TestSendWaitsForAConnection(t *testing.T) {
	var cur Current[int]
	stopping := make(chan struct{})
	ctx := context.Background()
	if err := Send(ctx, &cur, stopping, 20*time.Millisecond, func(*int) error { return nil }); err != ErrNotConnected {
		t.Fatalf("no connection: %v", err)
	}
	done := make(chan error, 1)
	var got int
	go func() {
		done <- Send(ctx, &cur, stopping, time.Minute, func(v *int) error {
			if *v == 1 {
				return errors.New("dropped")
			}
			got = *v
			return nil
		})
	}()
	one, two := 1, 2
	cur.Set(&one) // fails: Send waits for the next one
	time.Sleep(10 * time.Millisecond)
	cur.Set(&two)
	if err := <-done; err != nil || got != 2 {
		t.Fatalf("got %d, %v", got, err)
	}
	cur.Set(nil)
	close(stopping)
	if err := Send(ctx, &cur, stopping, time.Minute, func(*int) error { return nil }); err != ErrStopping {
		t.Fatalf("stopping: %v", err)
	}
}

type fakeTable struct {
	ready, fail bool
	stopped     chan struct{}
}

func (f *fakeTable) Run(ctx context.Context) error {
	if f.fail {
		return errors.New("boom")
	}
	<-ctx.Done()
	close(f.stopped)
	return nil
}

func (f *fakeTable) Wait(ctx context.Context) error {
	if f.ready {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestStartTable(t *testing.T) {
	ft := &fakeTable{ready: true, stopped: make(chan struct{})}
	stop, err := StartTable(context.Background(), ft, "t")
	if stop == nil || err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	<-ft.stopped
	if err := stop(); err != nil {
		t.Fatal("second stop:", err)
	}
	if stop, err := StartTable(context.Background(), &fakeTable{fail: true}, "t"); stop != nil || err == nil || err.Error() != "boom" {
		t.Fatalf("failing table: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ft = &fakeTable{stopped: make(chan struct{})}
	if stop, err := StartTable(ctx, ft, "t"); stop != nil || err != nil {
		t.Fatalf("cancelled: %v", err)
	}
	<-ft.stopped
}

func TestConnWriteReadLoginAndClose(t *testing.T) {
	a, b := net.Pipe()
	c := NewConn(a)
	go func() { _, _ = b.Write([]byte("hello")); b.Close() }()
	var got strings.Builder
	drains := 0
	c.ReadLoop(func(p []byte) { got.Write(p) }, func() bool { drains++; return true }, "peer went away")
	if got.String() != "hello" || drains < 2 {
		t.Errorf("read %q with %d drains", got.String(), drains)
	}
	<-c.Closed()
	if c.Err() == nil || c.Err().Error() != "peer went away" {
		t.Errorf("Err = %v", c.Err())
	}
	if err := c.Write([]byte("x"), time.Second); err == nil || err.Error() != "connection closed" {
		t.Errorf("write after close: %v", err)
	}
	if res, _ := AwaitLogin(context.Background(), c, make(chan error), time.Minute); res != LoginLost {
		t.Errorf("login on closed conn: %v", res)
	}
	a2, _ := net.Pipe()
	c2 := NewConn(a2)
	defer c2.Close(nil)
	ch := make(chan error, 1)
	ch <- errors.New("refused")
	if res, err := AwaitLogin(context.Background(), c2, ch, time.Minute); res != LoginRefused || err == nil {
		t.Errorf("refused: %v %v", res, err)
	}
	ch <- nil
	if res, _ := AwaitLogin(context.Background(), c2, ch, time.Minute); res != LoggedIn {
		t.Errorf("ok: %v", res)
	}
	if res, _ := AwaitLogin(context.Background(), c2, ch, time.Millisecond); res != LoginTimeout {
		t.Errorf("timeout: %v", res)
	}
	var readerDone atomic.Bool
	c2.Go(func() { <-c2.Closed(); readerDone.Store(true) })
	c2.Stop()
	if !readerDone.Load() || c2.Err() == nil || c2.Err().Error() != "stopping" {
		t.Errorf("Stop: reader done %v, err %v", readerDone.Load(), c2.Err())
	}
}
