package smsc

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/coding"
	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
)

// MORequest is the body of POST /mo: a mobile-originated message.
type MORequest struct {
	SystemID   string `json:"system_id"`
	From       string `json:"from"`
	To         string `json:"to"`
	Content    string `json:"content"`
	DataCoding byte   `json:"data_coding"`
	// Multipart splits content into parts: "udh" (8-bit reference),
	// "udh16" (16-bit reference) or "sar" (SAR TLVs).
	Multipart string `json:"multipart"`
	PartSize  int    `json:"part_size"`
	// ShortMessageHex sends these octets as they are instead of content.
	ShortMessageHex string `json:"short_message_hex"`
	ESMClass        byte   `json:"esm_class"`
	// TLVs: tag (hex, e.g. "0501") -> value (hex).
	TLVs   map[string]string `json:"tlvs"`
	DataSM bool              `json:"data_sm"`
}

// USSDRequest is the body of POST /ussd: one step of a USSD session.
type USSDRequest struct {
	SystemID string `json:"system_id"`
	From     string `json:"from"`
	To       string `json:"to"`
	Content  string `json:"content"`
	// SessionEvent new, resume or close sets ussd_service_op (PSSR
	// indication 0x01, USSR confirm 0x12, PSSR response 0x11) unless
	// UssdServiceOp is given.
	SessionEvent  string `json:"session_event"`
	UssdServiceOp *int   `json:"ussd_service_op"`
	// ItsSessionInfo is sent when given (0-65535).
	ItsSessionInfo *int `json:"its_session_info"`
	// UserMessageReference is sent when given (Mica's session id).
	UserMessageReference *int `json:"user_message_reference"`
}

// ControlRequest is the body of POST /control; absent fields are left
// as they are.
type ControlRequest struct {
	ThrottleNext      *int    `json:"throttle_next"`
	Throttle          *bool   `json:"throttle"`
	RejectBinds       *string `json:"reject_binds"`
	SubmitStatus      *string `json:"submit_status"`
	DelayMS           *int    `json:"delay_ms"`
	IgnoreEnquireLink *bool   `json:"ignore_enquire_link"`
	Drop              bool    `json:"drop"`
}

// Handler returns the simulator's HTTP API: POST /mo, POST /ussd,
// POST /control, GET /messages, GET /stats.
func (s *SMSC) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /mo", func(w http.ResponseWriter, r *http.Request) {
		var req MORequest
		if !decode(w, r, &req) {
			return
		}
		mos, err := req.build()
		if err != nil {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		s.injectAll(w, r.Context(), mos)
	})
	mux.HandleFunc("POST /ussd", func(w http.ResponseWriter, r *http.Request) {
		var req USSDRequest
		if !decode(w, r, &req) {
			return
		}
		mo, err := req.build()
		if err != nil {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		s.injectAll(w, r.Context(), []MO{mo})
	})
	mux.HandleFunc("POST /control", func(w http.ResponseWriter, r *http.Request) {
		var req ControlRequest
		if !decode(w, r, &req) {
			return
		}
		if err := s.control(req); err != nil {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, s.Stats())
	})
	mux.HandleFunc("GET /messages", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Submitted()) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Stats()) })
	return mux
}

func (s *SMSC) injectAll(w http.ResponseWriter, ctx context.Context, mos []MO) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, mo := range mos {
		if err := s.Inject(ctx, mo); err != nil {
			httpError(w, http.StatusBadGateway, fmt.Errorf("not delivered: %w", err))
			return
		}
	}
	writeJSON(w, map[string]any{"delivered": len(mos)})
}

func (s *SMSC) control(c ControlRequest) error {
	status := func(name string) (pdu.Status, error) {
		if name == "" {
			return pdu.ESME_ROK, nil
		}
		st, ok := pdu.StatusByName(name)
		if !ok {
			return 0, fmt.Errorf("unknown command status %q", name)
		}
		return st, nil
	}
	if c.RejectBinds != nil {
		st, err := status(*c.RejectBinds)
		if err != nil {
			return err
		}
		s.RejectBinds(st)
	}
	if c.SubmitStatus != nil {
		st, err := status(*c.SubmitStatus)
		if err != nil {
			return err
		}
		s.SubmitStatus(st)
	}
	if c.ThrottleNext != nil {
		s.Throttle(*c.ThrottleNext)
	}
	if c.Throttle != nil {
		s.ThrottleAll(*c.Throttle)
	}
	if c.DelayMS != nil {
		s.Delay(time.Duration(*c.DelayMS) * time.Millisecond)
	}
	if c.IgnoreEnquireLink != nil {
		s.IgnoreEnquireLink(*c.IgnoreEnquireLink)
	}
	if c.Drop {
		s.Drop()
	}
	return nil
}

