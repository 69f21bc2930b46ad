package smpp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/coding"
	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
	"github.com/vumi-kafka/vumi/schemas"
)

// incoming is what deliver_sm and data_sm have in common.
type incoming struct {
	source, dest string
	esmClass     byte
	dataCoding   byte
	short        []byte
	tlvs         pdu.TLVs
}

// text returns the user data: message_payload when present, else
// short_message.
func (in *incoming) text() []byte {
	if v, ok := in.tlvs.Get(pdu.TagMessagePayload); ok {
		return v
	}
	return in.short
}

// handleInbound handles a deliver_sm or data_sm and returns the status of
// its response: ESME_ROK once what it carries is safely in Kafka,
// ESME_RX_T_APPN (the SMSC retries later) when Kafka cannot take it.
func (tr *Transport) handleInbound(ctx context.Context, _ *session, p pdu.PDU) pdu.Status {
	ctx = context.WithoutCancel(ctx)
	var in incoming
	switch p := p.(type) {
	case *pdu.SM:
		in = incoming{p.SourceAddr, p.DestinationAddr, p.ESMClass, p.DataCoding, p.ShortMessage, p.TLVs}
	case *pdu.DataSMBody:
		in = incoming{p.SourceAddr, p.DestinationAddr, p.ESMClass, p.DataCoding, nil, p.TLVs}
	default:
		return pdu.ESME_RINVCMDID
	}
	if ok, st := tr.deliveryReport(ctx, &in); ok {
		return st
	}
	if _, ok := in.tlvs.Get(pdu.TagUssdServiceOp); ok {
		return tr.ussd(ctx, &in)
	}
	if ok, st := tr.multipart(ctx, &in); ok {
		return st
	}
	content, err := tr.cfg.codecs.Decode(in.dataCoding, in.text())
	if err != nil {
		tr.log.Warn("cannot decode an inbound message", "data_coding", in.dataCoding, "error", err)
		return tr.cfg.decodingError
	}
	return tr.publish(ctx, &in, &content, nil, nil)
}

func (tr *Transport) publish(ctx context.Context, in *incoming, content *string, ev *schemas.SessionEvent, meta schemas.Metadata) pdu.Status {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr = schemas.String(in.source), schemas.String(in.dest)
	m.Content = content
	m.TransportName = schemas.String(tr.cfg.TransportName)
	m.TransportType = schemas.String(tr.cfg.TransportType)
	if ev != nil {
		m.SessionEvent = ev
		m.TransportType = schemas.String(schemas.TransportUSSD)
	}
	m.TransportMetadata = meta
	if err := tr.t.PublishMessage(ctx, m); err != nil {
		tr.log.Error("cannot publish an inbound message; the SMSC will retry", "error", err)
		return pdu.ESME_RX_T_APPN
	}
	return pdu.ESME_ROK
}

// deliveryReport recognises a delivery report by its receipted_message_id
// and message_state TLVs, by esm_class, or by its text matching the
// configured regex, and publishes it for the original message.
func (tr *Transport) deliveryReport(ctx context.Context, in *incoming) (bool, pdu.Status) {
	id, hasID := in.tlvs.String(pdu.TagReceiptedMessageID)
	state, hasState := in.tlvs.Uint(pdu.TagMessageState)
	var smscStatus string
	switch {
	case hasID && hasState:
		smscStatus = pdu.MessageStates[byte(state)]
		if smscStatus == "" {
			smscStatus = "UNKNOWN"
		}
	default:
		var matched bool
		if id, smscStatus, matched = tr.cfg.matchDR(in.text()); !matched {
			if in.esmClass&pdu.ESMClassTypeMask != 0 {
				tr.log.Warn("esm_class says delivery report, but the text does not match the regex", "esm_class", in.esmClass, "text", latin1(in.text()))
				return true, pdu.ESME_ROK
			}
			return false, 0
		}
	}
	status := schemas.DeliveryStatus(tr.cfg.DrProcessorConfig.StatusMapping[smscStatus])
	if !status.Valid() {
		status = schemas.DeliveryPending
	}
	msgID, found, err := tr.lookup(ctx, id)
	if err != nil {
		tr.log.Error("cannot look up a delivery report's message", "smsc_message_id", id, "error", err)
		return true, pdu.ESME_RX_T_APPN
	}
	if !found {
		tr.log.Warn("delivery report for an unknown SMSC message id; discarded", "smsc_message_id", id, "status", smscStatus)
		tr.t.Count("delivery_reports_unmatched", 1)
		return true, pdu.ESME_ROK
	}
	if status != schemas.DeliveryPending {
		tr.ids.Delete(id)
	}
	if tr.cfg.DisableDeliveryReport {
		return true, pdu.ESME_ROK
	}
	if err := tr.t.PublishDeliveryReport(ctx, msgID, status, schemas.Metadata{"smpp_delivery_status": smscStatus, "smpp_message_id": id}); err != nil {
		tr.log.Error("cannot publish a delivery report; the SMSC will retry", "error", err)
		return true, pdu.ESME_RX_T_APPN
	}
	return true, pdu.ESME_ROK
}

