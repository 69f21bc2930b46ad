package pdu

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderLen is the size of the PDU header.
const HeaderLen = 16

// MaxLen is the default upper bound of command_length accepted when
// reading: a submit_sm with a full message_payload fits comfortably.
const MaxLen = 70000

// Header is the PDU header; CommandLength is filled by Encode.
type Header struct {
	ID     CommandID
	Status Status
	Seq    uint32
}

// PDU is one SMPP operation.
type PDU interface {
	// Head returns the PDU's header.
	Head() *Header
	appendBody(b []byte) []byte
	decodeBody(r *reader)
}

// Head implements PDU.
func (h *Header) Head() *Header { return h }

// TLV is one optional parameter.
type TLV struct {
	Tag   Tag
	Value []byte
}

// TLVs is a PDU's optional parameters, in wire order.
type TLVs []TLV

// Get returns the value of tag.
func (ts TLVs) Get(tag Tag) ([]byte, bool) {
	for _, t := range ts {
		if t.Tag == tag {
			return t.Value, true
		}
	}
	return nil, false
}

// Uint returns an integer TLV (1, 2 or 4 bytes, big-endian).
func (ts TLVs) Uint(tag Tag) (uint32, bool) {
	v, ok := ts.Get(tag)
	if !ok {
		return 0, false
	}
	switch len(v) {
	case 1:
		return uint32(v[0]), true
	case 2:
		return uint32(binary.BigEndian.Uint16(v)), true
	case 4:
		return binary.BigEndian.Uint32(v), true
	}
	return 0, false
}

// String returns a C-octet-string TLV without its NUL.
func (ts TLVs) String(tag Tag) (string, bool) {
	v, ok := ts.Get(tag)
	if !ok {
		return "", false
	}
	for i, c := range v {
		if c == 0 {
			v = v[:i]
			break
		}
	}
	return string(v), true
}

// Set replaces or appends tag.
func (ts *TLVs) Set(tag Tag, value []byte) {
	for i := range *ts {
		if (*ts)[i].Tag == tag {
			(*ts)[i].Value = value
			return
		}
	}
	*ts = append(*ts, TLV{tag, value})
}

// SetUint8 sets a 1-byte TLV.
func (ts *TLVs) SetUint8(tag Tag, v uint8) { ts.Set(tag, []byte{v}) }

// SetUint16 sets a 2-byte TLV.
func (ts *TLVs) SetUint16(tag Tag, v uint16) { ts.Set(tag, binary.BigEndian.AppendUint16(nil, v)) }

// SetCString sets a C-octet-string TLV (NUL added).
func (ts *TLVs) SetCString(tag Tag, v string) { ts.Set(tag, append([]byte(v), 0)) }

// Bind is bind_transmitter, bind_receiver or bind_transceiver (and outbind
// uses SystemID and Password only).
type Bind struct {
	Header
	SystemID         string
	Password         string
	SystemType       string
	InterfaceVersion byte
	AddrTON          byte
	AddrNPI          byte
	AddressRange     string
}

// BindResp is the response to a bind.
type BindResp struct {
	Header
	SystemID string
	TLVs     TLVs
}

// SM is submit_sm or deliver_sm: they share their layout.
type SM struct {
	Header
	ServiceType          string
	SourceAddrTON        byte
	SourceAddrNPI        byte
	SourceAddr           string
	DestAddrTON          byte
	DestAddrNPI          byte
	DestinationAddr      string
	ESMClass             byte
	ProtocolID           byte
	PriorityFlag         byte
	ScheduleDeliveryTime string
	ValidityPeriod       string
	RegisteredDelivery   byte
	ReplaceIfPresent     byte
	DataCoding           byte
	SMDefaultMsgID       byte
	ShortMessage         []byte
	TLVs                 TLVs
}

