// Package smsc is an SMSC simulator (the SMSC side of SMPP 3.4) for tests,
// demos and load tests: it accepts binds with credentials, acknowledges
// submit_sm with message ids, sends delivery receipts, injects
// mobile-originated messages and USSD sessions, and can be told to
// throttle, reject binds, delay responses, ignore enquire_link or drop
// every connection. It reassembles nothing: it sends what it is told.
package smsc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/coding"
	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
)

// Options configure an SMSC.
type Options struct {
	// Credentials maps system_id to password; empty accepts any bind.
	Credentials map[string]string
	// ReceiptDelay before a requested delivery receipt is sent.
	ReceiptDelay time.Duration
	// ReceiptStatus is the receipt's stat (DELIVRD unless set).
	ReceiptStatus string
	// ReceiptTLVs adds receipted_message_id and message_state to receipts
	// (the text is always in the SMPP 3.4 appendix B format).
	ReceiptTLVs bool
	// ReceiptsRoundRobin sends each receipt to the next receiving bind of
	// the system_id instead of the bind that submitted the message.
	ReceiptsRoundRobin bool
	// KeepSubmitted bounds how many accepted submit_sm Submitted returns
	// (the most recent); 0 keeps every one (tests that check each).
	// Stats counts them all either way.
	KeepSubmitted int
	Logger        *slog.Logger
}

// Submitted is a submit_sm the SMSC accepted.
type Submitted struct {
	MessageID   string `json:"message_id"`
	SystemID    string `json:"system_id"`
	SourceAddr  string `json:"source_addr"`
	DestAddr    string `json:"destination_addr"`
	ServiceType string `json:"service_type"`
	ESMClass    byte   `json:"esm_class"`
	DataCoding  byte   `json:"data_coding"`
	Registered  byte   `json:"registered_delivery"`
	Short       []byte `json:"short_message"`
	// Text is short_message (or message_payload) decoded with its
	// data_coding, after any user data header; empty when undecodable.
	Text     string            `json:"text"`
	TLVs     map[string]string `json:"tlvs"` // tag (4 hex digits) -> value (hex)
	Received time.Time         `json:"received"`
}

// SMSC is a running simulator.
type SMSC struct {
	opts Options
	log  *slog.Logger
	ln   net.Listener
	pfx  string
	ids  atomic.Uint64

	// behaviour, changed at run time
	throttleNext atomic.Int64 // submit_sm to answer ESME_RTHROTTLED
	throttleAll  atomic.Bool
	rejectBinds  atomic.Uint32 // status, 0: accept
	submitStatus atomic.Uint32 // status for every submit_sm, 0: OK
	delay        atomic.Int64  // nanoseconds before each response
	ignoreEL     atomic.Bool
	inFlight     atomic.Int64 // submit_sm received, response not yet written
	maxInFlight  atomic.Int64

	mu        sync.Mutex
	conns     map[*conn]bool
	rr        int
	submitted []Submitted
	accepted  int // submit_sm accepted and not withdrawn, kept or not
	binds     int
	withdrawn int
	wg        sync.WaitGroup
	closed    chan struct{}
}

// Listen starts an SMSC on addr (e.g. "127.0.0.1:0").
func Listen(addr string, opts Options) (*SMSC, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smsc: listen on %s: %w", addr, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReceiptStatus == "" {
		opts.ReceiptStatus = "DELIVRD"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	s := &SMSC{opts: opts, log: opts.Logger, ln: ln, pfx: hex.EncodeToString(b[:]), conns: map[*conn]bool{}, closed: make(chan struct{})}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the SMPP address.
func (s *SMSC) Addr() string { return s.ln.Addr().String() }

// Close stops listening and disconnects everyone.
func (s *SMSC) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
	}
	close(s.closed)
	err := s.ln.Close()
	s.Drop()
	s.wg.Wait()
	return err
}

// Throttle answers the next n submit_sm with ESME_RTHROTTLED.
func (s *SMSC) Throttle(n int) { s.throttleNext.Store(int64(n)) }

// ThrottleAll answers every submit_sm with ESME_RTHROTTLED while on.
func (s *SMSC) ThrottleAll(on bool) { s.throttleAll.Store(on) }