// lookupWait is how long a delivery report waits for its message id to
// reach this instance's copy of the table (another instance, or this one
// a moment ago, may have just written it).
const lookupWait = 3 * time.Second

func (tr *Transport) lookup(ctx context.Context, smscID string) (string, bool, error) {
	// A receipt often overtakes the submit_sm_resp's handling (the SMSC
	// sends both at once): wait for the next write to the table rather
	// than polling, so that such a receipt costs microseconds, not a
	// polling interval.
	var deadline *time.Timer // started at the first miss: most lookups hit at once
	for {
		changed := tr.ids.Changed() // before Get: a write in between is not missed
		v, ok, err := tr.ids.Get(smscID)
		if err != nil || ok {
			return string(v), ok, err
		}
		if deadline == nil {
			deadline = time.NewTimer(lookupWait)
			defer deadline.Stop()
		}
		select {
		case <-ctx.Done():
			return "", false, ctx.Err()
		case <-deadline.C:
			return "", false, nil
		case <-changed:
		}
	}
}

func latin1(b []byte) string {
	ascii := true
	for _, c := range b {
		ascii = ascii && c < 0x80
	}
	if ascii { // the same bytes in UTF-8
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// multipart stores one part of a concatenated message (SAR TLVs, or a
// UDH with an 8- or 16-bit reference) in the parts table; whichever
// instance holds every part publishes the whole message.
func (tr *Transport) multipart(ctx context.Context, in *incoming) (bool, pdu.Status) {
	var c *coding.Concat
	data := in.text()
	ref, ok1 := in.tlvs.Uint(pdu.TagSarMsgRefNum)
	total, ok2 := in.tlvs.Uint(pdu.TagSarTotalSegments)
	seq, ok3 := in.tlvs.Uint(pdu.TagSarSegmentSeqnum)
	switch {
	case ok1 && ok2 && ok3:
		c = &coding.Concat{Ref: uint16(ref), Total: int(total), Seq: int(seq), Ref16: true}
		if c.Total < 1 || c.Seq < 1 || c.Seq > c.Total {
			return true, pdu.ESME_RINVOPTPARAMVAL
		}
	case in.esmClass&pdu.ESMClassUDHI != 0 || looksLikeConcatUDH(data):
		cc, rest, err := coding.ParseUDH(data)
		if err != nil {
			tr.log.Warn("malformed user data header", "error", err)
			return true, tr.cfg.decodingError
		}
		if cc == nil { // a UDH without concatenation: the rest is the text
			in.tlvs, in.short = nil, rest
			return false, 0
		}
		c, data = cc, rest
	default:
		return false, 0
	}
	if c.Total == 1 {
		in.tlvs, in.short = nil, data
		return false, 0
	}
	refKind := "8"
	if c.Ref16 {
		refKind = "16"
	}
	key := fmt.Sprintf("%s|%s|%s:%d|%d", in.source, in.dest, refKind, c.Ref, c.Total)
	if err := tr.parts.Put(ctx, fmt.Sprintf("%s|%d", key, c.Seq), tr.encodePart(in.dataCoding, data), tr.cfg.cacheTimeout()); err != nil {
		tr.log.Error("cannot store a message part; the SMSC will retry", "error", err)
		return true, pdu.ESME_RX_T_APPN
	}
	if done, st := tr.complete(ctx, in, key, c.Total, false); done {
		return true, st
	}
	// Parts stored by other instances may not have reached this copy of
	// the table yet: look again shortly. The instance that stored the
	// newest part publishes; the others only step in if the parts are
	// still there much later (that instance died).
	tr.bg.Add(1)
	go func() {
		defer tr.bg.Done()
		for i, d := range []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second} {
			time.Sleep(d)
			if done, _ := tr.complete(ctx, in, key, c.Total, i == 2); done {
				return
			}
		}
	}()
	return true, pdu.ESME_ROK
}

// A stored part: data_coding, when and by which instance it was stored,
// the user data.
const partHeader = 1 + 8 + 8

func (tr *Transport) encodePart(dc byte, data []byte) []byte {
	b := append(make([]byte, 0, partHeader+len(data)), dc)
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().UnixNano()))
	b = append(b, tr.instance[:]...)
	return append(b, data...)
}

func looksLikeConcatUDH(b []byte) bool {
	return (len(b) >= 6 && b[0] == 5 && b[1] == 0 && b[2] == 3) || (len(b) >= 7 && b[0] == 6 && b[1] == 8 && b[2] == 4)
}