// DataSMBody is data_sm.
type DataSMBody struct {
	Header
	ServiceType        string
	SourceAddrTON      byte
	SourceAddrNPI      byte
	SourceAddr         string
	DestAddrTON        byte
	DestAddrNPI        byte
	DestinationAddr    string
	ESMClass           byte
	RegisteredDelivery byte
	DataCoding         byte
	TLVs               TLVs
}

// MessageIDResp is submit_sm_resp, deliver_sm_resp or data_sm_resp. An
// error response may carry no body at all.
type MessageIDResp struct {
	Header
	MessageID string
	TLVs      TLVs
}

// Empty is a PDU with a header only: enquire_link, unbind, their
// responses and generic_nack.
type Empty struct{ Header }

// Errors of decoding.
var (
	ErrTooShort = errors.New("pdu shorter than its 16-byte header")
)

// DecodeError is a PDU that could not be decoded. Status is what the peer
// should be told (in a generic_nack, or in the operation's response when ID
// is a known request).
type DecodeError struct {
	ID     CommandID
	Seq    uint32
	Status Status
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("pdu %s seq %d: %s (%s)", e.ID, e.Seq, e.Msg, e.Status)
}

// New returns an empty PDU of the given command id, or nil for ids this
// package has no body for.
func New(id CommandID) PDU {
	var p PDU
	switch id {
	case BindReceiver, BindTransmitter, BindTransceiver:
		p = &Bind{}
	case BindReceiverResp, BindTransmitterResp, BindTransceiverResp:
		p = &BindResp{}
	case SubmitSM, DeliverSM:
		p = &SM{}
	case DataSM:
		p = &DataSMBody{}
	case SubmitSMResp, DeliverSMResp, DataSMResp:
		p = &MessageIDResp{}
	case EnquireLink, EnquireLinkResp, Unbind, UnbindResp, GenericNack:
		p = &Empty{}
	default:
		return nil
	}
	p.Head().ID = id
	return p
}

// Encode returns p on the wire.
func Encode(p PDU) []byte { return AppendEncode(make([]byte, 0, 64), p) }

// AppendEncode appends p on the wire to b.
func AppendEncode(b []byte, p PDU) []byte {
	start := len(b)
	h := p.Head()
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(h.ID))
	b = binary.BigEndian.AppendUint32(b, uint32(h.Status))
	b = binary.BigEndian.AppendUint32(b, h.Seq)
	b = p.appendBody(b)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// Decode decodes one whole PDU (header included). Unknown command ids
// give a DecodeError with ESME_RINVCMDID.
func Decode(b []byte) (PDU, error) {
	if len(b) < HeaderLen {
		return nil, &DecodeError{Status: ESME_RINVCMDLEN, Msg: ErrTooShort.Error()}
	}
	length := binary.BigEndian.Uint32(b)
	id := CommandID(binary.BigEndian.Uint32(b[4:]))
	st := Status(binary.BigEndian.Uint32(b[8:]))
	seq := binary.BigEndian.Uint32(b[12:])
	if int64(length) != int64(len(b)) {
		return nil, &DecodeError{ID: id, Seq: seq, Status: ESME_RINVCMDLEN, Msg: fmt.Sprintf("command_length %d but %d bytes", length, len(b))}
	}
	p := New(id)
	if p == nil {
		return nil, &DecodeError{ID: id, Seq: seq, Status: ESME_RINVCMDID, Msg: "unsupported command id"}
	}
	*p.Head() = Header{ID: id, Status: st, Seq: seq}
	r := &reader{b: b[HeaderLen:]}
	p.decodeBody(r)
	if r.err == nil && len(r.b) > 0 {
		r.fail(ESME_RINVCMDLEN, fmt.Sprintf("%d bytes after the last parameter", len(r.b)))
	}
	if r.err != nil {
		r.err.ID, r.err.Seq = id, seq
		return nil, r.err
	}
	return p, nil
}

