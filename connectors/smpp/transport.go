// Package smpp is Vumi's SMPP 3.4 transport (ESME side): transceiver,
// transmitter, receiver or transmitter+receiver binds; windowed submit_sm
// with mt_tps throttling and ESME_RTHROTTLED back-off; deliver_sm and
// data_sm to inbound messages with multipart reassembly; delivery reports
// matched to their messages through a table shared by every instance;
// USSD over SMPP (Vumi's default, 6D and Mica processors).
package smpp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Kinds returns the SMPP transport kinds: one per bind type, with Vumi's
// class paths as aliases.
func Kinds() []*topology.Kind {
	k := func(name, bind, summary string, aliases ...string) *topology.Kind {
		return &topology.Kind{
			Name: name, Aliases: aliases, Role: topology.RoleTransport, Summary: summary,
			NewConfig: func() topology.WorkerConfig { return &Config{BindType: bind} },
			Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
				return New(deps, spec), nil
			},
		}
	}
	return []*topology.Kind{
		k("smpp", "", "SMPP 3.4 client (transceiver by default; bind_type chooses)",
			"vumi.transports.smpp.SmppTransport", "vumi.transports.smpp.SmppTransceiverTransport",
			"vumi.transports.smpp.smpp_transport.SmppTransceiverTransport",
			"vumi.transports.smpp.SmppTransceiverTransportWithOldConfig",
			"vumi2.transports.smpp.smpp.SmppTransceiverTransport", "vumi2.transports.SmppTransceiverTransport"),
		k("smpp_transmitter", bindTransmitter, "SMPP 3.4 client with a transmitter bind (sends only)",
			"vumi.transports.smpp.SmppTransmitterTransport", "vumi.transports.smpp.smpp_transport.SmppTransmitterTransport"),
		k("smpp_receiver", bindReceiver, "SMPP 3.4 client with a receiver bind (receives only)",
			"vumi.transports.smpp.SmppReceiverTransport", "vumi.transports.smpp.smpp_transport.SmppReceiverTransport"),
	}
}

// Transport is the SMPP transport worker.
type Transport struct {
	deps *topology.Deps
	spec *topology.WorkerSpec
	cfg  *Config

	t        *transport.Transport
	log      *slog.Logger
	sub      *submitter
	ids      store // SMSC message id -> Vumi message id
	sent     store // Vumi message id -> SMSC message id, once acknowledged
	parts    store // multipart parts
	sessions store // USSD sessions (6D, Mica)
	binds    []*binder
	tps      *rateLimiter

	instance      [8]byte // tells this run's multipart parts from others'
	stopping      chan struct{}
	throttleUntil atomic.Int64 // unix nanos
	throttled     atomic.Bool
	bg            sync.WaitGroup
}

// New returns the transport for a worker spec.
func New(deps *topology.Deps, spec *topology.WorkerSpec) *Transport {
	return &Transport{deps: deps, spec: spec, cfg: spec.Config.(*Config)}
}

