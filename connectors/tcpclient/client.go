package tcpclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/connectors/ussdsession"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// ReconnectDelays applies the defaults of initial_reconnect_delay and
// max_reconnect_delay (1 and 3600 seconds, Vumi's
// ReconnectingClientService) and checks them.
func ReconnectDelays(initial, max *float64) error {
	if *initial == 0 {
		*initial = 1
	}
	if *max == 0 {
		*max = 3600
	}
	if *initial < 0 || *max < *initial {
		return fmt.Errorf("key max_reconnect_delay: must be at least initial_reconnect_delay (%v), got %v", *initial, *max)
	}
	return nil
}

// Required checks that each {key, value} pair has a value.
func Required(pairs ...[2]string) error {
	for _, kv := range pairs {
		if kv[1] == "" {
			return fmt.Errorf("key %s: is required", kv[0])
		}
	}
	return nil
}

// Seconds applies def to a period of whole seconds left unset (0) and
// checks that it is at least one second.
func Seconds(key string, v *int, def int) error {
	if *v == 0 {
		*v = def
	}
	if *v < 1 {
		return fmt.Errorf("key %s: must be at least 1 second, got %d", key, *v)
	}
	return nil
}

// NewBackoff is the back-off between initial and max seconds.
func NewBackoff(initial, max float64) Backoff {
	return Backoff{
		Initial: time.Duration(initial * float64(time.Second)),
		Max:     time.Duration(max * float64(time.Second)),
	}
}

// Reconnect calls session until ctx ends, waiting between calls with
// b's back-off; a session that reports true (it logged in) starts the
// delays again. waiting is told each delay before it is waited.
func Reconnect(ctx context.Context, b Backoff, session func(context.Context) bool, waiting func(time.Duration)) {
	for ctx.Err() == nil {
		up := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if up {
			b.Reset()
		}
		d := b.Next()
		waiting(d)
		if !Sleep(ctx, d) {
			return
		}
	}
}

// Table is a table a transport needs before it serves (a
// ussdsession.Store).
type Table interface {
	Run(ctx context.Context) error
	Wait(ctx context.Context) error
}

// StartTable runs tbl in the background (until stop is called, even after
// ctx ends) and waits until it has caught up. When ctx ends first it
// returns a nil stop and a nil error (the worker is stopping); when the
// table stops first, a nil stop and the table's error (or "<name>
// stopped"). stop ends the table and returns its error; calling it again
// returns the same error.
func StartTable(ctx context.Context, tbl Table, name string) (stop func() error, err error) {
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- tbl.Run(tctx) }()
	ready := make(chan struct{})
	go func() {
		if tbl.Wait(tctx) == nil {
			close(ready)
		}
	}()
	select {
	case <-ctx.Done():
		cancel()
		<-done
		return nil, nil
	case err := <-done:
		cancel()
		if err == nil {
			err = errors.New(name + " stopped")
		}
		return nil, err
	case <-ready:
	}
	var once sync.Once
	var runErr error
	return func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}, nil
}

// Serve runs a client transport: loop (its connection loop) in the
// background with a context that outlives ctx until t has stopped,
// stopping closed when ctx ends, and t's outbound side with h until ctx
// ends.
func Serve(ctx context.Context, t *transport.Transport, h transport.Handler, stopping chan struct{}, loop func(context.Context)) error {
	connCtx, stopConn := context.WithCancel(context.WithoutCancel(ctx))
	connDone := make(chan struct{})
	go func() {
		defer close(connDone)
		loop(connCtx)
	}()
	go func() {
		<-ctx.Done()
		close(stopping)
	}()
	err := t.Run(ctx, h)
	stopConn()
	<-connDone
	return err
}

// Conn is one connection to the peer: writes are serialized and bounded
// by a deadline, and the first error that ends it is kept.
type Conn struct {
	NC     net.Conn
	wmu    sync.Mutex
	closed chan struct{}
	once   sync.Once
	err    error
	// readDone is closed when the reader started with Go returns.
	readDone chan struct{}
}

// NewConn wraps nc.
func NewConn(nc net.Conn) *Conn { return &Conn{NC: nc, closed: make(chan struct{})} }