// complete publishes the message when every part is in the table and
// this instance stored the newest part (or anyway, when force is set).
func (tr *Transport) complete(ctx context.Context, in *incoming, key string, total int, force bool) (bool, pdu.Status) {
	var joined []byte
	dc := in.dataCoding
	var newest []byte // timestamp + instance of the newest part
	for i := 1; i <= total; i++ {
		v, ok, err := tr.parts.Get(fmt.Sprintf("%s|%d", key, i))
		if err != nil || !ok || len(v) < partHeader {
			return false, pdu.ESME_ROK
		}
		dc = v[0]
		if stamp := v[1:partHeader]; bytes.Compare(stamp, newest) > 0 {
			newest = stamp
		}
		joined = append(joined, v[partHeader:]...)
	}
	if !force && !bytes.Equal(newest[8:], tr.instance[:]) {
		return false, pdu.ESME_ROK
	}
	for i := 1; i <= total; i++ {
		tr.parts.Delete(fmt.Sprintf("%s|%d", key, i))
	}
	content, err := tr.cfg.codecs.Decode(dc, joined)
	if err != nil {
		tr.log.Warn("cannot decode a reassembled message", "data_coding", dc, "error", err)
		return true, tr.cfg.decodingError
	}
	whole := *in
	whole.tlvs = nil
	return true, tr.publish(ctx, &whole, &content, nil, nil)
}

// ussd turns a USSD deliver_sm into a message with its session event,
// per the configured processor.
func (tr *Transport) ussd(ctx context.Context, in *incoming) pdu.Status {
	op, _ := in.tlvs.Uint(pdu.TagUssdServiceOp)
	its, hasIts := in.tlvs.Uint(pdu.TagItsSessionInfo)
	decode := func() (*string, pdu.Status) {
		s, err := tr.cfg.codecs.Decode(in.dataCoding, in.text())
		if err != nil {
			return nil, tr.cfg.decodingError
		}
		return &s, pdu.ESME_ROK
	}
	ev := func(e schemas.SessionEvent) *schemas.SessionEvent { return &e }
	if tr.cfg.smProc == "default" {
		event := schemas.SessionClose
		switch op {
		case ussdPSSRIndication:
			event = schemas.SessionNew
		case ussdPSSRResponse:
			event = schemas.SessionClose
		case ussdUSSRRequest, ussdUSSRConfirm:
			event = schemas.SessionResume
		}
		if hasIts && its&1 == 1 {
			event = schemas.SessionClose
		}
		content, st := decode()
		if st != pdu.ESME_ROK {
			return st
		}
		return tr.publish(ctx, in, content, ev(event), schemas.Metadata{"session_info": fmt.Sprintf("%04x", its&0xfffe)})
	}
	// 6D and Mica: the dialled code is remembered for the session.
	var sid string
	end := false
	if tr.cfg.smProc == "mica" {
		ref, _ := in.tlvs.Uint(pdu.TagUserMessageReference)
		sid = strconv.Itoa(int(ref))
	} else {
		sid = fmt.Sprintf("%04x", its&0xfffe)
		end = hasIts && its&1 == 1
	}
	key := in.source + "+" + sid
	var event schemas.SessionEvent
	switch {
	case end:
		event = schemas.SessionClose
	case op == ussdPSSRIndication:
		event = schemas.SessionNew
	case op == ussdVendorAbort:
		event = schemas.SessionClose
	default:
		if op != ussdUSSRConfirm {
			tr.log.Warn("unknown ussd_service_op, assuming continue", "ussd_service_op", op)
		}
		event = schemas.SessionResume
	}
	var content *string
	var code string
	ttl := time.Duration(tr.cfg.SmProcessorConfig.MaxSessionLength) * time.Second
	switch event {
	case schemas.SessionNew:
		code = latin1(in.short)
		if tr.cfg.SmProcessorConfig.UssdCodePduField == "destination_addr" || tr.cfg.smProc == "mica" && code == "" {
			code = in.dest
		}
		if err := tr.sessions.Put(ctx, key, []byte(code), ttl); err != nil {
			tr.log.Error("cannot store a USSD session", "error", err)
			return pdu.ESME_RX_T_APPN
		}
	default:
		v, ok, err := tr.sessions.Get(key)
		if err != nil {
			return pdu.ESME_RX_T_APPN
		}
		if !ok {
			tr.log.Warn("USSD message for an unknown session", "session", key)
		}
		code = string(v)
		if event == schemas.SessionClose {
			tr.sessions.Delete(key)
		} else {
			c, st := decode()
			if st != pdu.ESME_ROK {
				return st
			}
			content = c
		}
	}
	whole := *in
	whole.dest = code
	meta := schemas.Metadata{"session_info": map[string]any{
		"ussd_service_op":    strings.ToLower(fmt.Sprintf("%02x", op)),
		"session_identifier": sid,
	}}
	return tr.publish(ctx, &whole, content, ev(event), meta)
}
