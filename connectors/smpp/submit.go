package smpp

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/vumi-kafka/vumi/connectors/smpp/coding"
	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
	"github.com/vumi-kafka/vumi/schemas"
)

// USSD service operations (SMPP 3.4 section 5.3.2.44) and the vendor
// values Vumi's 6D and Mica processors use.
const (
	ussdPSSRIndication = 0x01
	ussdUSSRRequest    = 0x02
	ussdPSSRResponse   = 0x11
	ussdUSSRConfirm    = 0x12
	ussdVendorEnd      = 0x17 // 6D / Mica: end of session (outbound)
	ussdVendorAbort    = 0x81 // 6D / Mica: user abort (inbound)
)

// submitter turns an outbound message into submit_sm PDUs (Vumi's submit
// short message processors: default, 6D and Mica).
type submitter struct {
	cfg   *Config
	codec coding.Codec
	ref   atomic.Uint32
}

func newSubmitter(cfg *Config) *submitter {
	return &submitter{cfg: cfg, codec: coding.Default(cfg.SubmitSmProcessorConfig.dataCoding)}
}

// build returns the PDUs for m, sequence numbers unset.
func (s *submitter) build(m *schemas.UserMessage) ([]*pdu.SM, error) {
	sc := &s.cfg.SubmitSmProcessorConfig
	dc := sc.dataCoding
	text := m.Text()
	base := pdu.SM{
		Header:             pdu.Header{ID: pdu.SubmitSM},
		ServiceType:        sc.ServiceType,
		SourceAddrTON:      byte(sc.SourceAddrTON),
		SourceAddrNPI:      byte(sc.SourceAddrNPI),
		SourceAddr:         s.cfg.sourceFor(m.To(), m.From()),
		DestAddrTON:        byte(sc.DestAddrTON),
		DestAddrNPI:        byte(*sc.DestAddrNPI),
		DestinationAddr:    m.To(),
		RegisteredDelivery: sc.Registered.Byte(),
		DataCoding:         dc,
	}
	if len(base.SourceAddr) > pdu.MaxAddr-1 || len(base.DestinationAddr) > pdu.MaxAddr-1 {
		return nil, fmt.Errorf("address longer than 20 characters (from %q, to %q)", base.SourceAddr, base.DestinationAddr)
	}
	if m.TransportType != nil && *m.TransportType == schemas.TransportUSSD {
		if err := s.ussd(&base, m); err != nil {
			return nil, err
		}
	}
	whole, err := s.codec.Encode(text)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the content with data_coding %d (%s): %w", dc, s.codec.Name(), err)
	}
	single, partSize := coding.Sizes(dc)
	mode := sc.MultipartHandling
	if len(whole) <= single || (mode == "short_message" && len(whole) <= pdu.MaxShortMessage) {
		p := base
		p.ShortMessage = whole
		return []*pdu.SM{&p}, nil
	}
	switch mode {
	case "short_message":
		return nil, fmt.Errorf("message of %d octets does not fit in short_message (254 octets); set multipart_handling", len(whole))
	case "message_payload":
		p := base
		p.TLVs = append(append(pdu.TLVs{}, base.TLVs...), pdu.TLV{Tag: pdu.TagMessagePayload, Value: whole})
		return []*pdu.SM{&p}, nil
	case "multipart_sar":
		parts, err := coding.Split(s.codec, text, partSize)
		if err != nil {
			return nil, err
		}
		if len(parts) > 255 {
			return nil, fmt.Errorf("message needs %d parts, more than 255", len(parts))
		}
		ref := uint16(s.ref.Add(1) % uint32(sc.MultipartSarReferenceRollover))
		out := make([]*pdu.SM, len(parts))
		for i, part := range parts {
			p := base
			p.ShortMessage = part
			p.TLVs = append(pdu.TLVs{}, base.TLVs...)
			p.TLVs.SetUint16(pdu.TagSarMsgRefNum, ref)
			p.TLVs.SetUint8(pdu.TagSarTotalSegments, byte(len(parts)))
			p.TLVs.SetUint8(pdu.TagSarSegmentSeqnum, byte(i+1))
			out[i] = &p
		}
		return out, nil
	default: // multipart_udh
		parts, err := coding.Split(s.codec, text, partSize)
		if err != nil {
			return nil, err
		}
		if len(parts) > 255 {
			return nil, fmt.Errorf("message needs %d parts, more than 255", len(parts))
		}
		ref := uint16(s.ref.Add(1) % 0x100)
		out := make([]*pdu.SM, len(parts))
		for i, part := range parts {
			p := base
			p.ESMClass |= pdu.ESMClassUDHI
			p.ShortMessage = append(coding.AppendUDH(nil, coding.Concat{Ref: ref, Total: len(parts), Seq: i + 1}), part...)
			out[i] = &p
		}
		return out, nil
	}
}

// ussd sets the USSD TLVs of a reply, per processor.
func (s *submitter) ussd(p *pdu.SM, m *schemas.UserMessage) error {
	closing := m.Session() == schemas.SessionClose
	info := m.TransportMetadata["session_info"]
	switch s.cfg.submitProc {
	case "sixdee", "mica":
		id := ""
		if d, ok := info.(map[string]any); ok {
			id, _ = d["session_identifier"].(string)
		}
		op := byte(ussdUSSRRequest)
		if closing {
			op = ussdVendorEnd
		}
		p.TLVs.SetUint8(pdu.TagUssdServiceOp, op)
		if s.cfg.submitProc == "mica" {
			n, _ := strconv.Atoi(id)
			p.TLVs.SetUint16(pdu.TagUserMessageReference, uint16(n))
			return nil
		}
		n, err := strconv.ParseUint(orDefault(id, "0"), 16, 16)
		if err != nil {
			return fmt.Errorf("transport_metadata.session_info.session_identifier %q is not hex", id)
		}
		if closing {
			n |= 1
		}
		p.TLVs.Set(pdu.TagItsSessionInfo, binary.BigEndian.AppendUint16(nil, uint16(n)))
	default:
		sid, _ := info.(string)
		n, err := strconv.ParseUint(orDefault(sid, "0000"), 16, 16)
		if err != nil {
			return fmt.Errorf("transport_metadata.session_info %q is not hex", sid)
		}
		if closing {
			n++
		}
		p.TLVs.SetUint8(pdu.TagUssdServiceOp, ussdUSSRRequest)
		p.TLVs.Set(pdu.TagItsSessionInfo, binary.BigEndian.AppendUint16(nil, uint16(n)))
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