// Dial connects to addr within timeout, with a receive buffer of
// readBuffer bytes: a modest fixed buffer means that while Kafka blocks
// and the transport stops reading, the kernel holds little of the peer's
// data either (autotuning could grow it to many megabytes).
func Dial(ctx context.Context, addr string, timeout time.Duration, readBuffer int) (*Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(readBuffer)
	}
	return NewConn(nc), nil
}

// Close ends the connection with err (the first call wins).
func (c *Conn) Close(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.closed)
		_ = c.NC.Close()
	})
}

// Closed is closed when the connection has ended.
func (c *Conn) Closed() <-chan struct{} { return c.closed }

// Err is why the connection ended; read it after Closed.
func (c *Conn) Err() error { return c.err }

// Write writes b within timeout; a failed write ends the connection.
func (c *Conn) Write(b []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return errors.New("connection closed")
	default:
	}
	_ = c.NC.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.NC.Write(b); err != nil {
		c.Close(fmt.Errorf("write: %w", err))
		return err
	}
	return nil
}

// ReadLoop reads from the connection until it ends, feeding what arrives
// to feed and then calling drain, which handles the complete frames and
// reports false to stop reading. The peer closing the connection ends it
// with the error eofMsg.
func (c *Conn) ReadLoop(feed func([]byte), drain func() bool, eofMsg string) {
	buf := make([]byte, 4096)
	for {
		if !drain() {
			return
		}
		n, err := c.NC.Read(buf)
		if n > 0 {
			feed(buf[:n])
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New(eofMsg)
			}
			c.Close(err)
			return
		}
	}
}

// Login is how a login ended.
type Login int

// The outcomes of AwaitLogin.
const (
	LoggedIn     Login = iota
	LoginRefused       // the peer refused: the error says why
	LoginLost          // the connection ended first
	LoginTimeout       // no answer within the timeout
	LoginStopped       // ctx ended first
)

// AwaitLogin waits for the login's outcome on result.
func AwaitLogin(ctx context.Context, c *Conn, result <-chan error, timeout time.Duration) (Login, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-result:
		if err != nil {
			return LoginRefused, err
		}
		return LoggedIn, nil
	case <-c.closed:
		return LoginLost, nil
	case <-t.C:
		return LoginTimeout, nil
	case <-ctx.Done():
		return LoginStopped, nil
	}
}

// Errors of Send.
var (
	ErrNotConnected = errors.New("not connected")
	ErrStopping     = errors.New("stopping")
)

// Send calls try with the current connection until it succeeds, waiting
// for a new connection whenever there is none or try fails. It returns
// ErrNotConnected when none took it within wait, and ErrStopping when
// stopping is closed or ctx ends first (the message is to be redelivered).
func Send[T any](ctx context.Context, cur *Current[T], stopping <-chan struct{}, wait time.Duration, try func(*T) error) error {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		c, changed := cur.Get()
		if c != nil && try(c) == nil {
			return nil
		}
		// No connection, or it dropped: wait for the next one.
		select {
		case <-changed:
		case <-deadline.C:
			return ErrNotConnected
		case <-stopping:
			return ErrStopping
		case <-ctx.Done():
			return ErrStopping
		}
	}
}

// IsTemporary reports whether err is worth retrying: anything not marked
// permanent.
func IsTemporary(err error) bool {
	c := worker.CodeOf(err)
	return c == nil || *c != schemas.FailurePermanent
}

// Publish publishes what a peer sent with fn (Retry with IsTemporary and
// a PublishContext per attempt), logging each retry as what, while not
// reading from peer.
func Publish(ctx context.Context, log *slog.Logger, peer, what string, fn func(context.Context) error) error {
	return Retry(ctx, IsTemporary, func(err error, d time.Duration) {
		log.Warn(what+"; retrying (not reading from "+peer+" meanwhile)", "error", err, "retry_in", d)
	}, func() error {
		pctx, cancel := PublishContext(ctx)
		defer cancel()
		return fn(pctx)
	})
}

// GetWithGrace reads key from store, giving another instance's fresh
// write up to grace to arrive. It returns nil (and no error) when the key
// is still missing, or when ctx ends; a read error is temporary.
func GetWithGrace(ctx context.Context, store *ussdsession.Store, key string, grace time.Duration) (ussdsession.Session, error) {
	deadline := time.Now().Add(grace)
	for {
		s, err := store.Get(key)
		if err != nil {
			return nil, worker.Temporary(err)
		}
		if s != nil || time.Now().After(deadline) {
			return s, nil
		}
		if !Sleep(ctx, 50*time.Millisecond) {
			return nil, nil
		}
	}
}