// Run connects, binds and serves until ctx is cancelled, then finishes
// the messages in flight, unbinds and returns.
func (tr *Transport) Run(ctx context.Context) error {
	t, err := transport.New(tr.deps, tr.spec, &tr.cfg.Config)
	if err != nil {
		return err
	}
	defer t.Close()
	tr.t, tr.log = t, t.Log
	tr.sub = newSubmitter(tr.cfg)
	tr.tps = newRateLimiter(tr.cfg.MtTps)
	tr.stopping = make(chan struct{})
	_, _ = rand.Read(tr.instance[:])
	tr.status(ctx, schemas.StatusDown, "starting", "SMPP transport starting")

	stateCtx, stopState := context.WithCancel(context.WithoutCancel(ctx))
	defer stopState()
	var tables []*table
	var stateWG sync.WaitGroup
	stateErr := make(chan error, 4)
	mk := func(suffix string) store {
		tb, err2 := newTable(tr.deps, t.Client, tr.spec.Name, tr.cfg.TransportName+suffix, tr.log)
		if err2 != nil {
			err = err2
			return nil
		}
		tables = append(tables, tb)
		stateWG.Add(1)
		go func() {
			defer stateWG.Done()
			if err := tb.run(stateCtx, sweepInterval(tr.cfg.cacheTimeout())); err != nil {
				stateErr <- err
			}
		}()
		return tb
	}
	tr.ids, tr.sent, tr.parts = mk(tableMessageIDs), mk(tableSent), mk(tableMultipart)
	if tr.cfg.smProc != "default" {
		tr.sessions = mk(tableSessions)
	}
	defer func() {
		for _, tb := range tables {
			_ = tb.close()
		}
		stopState()
		stateWG.Wait()
	}()
	if err != nil {
		return err
	}
	for _, tb := range tables {
		select {
		case err := <-stateErr:
			return err
		case <-tb.ready:
		case <-ctx.Done():
			return nil // cancelled while recovering
		}
	}

	bindCtx, stopBinds := context.WithCancel(context.WithoutCancel(ctx))
	types := []string{tr.cfg.BindType}
	if tr.cfg.BindType == bindTxRx {
		types = []string{bindTransmitter, bindReceiver}
	}
	var bindWG sync.WaitGroup
	for _, bt := range types {
		b := &binder{tr: tr, bindType: bt, changed: make(chan struct{})}
		tr.binds = append(tr.binds, b)
		bindWG.Add(1)
		go func() {
			defer bindWG.Done()
			b.run(bindCtx)
		}()
	}
	go func() {
		<-ctx.Done()
		close(tr.stopping)
	}()
	var runErr error
	if tr.canSend() {
		runErr = t.Run(ctx, tr)
	} else {
		go t.RunHeartbeat(ctx)
		<-ctx.Done()
	}
	stopBinds()
	bindWG.Wait()
	tr.bg.Wait()
	select {
	case err := <-stateErr:
		runErr = errors.Join(runErr, err)
	default:
	}
	return runErr
}

func sweepInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/10, time.Second), time.Minute)
}

func (tr *Transport) canSend() bool { return tr.cfg.BindType != bindReceiver }

func (tr *Transport) status(ctx context.Context, level schemas.StatusLevel, typ, msg string) {
	_ = tr.t.Status(context.WithoutCancel(ctx), "smpp", level, typ, msg, nil)
}

// txSession waits for a bound session that may send.
func (tr *Transport) txSession(ctx context.Context) (*session, error) {
	for {
		var waits []<-chan struct{}
		for _, b := range tr.binds {
			s, ch := b.current()
			if s != nil && s.canSend() {
				return s, nil
			}
			waits = append(waits, ch)
		}
		select {
		case <-tr.stopping:
			return nil, transport.ErrRedeliver
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-waits[0]:
		case <-waitAny(waits[1:]):
		}
	}
}

func waitAny(chs []<-chan struct{}) <-chan struct{} {
	if len(chs) == 0 {
		return nil
	}
	return chs[0] // at most one other bind can send (tx of a tx_rx pair)
}

// binder keeps one bind up: connect, bind, serve, and reconnect with
// back-off when the connection is lost.
type binder struct {
	tr       *Transport
	bindType string

	mu      sync.Mutex
	cur     *session
	changed chan struct{}
}

func (b *binder) current() (*session, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur, b.changed
}

func (b *binder) set(s *session) {
	b.mu.Lock()
	b.cur = s
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *binder) run(ctx context.Context) {
	cfg := b.tr.cfg
	delay := time.Duration(cfg.InitialReconnectDelay) * time.Second
	maxDelay := time.Duration(cfg.MaxReconnectDelay) * time.Second
	log := b.tr.log.With("bind_type", b.bindType)
	for ctx.Err() == nil {
		s, err := b.connect(ctx, log)
		if err == nil {
			delay = time.Duration(cfg.InitialReconnectDelay) * time.Second
			b.serve(ctx, s, log)
		} else if ctx.Err() == nil {
			log.Warn("cannot bind to the SMSC", "addr", cfg.addr, "error", err, "retry_in", delay)
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, maxDelay)
	}
}

var bindIDs = map[string]pdu.CommandID{
	bindTransceiver: pdu.BindTransceiver, bindTransmitter: pdu.BindTransmitter, bindReceiver: pdu.BindReceiver,
}