// Reader reads PDUs from a stream. It reads ahead (a window of PDUs
// usually arrives in one segment, and is read with one system call
// instead of two per PDU), so it must be the stream's only reader.
type Reader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// readAhead is the Reader's buffer: a window of short-message PDUs.
const readAhead = 32 << 10

// NewReader reads PDUs from r, refusing a command_length above max (0: MaxLen).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = MaxLen
	}
	return &Reader{r: bufio.NewReaderSize(r, readAhead), max: max}
}

// FrameError is a command_length that makes the stream unreadable: the
// connection cannot continue after it.
type FrameError struct {
	Length uint32
	ID     CommandID
	Seq    uint32
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("invalid command_length %d (command %s, seq %d)", e.Length, e.ID, e.Seq)
}

// Read returns the next PDU. I/O errors are returned as they are; a
// *FrameError means the stream is corrupt; a *DecodeError means this PDU
// was malformed but the stream can go on.
func (r *Reader) Read() (PDU, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return nil, err
	}
	length := binary.BigEndian.Uint32(hdr[:])
	if length < HeaderLen || length > uint32(r.max) {
		return nil, &FrameError{Length: length, ID: CommandID(binary.BigEndian.Uint32(hdr[4:])), Seq: binary.BigEndian.Uint32(hdr[12:])}
	}
	if cap(r.buf) < int(length) {
		r.buf = make([]byte, length)
	}
	buf := r.buf[:length]
	copy(buf, hdr[:])
	if _, err := io.ReadFull(r.r, buf[HeaderLen:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return Decode(buf)
}

// reader reads mandatory parameters; the first error sticks.
type reader struct {
	b   []byte
	err *DecodeError
}

func (r *reader) fail(st Status, msg string) {
	if r.err == nil {
		r.err = &DecodeError{Status: st, Msg: msg}
	}
	r.b = nil
}

func (r *reader) byte(name string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail(ESME_RINVMSGLEN, "missing "+name)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// cstring reads a C-octet string of at most max bytes including its NUL.
func (r *reader) cstring(name string, max int, st Status) string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.b {
		if c == 0 {
			if i+1 > max {
				r.fail(st, fmt.Sprintf("%s longer than %d bytes", name, max-1))
				return ""
			}
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
		if i+1 >= max {
			break
		}
	}
	if len(r.b) == 0 {
		r.fail(ESME_RINVMSGLEN, "missing "+name)
	} else {
		r.fail(st, fmt.Sprintf("%s not NUL-terminated within %d bytes", name, max))
	}
	return ""
}

func (r *reader) octets(name string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail(ESME_RINVMSGLEN, fmt.Sprintf("%s: %d bytes announced, %d left", name, n, len(r.b)))
		return nil
	}
	v := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return v
}

func (r *reader) tlvs() TLVs {
	var out TLVs
	for r.err == nil && len(r.b) > 0 {
		if len(r.b) < 4 {
			r.fail(ESME_RINVOPTPARSTREAM, "truncated optional parameter header")
			return nil
		}
		tag := Tag(binary.BigEndian.Uint16(r.b))
		n := int(binary.BigEndian.Uint16(r.b[2:]))
		if len(r.b) < 4+n {
			r.fail(ESME_RINVOPTPARSTREAM, fmt.Sprintf("optional parameter 0x%04x: length %d exceeds the PDU", uint16(tag), n))
			return nil
		}
		out = append(out, TLV{Tag: tag, Value: append([]byte{}, r.b[4:4+n]...)})
		r.b = r.b[4+n:]
	}
	return out
}

func appendCString(b []byte, s string) []byte { return append(append(b, s...), 0) }

func appendTLVs(b []byte, ts TLVs) []byte {
	for _, t := range ts {
		b = binary.BigEndian.AppendUint16(b, uint16(t.Tag))
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.Value)))
		b = append(b, t.Value...)
	}
	return b
}