// SendFailure publishes raw to t's failures topic with err (made
// permanent unless it says otherwise), keyed by key when it is not
// empty; a failure that cannot be published is logged.
func SendFailure(ctx context.Context, t *transport.Transport, transportName string, raw []byte, key string, err error) {
	if worker.CodeOf(err) == nil {
		err = worker.Permanent(err)
	}
	f := t.FailureFor(nil, nil, "", err)
	f.Raw = raw
	if key != "" {
		f.Key = []byte(key)
	}
	if perr := t.Base.SendFailure(context.WithoutCancel(ctx), transportName, f); perr != nil {
		t.Log.Error("failure not published", "error", perr)
	}
}

// Client is what a TCP client USSD transport keeps while it runs: its
// transport base, its session table, its usable connection and whether it
// is stopping. Component names its status events.
type Client[C any] struct {
	T        *transport.Transport
	Log      *slog.Logger
	Sessions *ussdsession.Store
	Cur      Current[C]
	Stopping chan struct{}

	component string
}

// Run runs a TCP client USSD transport until ctx ends: it opens the
// transport and its session table (entries kept for ttl), waits until the
// table has caught up, then runs loop (the connection loop) and h (the
// outbound side) until ctx ends.
func (cl *Client[C]) Run(ctx context.Context, deps *topology.Deps, spec *topology.WorkerSpec, cfg *transport.Config, component string, ttl time.Duration, h transport.Handler, loop func(context.Context)) error {
	t, err := transport.New(deps, spec, cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	cl.T, cl.Log, cl.component = t, t.Log, component
	cl.Stopping = make(chan struct{})
	cl.Sessions, err = ussdsession.Open(t.Base, cfg.TransportName, ttl)
	if err != nil {
		return err
	}
	stopSessions, err := StartTable(ctx, cl.Sessions, "session table")
	if stopSessions == nil {
		return err
	}
	defer stopSessions()
	runErr := Serve(ctx, t, h, cl.Stopping, loop)
	if err := stopSessions(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// Status publishes a status event of the client's component (even while
// stopping).
func (cl *Client[C]) Status(ctx context.Context, level schemas.StatusLevel, typ, msg string) {
	_ = cl.T.Status(context.WithoutCancel(ctx), cl.component, level, typ, msg, nil)
}

// Dial connects to addr (see Dial). A failure, unless ctx has ended, is
// logged as logMsg and published as a connection_failed status
// statusPrefix + the error; it returns nil then.
func (cl *Client[C]) Dial(ctx context.Context, addr string, timeout time.Duration, readBuffer int, logMsg, statusPrefix string) *Conn {
	c, err := Dial(ctx, addr, timeout, readBuffer)
	if err != nil {
		if ctx.Err() == nil {
			cl.Log.Warn(logMsg, "addr", addr, "error", err)
			cl.Status(ctx, schemas.StatusDown, "connection_failed", statusPrefix+err.Error())
		}
		return nil
	}
	return c
}

// Lost reports a connection that ended: there is no usable connection
// any more; once c has ended, logMsg is logged with its error (and attrs)
// and a connection_lost status statusMsg (with ": " and the error)
// published.
func (cl *Client[C]) Lost(ctx context.Context, c *Conn, statusMsg, logMsg string, attrs ...any) {
	cl.Cur.Set(nil)
	<-c.Closed()
	if c.Err() != nil {
		statusMsg += ": " + c.Err().Error()
	}
	cl.Log.Warn(logMsg, append([]any{"error", c.Err()}, attrs...)...)
	cl.Status(ctx, schemas.StatusDown, "connection_lost", statusMsg)
}

// Go runs read (the connection's reader) in the background; Stop waits
// for it.
func (c *Conn) Go(read func()) {
	c.readDone = make(chan struct{})
	go func() {
		defer close(c.readDone)
		read()
	}()
}

// Stop ends the connection (if it has not ended) and waits for the reader
// started with Go.
func (c *Conn) Stop() {
	c.Close(errors.New("stopping"))
	if c.readDone != nil {
		<-c.readDone
	}
}