// connect dials and binds within smpp_bind_timeout.
func (b *binder) connect(ctx context.Context, log *slog.Logger) (*session, error) {
	cfg := b.tr.cfg
	timeout := time.Duration(cfg.SmppBindTimeout) * time.Second
	bctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(bctx, "tcp", cfg.addr)
	if err != nil {
		b.tr.status(ctx, schemas.StatusDown, "connection_lost", "Could not connect to the SMSC: "+err.Error())
		return nil, err
	}
	respWait := time.Duration(cfg.SmppResponseTimeout) * time.Second
	s := newSession(conn, b.bindType, cfg.WindowSize, respWait, log, b.tr.handleInbound)
	go s.readLoop(ctx)
	b.tr.status(ctx, schemas.StatusDown, "binding", "Binding to the SMSC")
	resp, err := s.request(bctx, &pdu.Bind{
		Header:   pdu.Header{ID: bindIDs[b.bindType]},
		SystemID: cfg.SystemID, Password: cfg.Password, SystemType: cfg.SystemType,
		InterfaceVersion: byte(cfg.InterfaceVersion), AddressRange: cfg.AddressRange,
	})
	if err != nil {
		s.close(err)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			b.tr.status(ctx, schemas.StatusDown, "bind_timeout", fmt.Sprintf("Timed out after %v waiting for the SMSC's bind response", timeout))
			return nil, fmt.Errorf("bind: %w", ErrResponseTimeout)
		}
		b.tr.status(ctx, schemas.StatusDown, "connection_lost", "Connection lost while binding")
		return nil, fmt.Errorf("bind: %w", err)
	}
	if st := resp.Head().Status; st != pdu.ESME_ROK {
		s.close(st)
		b.tr.status(ctx, schemas.StatusDown, "bind_failed", "The SMSC refused the bind: "+st.String())
		return nil, fmt.Errorf("bind refused: %w", st)
	}
	return s, nil
}

func (b *binder) serve(ctx context.Context, s *session, log *slog.Logger) {
	cfg := b.tr.cfg
	log.Info("bound to the SMSC", "addr", cfg.addr, "system_id", cfg.SystemID)
	b.tr.status(ctx, schemas.StatusOK, "bound", "Bound to the SMSC")
	if b.tr.throttled.Load() {
		b.tr.status(ctx, schemas.StatusDegraded, "throttled", "Still throttled after rebinding")
	}
	b.set(s)
	go s.enquireLoop(ctx, time.Duration(cfg.SmppEnquireLinkInterval)*time.Second)
	select {
	case <-s.closed:
	case <-ctx.Done():
		b.set(nil)
		b.tr.status(ctx, schemas.StatusDown, "unbinding", "Unbinding from the SMSC")
		s.unbind(5 * time.Second)
		b.tr.status(ctx, schemas.StatusDown, "connection_lost", "Unbound from the SMSC")
		return
	}
	b.set(nil)
	log.Warn("connection to the SMSC lost", "error", s.Err())
	b.tr.status(ctx, schemas.StatusDown, "connection_lost", "Connection to the SMSC lost: "+fmt.Sprint(s.Err()))
}