// Field limits (bytes including the NUL) from SMPP 3.4 section 4.
const (
	MaxSystemID     = 16
	MaxPassword     = 9
	MaxSystemType   = 13
	MaxAddressRange = 41
	MaxServiceType  = 6
	MaxAddr         = 21
	MaxDataSMAddr   = 65
	MaxTime         = 17
	MaxMessageID    = 65
	MaxShortMessage = 254
)

func (p *Bind) appendBody(b []byte) []byte {
	if p.ID == Outbind {
		return appendCString(appendCString(b, p.SystemID), p.Password)
	}
	b = appendCString(b, p.SystemID)
	b = appendCString(b, p.Password)
	b = appendCString(b, p.SystemType)
	b = append(b, p.InterfaceVersion, p.AddrTON, p.AddrNPI)
	return appendCString(b, p.AddressRange)
}

func (p *Bind) decodeBody(r *reader) {
	p.SystemID = r.cstring("system_id", MaxSystemID, ESME_RINVSYSID)
	p.Password = r.cstring("password", MaxPassword, ESME_RINVPASWD)
	p.SystemType = r.cstring("system_type", MaxSystemType, ESME_RINVSYSTYP)
	p.InterfaceVersion = r.byte("interface_version")
	p.AddrTON = r.byte("addr_ton")
	p.AddrNPI = r.byte("addr_npi")
	p.AddressRange = r.cstring("address_range", MaxAddressRange, ESME_RINVPARLEN)
}

func (p *BindResp) appendBody(b []byte) []byte {
	return appendTLVs(appendCString(b, p.SystemID), p.TLVs)
}

func (p *BindResp) decodeBody(r *reader) {
	if len(r.b) == 0 && p.Status != ESME_ROK {
		return // error responses may omit the body
	}
	p.SystemID = r.cstring("system_id", MaxSystemID, ESME_RINVSYSID)
	p.TLVs = r.tlvs()
}

func (p *SM) appendBody(b []byte) []byte {
	b = appendCString(b, p.ServiceType)
	b = append(b, p.SourceAddrTON, p.SourceAddrNPI)
	b = appendCString(b, p.SourceAddr)
	b = append(b, p.DestAddrTON, p.DestAddrNPI)
	b = appendCString(b, p.DestinationAddr)
	b = append(b, p.ESMClass, p.ProtocolID, p.PriorityFlag)
	b = appendCString(b, p.ScheduleDeliveryTime)
	b = appendCString(b, p.ValidityPeriod)
	b = append(b, p.RegisteredDelivery, p.ReplaceIfPresent, p.DataCoding, p.SMDefaultMsgID, byte(len(p.ShortMessage)))
	b = append(b, p.ShortMessage...)
	return appendTLVs(b, p.TLVs)
}

func (p *SM) decodeBody(r *reader) {
	p.ServiceType = r.cstring("service_type", MaxServiceType, ESME_RINVSERTYP)
	p.SourceAddrTON = r.byte("source_addr_ton")
	p.SourceAddrNPI = r.byte("source_addr_npi")
	// Many SMSCs send longer addresses than 3.4 allows (alphanumeric
	// senders, data_sm-sized addresses): accept up to data_sm's limit.
	p.SourceAddr = r.cstring("source_addr", MaxDataSMAddr, ESME_RINVSRCADR)
	p.DestAddrTON = r.byte("dest_addr_ton")
	p.DestAddrNPI = r.byte("dest_addr_npi")
	p.DestinationAddr = r.cstring("destination_addr", MaxDataSMAddr, ESME_RINVDSTADR)
	p.ESMClass = r.byte("esm_class")
	p.ProtocolID = r.byte("protocol_id")
	p.PriorityFlag = r.byte("priority_flag")
	p.ScheduleDeliveryTime = r.cstring("schedule_delivery_time", MaxTime, ESME_RINVSCHED)
	p.ValidityPeriod = r.cstring("validity_period", MaxTime, ESME_RINVEXPIRY)
	p.RegisteredDelivery = r.byte("registered_delivery")
	p.ReplaceIfPresent = r.byte("replace_if_present_flag")
	p.DataCoding = r.byte("data_coding")
	p.SMDefaultMsgID = r.byte("sm_default_msg_id")
	n := r.byte("sm_length")
	p.ShortMessage = r.octets("short_message", int(n))
	p.TLVs = r.tlvs()
}