func parseTLVs(in map[string]string) (pdu.TLVs, error) {
	var out pdu.TLVs
	for k, v := range in {
		tag, err := strconv.ParseUint(k, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("tlvs: tag %q is not 4 hex digits", k)
		}
		val, err := hex.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("tlvs: value of %s is not hex", k)
		}
		out.Set(pdu.Tag(tag), val)
	}
	return out, nil
}

func (req *MORequest) build() ([]MO, error) {
	tlvs, err := parseTLVs(req.TLVs)
	if err != nil {
		return nil, err
	}
	base := MO{SystemID: req.SystemID, SourceAddr: req.From, DestAddr: req.To, ESMClass: req.ESMClass, DataCoding: req.DataCoding, TLVs: tlvs, UseDataSM: req.DataSM}
	if req.ShortMessageHex != "" {
		b, err := hex.DecodeString(req.ShortMessageHex)
		if err != nil {
			return nil, errors.New("short_message_hex is not hex")
		}
		base.Short = b
		return []MO{base}, nil
	}
	c := coding.Default(req.DataCoding)
	if c == nil {
		return nil, fmt.Errorf("data_coding %d has no character set; use short_message_hex", req.DataCoding)
	}
	if req.Multipart == "" {
		b, err := c.Encode(req.Content)
		if err != nil {
			return nil, err
		}
		base.Short = b
		return []MO{base}, nil
	}
	size := req.PartSize
	if size == 0 {
		_, size = coding.Sizes(req.DataCoding)
	}
	parts, err := coding.Split(c, req.Content, size)
	if err != nil {
		return nil, err
	}
	ref := uint16(time.Now().UnixNano() & 0xff)
	out := make([]MO, len(parts))
	for i, part := range parts {
		mo := base
		mo.TLVs = append(pdu.TLVs{}, tlvs...)
		cc := coding.Concat{Ref: ref, Total: len(parts), Seq: i + 1}
		switch req.Multipart {
		case "udh", "udh16":
			cc.Ref16 = req.Multipart == "udh16"
			mo.ESMClass |= pdu.ESMClassUDHI
			mo.Short = append(coding.AppendUDH(nil, cc), part...)
		case "sar":
			mo.Short = part
			mo.TLVs.SetUint16(pdu.TagSarMsgRefNum, cc.Ref)
			mo.TLVs.SetUint8(pdu.TagSarTotalSegments, byte(cc.Total))
			mo.TLVs.SetUint8(pdu.TagSarSegmentSeqnum, byte(cc.Seq))
		default:
			return nil, fmt.Errorf("multipart %q is not udh, udh16 or sar", req.Multipart)
		}
		out[i] = mo
	}
	return out, nil
}

func (req *USSDRequest) build() (MO, error) {
	mo := MO{SystemID: req.SystemID, SourceAddr: req.From, DestAddr: req.To}
	b, err := coding.GSM{}.Encode(req.Content)
	if err != nil {
		return mo, err
	}
	mo.Short = b
	op := -1
	switch req.SessionEvent {
	case "new":
		op = 0x01
	case "resume", "continue":
		op = 0x12
	case "close":
		op = 0x11
	case "":
	default:
		return mo, fmt.Errorf("session_event %q is not new, resume or close", req.SessionEvent)
	}
	if req.UssdServiceOp != nil {
		op = *req.UssdServiceOp
	}
	if op < 0 || op > 255 {
		return mo, errors.New("give session_event or ussd_service_op (0-255)")
	}
	mo.TLVs.SetUint8(pdu.TagUssdServiceOp, byte(op))
	if req.ItsSessionInfo != nil {
		mo.TLVs.SetUint16(pdu.TagItsSessionInfo, uint16(*req.ItsSessionInfo))
	}
	if req.UserMessageReference != nil {
		mo.TLVs.SetUint16(pdu.TagUserMessageReference, uint16(*req.UserMessageReference))
	}
	return mo, nil
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("invalid JSON body: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