// HandleOutbound implements transport.Handler: it submits m and returns
// once the SMSC has answered every part (so that the outbound offset is
// committed only then), having published the ack or nack.
func (tr *Transport) HandleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	if v, ok, err := tr.sent.Get(m.MessageID); err == nil && ok {
		tr.log.Info("message already acknowledged by the SMSC; not submitting it again", "message_id", m.MessageID, "sent_message_id", string(v))
		tr.t.Count("duplicates_skipped", 1)
		if tr.cfg.DisableAck {
			return nil
		}
		return tr.t.PublishAck(ctx, m.MessageID, string(v))
	}
	pdus, err := tr.sub.build(m)
	if err != nil {
		return tr.t.PublishNack(ctx, m.MessageID, err.Error())
	}
	if tr.sessions != nil && m.Session() == schemas.SessionClose {
		// 6D / Mica: the session ends with this reply (cleared before sending, as Vumi does).
		if info, ok := m.TransportMetadata["session_info"].(map[string]any); ok {
			if sid, ok := info["session_identifier"].(string); ok {
				tr.sessions.Delete(m.To() + "+" + sid)
			}
		}
	}
	if err := tr.tps.wait(ctx, tr.stopping, tr.onTPS); err != nil {
		return err
	}
	ids := make([]string, 0, len(pdus))
	// The protocol record for `vumi trace`: one entry per submit_sm_resp.
	resps := make([]any, 0, len(pdus))
	for _, p := range pdus {
		resp, err := tr.submit(ctx, p)
		if err != nil {
			return err
		}
		h := resp.Head()
		id := ""
		if r, ok := resp.(*pdu.MessageIDResp); ok {
			id = r.MessageID
		}
		rec := map[string]any{"seq": h.Seq, "status": h.Status.String()}
		if id != "" {
			rec["message_id"] = id
		}
		resps = append(resps, rec)
		if h.Status != pdu.ESME_ROK {
			return tr.t.PublishNackRecord(ctx, m.MessageID, h.Status.String(), smppRecord(resps))
		}
		ids = append(ids, id)
	}
	timeout := tr.cfg.cacheTimeout()
	var waits []func(context.Context) error
	for _, id := range ids {
		if id != "" {
			waits = append(waits, tr.ids.PutAsync(id, []byte(m.MessageID), timeout))
		}
	}
	waits = append(waits, tr.sent.PutAsync(m.MessageID, []byte(ids[0]), timeout))
	var ackErr error
	if !tr.cfg.DisableAck {
		ackErr = tr.t.PublishAckRecord(ctx, m.MessageID, ids[0], smppRecord(resps))
	}
	// Each wait is bounded by the producer's delivery timeout.
	for _, w := range waits {
		if err := w(ctx); err != nil {
			// The message is out; a lost id only costs its delivery report.
			tr.log.Error("cannot record the SMSC message id", "message_id", m.MessageID, "error", err)
		}
	}
	return ackErr
}

// smppRecord is the transport_metadata of an ack or nack: the SMSC's
// submit_sm_resp PDUs for the message (sequence number, command status,
// SMSC message id), a few dozen bytes per part.
func smppRecord(resps []any) schemas.Metadata {
	return schemas.Metadata{"smpp_submit_sm_resp": resps}
}

// submit sends one submit_sm and returns the SMSC's response, retrying on
// another session when the connection drops, and after throttle_delay
// when the SMSC says it is throttled or its queue is full.
func (tr *Transport) submit(ctx context.Context, p *pdu.SM) (pdu.PDU, error) {
	timeouts := 0
	for {
		s, err := tr.txSession(ctx)
		if err != nil {
			return nil, err
		}
		if until := tr.throttleUntil.Load(); until > 0 {
			if d := time.Until(time.Unix(0, until)); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
		}
		if err := s.acquire(ctx); err != nil {
			if errors.Is(err, ErrSessionClosed) {
				continue
			}
			return nil, err
		}
		q := *p
		resp, err := s.request(ctx, &q)
		s.release()
		switch {
		case errors.Is(err, ErrSessionClosed):
			continue
		case errors.Is(err, ErrResponseTimeout):
			if timeouts++; timeouts >= 3 {
				return nil, worker.Temporary(fmt.Errorf("submit_sm: %w (3 attempts)", err))
			}
			continue
		case err != nil:
			return nil, err
		}
		switch resp.Head().Status {
		case pdu.ESME_RTHROTTLED, pdu.ESME_RMSGQFUL:
			tr.throttleUntil.Store(time.Now().Add(time.Duration(tr.cfg.ThrottleDelay * float64(time.Second))).UnixNano())
			if !tr.throttled.Swap(true) {
				tr.status(ctx, schemas.StatusDegraded, "throttled", "Throttled by the SMSC ("+resp.Head().Status.String()+")")
			}
			tr.t.Count("throttled", 1)
			continue
		case pdu.ESME_ROK:
			if tr.throttled.Load() && !tr.tps.limited() && tr.throttled.Swap(false) {
				tr.status(ctx, schemas.StatusOK, "throttled_end", "No longer throttled")
			}
		}
		return resp, nil
	}
}

// onTPS publishes throttled / throttled_end as the mt_tps limit is hit
// and left.
func (tr *Transport) onTPS(limited bool) {
	ctx := context.Background()
	if limited {
		if !tr.throttled.Swap(true) {
			tr.status(ctx, schemas.StatusDegraded, "throttled", "At mt_tps, the maximum transmissions per second")
		}
	} else if tr.throttled.Swap(false) {
		tr.status(ctx, schemas.StatusOK, "throttled_end", "No longer throttled")
	}
}