func (p *DataSMBody) appendBody(b []byte) []byte {
	b = appendCString(b, p.ServiceType)
	b = append(b, p.SourceAddrTON, p.SourceAddrNPI)
	b = appendCString(b, p.SourceAddr)
	b = append(b, p.DestAddrTON, p.DestAddrNPI)
	b = appendCString(b, p.DestinationAddr)
	b = append(b, p.ESMClass, p.RegisteredDelivery, p.DataCoding)
	return appendTLVs(b, p.TLVs)
}

func (p *DataSMBody) decodeBody(r *reader) {
	p.ServiceType = r.cstring("service_type", MaxServiceType, ESME_RINVSERTYP)
	p.SourceAddrTON = r.byte("source_addr_ton")
	p.SourceAddrNPI = r.byte("source_addr_npi")
	p.SourceAddr = r.cstring("source_addr", MaxDataSMAddr, ESME_RINVSRCADR)
	p.DestAddrTON = r.byte("dest_addr_ton")
	p.DestAddrNPI = r.byte("dest_addr_npi")
	p.DestinationAddr = r.cstring("destination_addr", MaxDataSMAddr, ESME_RINVDSTADR)
	p.ESMClass = r.byte("esm_class")
	p.RegisteredDelivery = r.byte("registered_delivery")
	p.DataCoding = r.byte("data_coding")
	p.TLVs = r.tlvs()
}

func (p *MessageIDResp) appendBody(b []byte) []byte {
	if p.ID == DeliverSMResp && p.MessageID == "" && len(p.TLVs) == 0 {
		// deliver_sm_resp's message_id is unused and set to NULL.
		return append(b, 0)
	}
	return appendTLVs(appendCString(b, p.MessageID), p.TLVs)
}

func (p *MessageIDResp) decodeBody(r *reader) {
	if len(r.b) == 0 && (p.Status != ESME_ROK || p.ID == DeliverSMResp) {
		return // body omitted (error response, or a lax deliver_sm_resp)
	}
	p.MessageID = r.cstring("message_id", MaxMessageID, ESME_RINVMSGID)
	p.TLVs = r.tlvs()
}

func (p *Empty) appendBody(b []byte) []byte { return b }
func (p *Empty) decodeBody(*reader)         {}

// Response returns the empty-bodied response to request p with status st
// (generic_nack for what has no response of its own).
func Response(p PDU, st Status) PDU {
	h := p.Head()
	var out PDU
	switch h.ID {
	case SubmitSM, DeliverSM, DataSM:
		out = &MessageIDResp{}
	case BindReceiver, BindTransmitter, BindTransceiver:
		out = &BindResp{}
	case EnquireLink, Unbind:
		out = &Empty{}
	default:
		out = &Empty{Header{ID: GenericNack}}
		out.Head().Status, out.Head().Seq = st, h.Seq
		return out
	}
	*out.Head() = Header{ID: h.ID.Resp(), Status: st, Seq: h.Seq}
	return out
}

// ResponseFor returns the response PDU a peer should get for a PDU that
// failed to decode: the operation's own response for a known request,
// otherwise generic_nack.
func ResponseFor(e *DecodeError) PDU {
	switch e.ID {
	case SubmitSM, DeliverSM, DataSM, BindReceiver, BindTransmitter, BindTransceiver, EnquireLink, Unbind:
		return Response(&Empty{Header{ID: e.ID, Seq: e.Seq}}, e.Status)
	}
	return &Empty{Header{ID: GenericNack, Status: e.Status, Seq: e.Seq}}
}