// RejectBinds answers binds with st (ESME_ROK to accept again).
func (s *SMSC) RejectBinds(st pdu.Status) { s.rejectBinds.Store(uint32(st)) }

// SubmitStatus answers every submit_sm with st (ESME_ROK: accept).
func (s *SMSC) SubmitStatus(st pdu.Status) { s.submitStatus.Store(uint32(st)) }

// Delay delays every response by d.
func (s *SMSC) Delay(d time.Duration) { s.delay.Store(int64(d)) }

// IgnoreEnquireLink stops answering enquire_link while on.
func (s *SMSC) IgnoreEnquireLink(on bool) { s.ignoreEL.Store(on) }

// Drop closes every connection now.
func (s *SMSC) Drop() {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
}

// Submitted returns the submit_sm accepted so far (the last
// Options.KeepSubmitted of them when that is set).
func (s *SMSC) Submitted() []Submitted {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := s.submitted
	if k := s.opts.KeepSubmitted; k > 0 && len(subs) > k {
		subs = subs[len(subs)-k:]
	}
	return append([]Submitted(nil), subs...)
}

// Stats is a summary of the SMSC's state.
type Stats struct {
	Bound int `json:"bound"`
	Binds int `json:"binds_total"`
	// Submitted counts the submit_sm accepted (and not withdrawn).
	Submitted int `json:"submitted"`
	// MaxInFlight is the most submit_sm ever waiting for their response
	// at once (the ESME's effective window).
	MaxInFlight int64 `json:"max_in_flight"`
	// InFlight is the submit_sm waiting for their response now.
	InFlight int64 `json:"in_flight"`
	// Withdrawn counts submit_sm accepted but forgotten again because
	// the connection dropped before their response was written.
	Withdrawn int `json:"withdrawn"`
}

// Stats returns the SMSC's figures.
func (s *SMSC) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.bound() != "" {
			n++
		}
	}
	return Stats{Bound: n, Binds: s.binds, Submitted: s.accepted, MaxInFlight: s.maxInFlight.Load(), InFlight: s.inFlight.Load(), Withdrawn: s.withdrawn}
}

func (s *SMSC) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &conn{s: s, nc: nc, w: pdu.NewWriter(nc, 10*time.Second), pending: map[uint32]chan pdu.PDU{}, done: make(chan struct{})}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// conn is one ESME connection.
type conn struct {
	s  *SMSC
	nc net.Conn
	w  *pdu.Writer

	mu       sync.Mutex
	systemID string
	bindType pdu.CommandID
	seq      uint32
	pending  map[uint32]chan pdu.PDU
	once     sync.Once
	done     chan struct{}
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.nc.Close()
	})
}

func (c *conn) bound() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.systemID
}

func (c *conn) canReceive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.systemID != "" && (c.bindType == pdu.BindTransceiver || c.bindType == pdu.BindReceiver)
}

func (c *conn) write(p pdu.PDU) error {
	return c.w.Write(p)
}

// respond writes a response after the configured delay.
func (c *conn) respond(p pdu.PDU) { c.respondThen(p, nil) }

