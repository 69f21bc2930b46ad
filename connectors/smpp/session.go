package smpp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
)

// Errors of a session.
var (
	ErrSessionClosed   = errors.New("smpp session closed")
	ErrResponseTimeout = errors.New("no response from the SMSC in time")
)

// maxSeq is the highest sequence number (SMPP 3.4 section 5.1.4).
const maxSeq = 0x7FFFFFFF

// sequencer hands out sequence numbers 1..0x7FFFFFFF, rolling over to 1,
// and never one that still waits for its response.
type sequencer struct{ next uint32 }

func (s *sequencer) take(pending map[uint32]chan pdu.PDU) uint32 {
	for {
		if s.next == 0 || s.next > maxSeq {
			s.next = 1
		}
		n := s.next
		s.next++
		if _, busy := pending[n]; !busy {
			return n
		}
	}
}

// requestHandler handles the requests an SMSC sends (deliver_sm, data_sm)
// and returns the response status.
type requestHandler func(ctx context.Context, s *session, p pdu.PDU) pdu.Status

// session is one bound connection to an SMSC: it matches responses to
// requests by sequence number, answers enquire_link and unbind, and hands
// deliver_sm and data_sm to its handler. Per-connection state only.
type session struct {
	conn     net.Conn
	log      *slog.Logger
	bindType string
	window   chan struct{} // a slot per unacknowledged submit_sm
	handler  requestHandler
	respWait time.Duration

	w *pdu.Writer // coalesces concurrent writes

	mu      sync.Mutex
	seq     sequencer
	pending map[uint32]chan pdu.PDU
	closed  chan struct{}
	once    sync.Once
	err     error
	inbound sync.WaitGroup
	inSlots chan struct{}
}

func newSession(conn net.Conn, bindType string, window int, respWait time.Duration, log *slog.Logger, h requestHandler) *session {
	return &session{
		conn: conn, log: log, bindType: bindType, handler: h, respWait: respWait,
		w:       pdu.NewWriter(conn, 10*time.Second),
		window:  make(chan struct{}, window),
		pending: map[uint32]chan pdu.PDU{},
		closed:  make(chan struct{}),
		inSlots: make(chan struct{}, 64),
	}
}

// canSend reports whether the bind may submit messages.
func (s *session) canSend() bool { return s.bindType != bindReceiver }

// close ends the session with err (the first error wins).
func (s *session) close(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.closed)
		_ = s.conn.Close()
	})
}

// Err returns why the session closed.
func (s *session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *session) write(p pdu.PDU) error {
	if err := s.w.Write(p); err != nil {
		s.close(fmt.Errorf("write %s: %w", p.Head().ID, err))
		return ErrSessionClosed
	}
	return nil
}

// request sends p with a fresh sequence number and waits for its
// response (or a generic_nack for it).
func (s *session) request(ctx context.Context, p pdu.PDU) (pdu.PDU, error) {
	ch := make(chan pdu.PDU, 1)
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return nil, ErrSessionClosed
	default:
	}
	seq := s.seq.take(s.pending)
	s.pending[seq] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, seq)
		s.mu.Unlock()
	}()
	p.Head().Seq = seq
	if err := s.write(p); err != nil {
		return nil, err
	}
	t := time.NewTimer(s.respWait)
	defer t.Stop()
	select {
	case r := <-ch:
		return r, nil
	case <-s.closed:
		return nil, ErrSessionClosed
	case <-t.C:
		return nil, fmt.Errorf("%s seq %d: %w", p.Head().ID, seq, ErrResponseTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// acquire takes a window slot.
func (s *session) acquire(ctx context.Context) error {
	select {
	case s.window <- struct{}{}:
		return nil
	case <-s.closed:
		return ErrSessionClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *session) release() { <-s.window }

// readLoop reads PDUs until the connection ends. Malformed PDUs get a
// generic_nack (or their operation's error response) and the session goes
// on; only an unreadable stream ends it.
func (s *session) readLoop(ctx context.Context) {
	r := pdu.NewReader(s.conn, 0)
	for {
		p, err := r.Read()
		if err != nil {
			var de *pdu.DecodeError
			var fe *pdu.FrameError
			switch {
			case errors.As(err, &de):
				s.log.Warn("malformed pdu from the SMSC", "error", err)
				_ = s.write(pdu.ResponseFor(de))
				continue
			case errors.As(err, &fe):
				s.log.Warn("corrupt pdu stream from the SMSC; disconnecting", "error", err)
				_ = s.write(&pdu.Empty{Header: pdu.Header{ID: pdu.GenericNack, Status: pdu.ESME_RINVCMDLEN, Seq: fe.Seq}})
				s.close(err)
			case errors.Is(err, io.EOF):
				s.close(errors.New("connection closed by the SMSC"))
			default:
				s.close(err)
			}
			s.inbound.Wait()
			return
		}
		s.dispatch(ctx, p)
	}
}

func (s *session) dispatch(ctx context.Context, p pdu.PDU) {
	h := p.Head()
	if h.ID.IsResponse() {
		s.mu.Lock()
		ch, ok := s.pending[h.Seq]
		s.mu.Unlock()
		if ok {
			select {
			case ch <- p:
			default: // a duplicate response; the first one counts
			}
		} else if h.ID != pdu.GenericNack {
			s.log.Debug("response to no pending request", "command", h.ID.String(), "seq", h.Seq)
		} else {
			s.log.Warn("generic_nack from the SMSC", "status", h.Status.String(), "seq", h.Seq)
		}
		return
	}
	switch h.ID {
	case pdu.EnquireLink:
		_ = s.write(pdu.Response(p, pdu.ESME_ROK))
	case pdu.Unbind:
		s.log.Info("the SMSC unbound")
		_ = s.write(pdu.Response(p, pdu.ESME_ROK))
		s.close(errors.New("unbound by the SMSC"))
	case pdu.DeliverSM, pdu.DataSM:
		if s.bindType == bindTransmitter {
			_ = s.write(pdu.Response(p, pdu.ESME_RINVBNDSTS))
			return
		}
		// Handle concurrently (bounded): each response goes out once
		// the message is safely in Kafka.
		select {
		case s.inSlots <- struct{}{}:
		case <-s.closed:
			return
		}
		s.inbound.Add(1)
		go func() {
			defer s.inbound.Done()
			defer func() { <-s.inSlots }()
			st := s.handler(ctx, s, p)
			_ = s.write(pdu.Response(p, st))
		}()
	default:
		_ = s.write(pdu.Response(p, pdu.ESME_RINVCMDID))
	}
}

// enquireLoop sends enquire_link every interval; a missing response ends
// the session so that it reconnects.
func (s *session) enquireLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, interval)
		_, err := s.request(rctx, &pdu.Empty{Header: pdu.Header{ID: pdu.EnquireLink}})
		cancel()
		if err != nil && ctx.Err() == nil {
			if !errors.Is(err, ErrSessionClosed) {
				s.log.Warn("enquire_link unanswered; reconnecting", "error", err)
				s.close(fmt.Errorf("enquire_link: %w", err))
			}
			return
		}
	}
}

// unbind asks the SMSC to end the session and waits briefly.
func (s *session) unbind(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, _ = s.request(ctx, &pdu.Empty{Header: pdu.Header{ID: pdu.Unbind}})
	s.close(errors.New("unbound"))
}