// respondThen writes a response after the configured delay, then calls
// after (if set) with whether the response was written.
func (c *conn) respondThen(p pdu.PDU, after func(written bool)) {
	submit := p.Head().ID == pdu.SubmitSMResp
	if submit {
		n := c.s.inFlight.Add(1)
		for {
			m := c.s.maxInFlight.Load()
			if n <= m || c.s.maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
	}
	send := func() {
		if submit {
			c.s.inFlight.Add(-1)
		}
		err := c.write(p)
		if after != nil {
			after(err == nil)
		}
	}
	if d := time.Duration(c.s.delay.Load()); d > 0 {
		go func() {
			select {
			case <-time.After(d):
			case <-c.done:
			}
			send()
		}()
		return
	}
	send()
}

func (c *conn) serve() {
	defer c.close()
	r := pdu.NewReader(c.nc, 0)
	for {
		p, err := r.Read()
		if err != nil {
			var de *pdu.DecodeError
			if errors.As(err, &de) {
				c.s.log.Warn("smsc: malformed pdu", "error", err)
				_ = c.write(pdu.ResponseFor(de))
				continue
			}
			var fe *pdu.FrameError
			if errors.As(err, &fe) {
				_ = c.write(&pdu.Empty{Header: pdu.Header{ID: pdu.GenericNack, Status: pdu.ESME_RINVCMDLEN, Seq: fe.Seq}})
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.s.log.Debug("smsc: connection ended", "error", err)
			}
			return
		}
		c.handle(p)
	}
}

func (c *conn) handle(p pdu.PDU) {
	h := p.Head()
	if h.ID.IsResponse() {
		c.mu.Lock()
		ch := c.pending[h.Seq]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- p:
			default: // a duplicate response
			}
		}
		return
	}
	isBind := h.ID == pdu.BindTransceiver || h.ID == pdu.BindTransmitter || h.ID == pdu.BindReceiver
	if !isBind && h.ID != pdu.EnquireLink && c.bound() == "" {
		c.respond(pdu.Response(p, pdu.ESME_RINVBNDSTS))
		return
	}
	switch h.ID {
	case pdu.BindTransceiver, pdu.BindTransmitter, pdu.BindReceiver:
		c.bind(p.(*pdu.Bind))
	case pdu.EnquireLink:
		if !c.s.ignoreEL.Load() {
			c.respond(pdu.Response(p, pdu.ESME_ROK))
		}
	case pdu.Unbind:
		_ = c.write(pdu.Response(p, pdu.ESME_ROK))
		c.close()
	case pdu.SubmitSM:
		c.submit(p.(*pdu.SM))
	default:
		c.respond(pdu.Response(p, pdu.ESME_RINVCMDID))
	}
}

func (c *conn) bind(b *pdu.Bind) {
	st := pdu.Status(c.s.rejectBinds.Load())
	if st == pdu.ESME_ROK && c.bound() != "" {
		st = pdu.ESME_RALYBND
	}
	if st == pdu.ESME_ROK && len(c.s.opts.Credentials) > 0 {
		pw, ok := c.s.opts.Credentials[b.SystemID]
		switch {
		case !ok:
			st = pdu.ESME_RINVSYSID
		case pw != b.Password:
			st = pdu.ESME_RINVPASWD
		}
	}
	resp := &pdu.BindResp{Header: pdu.Header{ID: b.ID.Resp(), Status: st, Seq: b.Seq}, SystemID: "vumi-smsc"}
	if st == pdu.ESME_ROK {
		c.mu.Lock()
		c.systemID, c.bindType = b.SystemID, b.ID
		c.mu.Unlock()
		c.s.mu.Lock()
		c.s.binds++
		c.s.mu.Unlock()
		c.s.log.Info("smsc: bound", "system_id", b.SystemID, "bind", b.ID.String())
	}
	c.respond(resp)
}

func (c *conn) submit(p *pdu.SM) {
	st := pdu.Status(c.s.submitStatus.Load())
	if c.s.throttleAll.Load() {
		st = pdu.ESME_RTHROTTLED
	} else if c.s.throttleNext.Load() > 0 && c.s.throttleNext.Add(-1) >= 0 {
		st = pdu.ESME_RTHROTTLED
	}
	if p.Head().ID == pdu.SubmitSM && p.DestinationAddr == "" && st == pdu.ESME_ROK {
		st = pdu.ESME_RINVDSTADR
	}
	resp := &pdu.MessageIDResp{Header: pdu.Header{ID: pdu.SubmitSMResp, Status: st, Seq: p.Seq}}
	if st != pdu.ESME_ROK {
		c.respond(resp)
		return
	}
	id := fmt.Sprintf("%s%08d", c.s.pfx, c.s.ids.Add(1))
	resp.MessageID = id
	tl := map[string]string{}
	for _, t := range p.TLVs {
		tl[fmt.Sprintf("%04x", uint16(t.Tag))] = hex.EncodeToString(t.Value)
	}
	sub := Submitted{
		MessageID: id, SystemID: c.bound(), SourceAddr: p.SourceAddr, DestAddr: p.DestinationAddr, ServiceType: p.ServiceType,
		ESMClass: p.ESMClass, DataCoding: p.DataCoding, Registered: p.RegisteredDelivery, Short: p.ShortMessage, TLVs: tl, Received: time.Now(),
	}
	sub.Text = textOf(p)
	c.s.mu.Lock()
	c.s.submitted = append(c.s.submitted, sub)
	c.s.accepted++
	if k := c.s.opts.KeepSubmitted; k > 0 && len(c.s.submitted) >= 2*k {
		// Forget the oldest, in one copy per k submits.
		n := copy(c.s.submitted, c.s.submitted[len(c.s.submitted)-k:])
		clear(c.s.submitted[n:])
		c.s.submitted = c.s.submitted[:n]
	}
	c.s.mu.Unlock()
	c.respondThen(resp, func(written bool) {
		if !written {
			// The connection dropped before the answer went out: like
			// an SMSC that loses the connection before it commits, this
			// one never accepted the message (the ESME submits it again).
			c.s.withdraw(id)
			return
		}
		if p.RegisteredDelivery&0x03 == 1 {
			c.s.scheduleReceipt(c, sub)
		}
	})
}

// withdraw forgets an accepted submit_sm whose response was never sent.
func (s *SMSC) withdraw(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.submitted) - 1; i >= 0; i-- {
		if s.submitted[i].MessageID == id {
			s.submitted = append(s.submitted[:i], s.submitted[i+1:]...)
			s.accepted--
			s.withdrawn++
			return
		}
	}
}

// scheduleReceipt sends sub's delivery receipt after the receipt delay.
func (s *SMSC) scheduleReceipt(c *conn, sub Submitted) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if s.opts.ReceiptDelay > 0 {
			t := time.NewTimer(s.opts.ReceiptDelay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-s.closed:
				return
			}
		} else if isClosed(s.closed) {
			return
		}
		if err := s.sendReceipt(c, sub); err != nil {
			s.log.Warn("smsc: delivery receipt not sent", "message_id", sub.MessageID, "error", err)
		}
	}()
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// request sends a request to the ESME and waits for its response.
func (c *conn) request(ctx context.Context, p pdu.PDU) (pdu.PDU, error) {
	ch := make(chan pdu.PDU, 1)
	c.mu.Lock()
	c.seq++
	if c.seq > 0x7FFFFFFF {
		c.seq = 1
	}
	seq := c.seq
	c.pending[seq] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, seq)
		c.mu.Unlock()
	}()
	p.Head().Seq = seq
	if err := c.write(p); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-c.done:
		return nil, errors.New("connection closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// receiver picks a bind to deliver to: prefer (same system id, same
// connection unless round robin).
func (s *SMSC) receiver(systemID string, prefer *conn) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cands []*conn
	for c := range s.conns {
		if c.canReceive() && (systemID == "" || c.bound() == systemID) {
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 {
		return nil, errors.New("no receiving bind")
	}
	if prefer != nil && !s.opts.ReceiptsRoundRobin {
		for _, c := range cands {
			if c == prefer {
				return c, nil
			}
		}
	}
	s.rr++
	// Deterministic order so that round robin alternates.
	best := cands[0]
	for _, c := range cands {
		if c.nc.RemoteAddr().String() < best.nc.RemoteAddr().String() {
			best = c
		}
	}
	sorted := []*conn{best}
	for _, c := range cands {
		if c != best {
			sorted = append(sorted, c)
		}
	}
	return sorted[s.rr%len(sorted)], nil
}

// deliver sends a deliver_sm to a receiving bind of systemID (any when
// empty). With retry it waits up to 30 s for such a bind and retries an
// answer other than ESME_ROK (on another bind or later); without, both
// are returned as errors at once.
func (s *SMSC) deliver(ctx context.Context, systemID string, prefer *conn, p *pdu.SM, retry bool) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		c, err := s.receiver(systemID, prefer)
		if err != nil && !retry {
			return err
		}
		if err == nil {
			q := *p
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var resp pdu.PDU
			resp, err = c.request(rctx, &q)
			cancel()
			if err == nil && resp.Head().Status == pdu.ESME_ROK {
				return nil
			}
			if err == nil {
				if !retry {
					return resp.Head().Status
				}
				err = fmt.Errorf("deliver_sm answered %s", resp.Head().Status)
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return errors.New("smsc closed")
		case <-time.After(200 * time.Millisecond):
		}
	}
	return last
}

func (s *SMSC) sendReceipt(c *conn, sub Submitted) error {
	now := time.Now().Format("0601021504")
	text := sub.Short
	if len(text) > 20 {
		text = text[:20]
	}
	stat := s.opts.ReceiptStatus
	body := fmt.Sprintf("id:%s sub:001 dlvrd:001 submit date:%s done date:%s stat:%s err:000 text:%s",
		sub.MessageID, sub.Received.Format("0601021504"), now, stat, strings.Map(func(r rune) rune {
			if r < 0x20 || r > 0x7E {
				return '.'
			}
			return r
		}, string(text)))
	p := &pdu.SM{
		Header:     pdu.Header{ID: pdu.DeliverSM},
		SourceAddr: sub.DestAddr, DestinationAddr: sub.SourceAddr,
		ESMClass:     pdu.ESMClassDeliveryReceipt,
		ShortMessage: []byte(body),
	}
	if s.opts.ReceiptTLVs {
		p.TLVs.SetCString(pdu.TagReceiptedMessageID, sub.MessageID)
		p.TLVs.SetUint8(pdu.TagMessageState, stateOf(stat))
	}
	return s.deliver(context.Background(), sub.SystemID, c, p, true)
}

func textOf(p *pdu.SM) string {
	data := p.ShortMessage
	if v, ok := p.TLVs.Get(pdu.TagMessagePayload); ok {
		data = v
	}
	if p.ESMClass&pdu.ESMClassUDHI != 0 {
		if _, rest, err := coding.ParseUDH(data); err == nil {
			data = rest
		}
	}
	c := coding.Default(p.DataCoding)
	if c == nil {
		return ""
	}
	s, err := c.Decode(data)
	if err != nil {
		return ""
	}
	return s
}

func stateOf(stat string) byte {
	switch stat {
	case "DELIVRD":
		return 2
	case "EXPIRED":
		return 3
	case "DELETED":
		return 4
	case "UNDELIV":
		return 5
	case "ACCEPTD":
		return 6
	case "REJECTD":
		return 8
	case "ENROUTE":
		return 1
	}
	return 7
}

// MO is a mobile-originated message to inject.
type MO struct {
	SystemID    string // deliver to this ESME's binds; empty: any
	SourceAddr  string
	DestAddr    string
	ESMClass    byte
	DataCoding  byte
	Short       []byte
	TLVs        pdu.TLVs
	UseDataSM   bool
	ServiceType string
}

// Inject delivers one deliver_sm (or data_sm) and waits for the ESME to
// accept it.
func (s *SMSC) Inject(ctx context.Context, mo MO) error {
	if mo.UseDataSM {
		p := &pdu.DataSMBody{Header: pdu.Header{ID: pdu.DataSM}, ServiceType: mo.ServiceType, SourceAddr: mo.SourceAddr,
			DestinationAddr: mo.DestAddr, ESMClass: mo.ESMClass, DataCoding: mo.DataCoding, TLVs: append(pdu.TLVs{}, mo.TLVs...)}
		if len(mo.Short) > 0 {
			p.TLVs.Set(pdu.TagMessagePayload, mo.Short)
		}
		c, err := s.receiver(mo.SystemID, nil)
		if err != nil {
			return err
		}
		resp, err := c.request(ctx, p)
		if err != nil {
			return err
		}
		if st := resp.Head().Status; st != pdu.ESME_ROK {
			return st
		}
		return nil
	}
	if len(mo.Short) > pdu.MaxShortMessage {
		return fmt.Errorf("short_message of %d octets; use message_payload or parts", len(mo.Short))
	}
	return s.deliver(ctx, mo.SystemID, nil, &pdu.SM{
		Header: pdu.Header{ID: pdu.DeliverSM}, ServiceType: mo.ServiceType, SourceAddr: mo.SourceAddr, DestinationAddr: mo.DestAddr,
		ESMClass: mo.ESMClass, DataCoding: mo.DataCoding, ShortMessage: mo.Short, TLVs: mo.TLVs,
	}, false)
}
