package pdu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden hex fixtures")

func tlvs(ts ...TLV) TLVs { return ts }

// goldenCases is every PDU type the transport and the simulator use.
func goldenCases() map[string]PDU {
	return map[string]PDU{
		"bind_transceiver": &Bind{Header: Header{ID: BindTransceiver, Seq: 1}, SystemID: "smppclient1", Password: "password",
			SystemType: "vumi", InterfaceVersion: 0x34, AddrTON: 1, AddrNPI: 1, AddressRange: "^2776"},
		"bind_transmitter":           &Bind{Header: Header{ID: BindTransmitter, Seq: 2}, SystemID: "tx", Password: "pw", InterfaceVersion: 0x34},
		"bind_receiver":              &Bind{Header: Header{ID: BindReceiver, Seq: 3}, SystemID: "rx", Password: "pw", InterfaceVersion: 0x34},
		"bind_transceiver_resp":      &BindResp{Header: Header{ID: BindTransceiverResp, Seq: 1}, SystemID: "SMSC", TLVs: tlvs(TLV{TagSCInterfaceVersion, []byte{0x34}})},
		"bind_transmitter_resp_fail": &BindResp{Header: Header{ID: BindTransmitterResp, Status: ESME_RINVPASWD, Seq: 2}},
		"bind_receiver_resp":         &BindResp{Header: Header{ID: BindReceiverResp, Seq: 3}, SystemID: "SMSC"},
		"submit_sm": &SM{Header: Header{ID: SubmitSM, Seq: 7}, SourceAddrTON: 5, SourceAddrNPI: 0, SourceAddr: "Vumi",
			DestAddrTON: 1, DestAddrNPI: 1, DestinationAddr: "27761234567", RegisteredDelivery: 1, ShortMessage: []byte("hello world")},
		"submit_sm_sar": &SM{Header: Header{ID: SubmitSM, Seq: 8}, SourceAddr: "1234", DestAddrNPI: 1, DestinationAddr: "27761234567",
			DataCoding: 8, ShortMessage: []byte{0, 'h', 0, 'i'},
			TLVs: tlvs(TLV{TagSarMsgRefNum, []byte{0x01, 0x02}}, TLV{TagSarTotalSegments, []byte{2}}, TLV{TagSarSegmentSeqnum, []byte{1}})},
		"submit_sm_udh": &SM{Header: Header{ID: SubmitSM, Seq: 9}, SourceAddr: "1234", DestinationAddr: "27761234567", ESMClass: 0x40,
			ShortMessage: []byte{5, 0, 3, 0x2a, 2, 1, 'a', 'b'}},
		"submit_sm_ussd": &SM{Header: Header{ID: SubmitSM, Seq: 10}, ServiceType: "USSD", SourceAddr: "*120#", DestinationAddr: "27761234567",
			ShortMessage: []byte("Menu"), TLVs: tlvs(TLV{TagUssdServiceOp, []byte{0x02}}, TLV{TagItsSessionInfo, []byte{0x12, 0x34}})},
		"submit_sm_payload": &SM{Header: Header{ID: SubmitSM, Seq: 11}, SourceAddr: "1234", DestinationAddr: "27761234567",
			TLVs: tlvs(TLV{TagMessagePayload, []byte(strings.Repeat("x", 300))})},
		"submit_sm_resp":      &MessageIDResp{Header: Header{ID: SubmitSMResp, Seq: 7}, MessageID: "abc123"},
		"submit_sm_resp_fail": &MessageIDResp{Header: Header{ID: SubmitSMResp, Status: ESME_RTHROTTLED, Seq: 7}},
		"deliver_sm": &SM{Header: Header{ID: DeliverSM, Seq: 100}, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "27761234567",
			DestinationAddr: "1234", ShortMessage: []byte("hi there")},
		"deliver_sm_receipt": &SM{Header: Header{ID: DeliverSM, Seq: 101}, SourceAddr: "27761234567", DestinationAddr: "1234", ESMClass: 0x04,
			ShortMessage: []byte("id:abc123 sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD err:000 text:hello"),
			TLVs:         tlvs(TLV{TagReceiptedMessageID, []byte("abc123\x00")}, TLV{TagMessageState, []byte{2}})},
		"deliver_sm_resp": &MessageIDResp{Header: Header{ID: DeliverSMResp, Seq: 100}},
		"data_sm": &DataSMBody{Header: Header{ID: DataSM, Seq: 200}, SourceAddr: "27761234567", DestinationAddr: "1234",
			TLVs: tlvs(TLV{TagMessagePayload, []byte("data sm text")})},
		"data_sm_resp":      &MessageIDResp{Header: Header{ID: DataSMResp, Seq: 200}, MessageID: "d1"},
		"enquire_link":      &Empty{Header{ID: EnquireLink, Seq: 5}},
		"enquire_link_resp": &Empty{Header{ID: EnquireLinkResp, Seq: 5}},
		"unbind":            &Empty{Header{ID: Unbind, Seq: 6}},
		"unbind_resp":       &Empty{Header{ID: UnbindResp, Seq: 6}},
		"generic_nack":      &Empty{Header{ID: GenericNack, Status: ESME_RINVCMDID, Seq: 9}},
	}
}

func TestGoldenRoundTrip(t *testing.T) {
	for name, p := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name+".hex")
			got := Encode(p)
			if *update {
				if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			want, err := hex.DecodeString(strings.TrimSpace(string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encode:\n got %x\nwant %x", got, want)
			}
			back, err := Decode(want)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(normalize(back), normalize(p)) {
				t.Fatalf("decode:\n got %#v\nwant %#v", back, p)
			}
			if again := Encode(back); !bytes.Equal(again, want) {
				t.Fatalf("re-encode differs: %x", again)
			}
		})
	}
}

// normalize makes nil and empty slices compare equal.
func normalize(p PDU) PDU {
	switch v := p.(type) {
	case *SM:
		c := *v
		if len(c.ShortMessage) == 0 {
			c.ShortMessage = nil
		}
		if len(c.TLVs) == 0 {
			c.TLVs = nil
		}
		return &c
	case *BindResp:
		c := *v
		if len(c.TLVs) == 0 {
			c.TLVs = nil
		}
		return &c
	case *MessageIDResp:
		c := *v
		if len(c.TLVs) == 0 {
			c.TLVs = nil
		}
		return &c
	case *DataSMBody:
		c := *v
		if len(c.TLVs) == 0 {
			c.TLVs = nil
		}
		return &c
	}
	return p
}

// TestKnownBytes pins a few PDUs to bytes written out from the spec.
func TestKnownBytes(t *testing.T) {
	cases := []struct {
		name string
		p    PDU
		hex  string
	}{
		{"enquire_link", &Empty{Header{ID: EnquireLink, Seq: 1}}, "00000010" + "00000015" + "00000000" + "00000001"},
		{"generic_nack", &Empty{Header{ID: GenericNack, Status: ESME_RINVCMDLEN, Seq: 0x7FFFFFFF}}, "00000010" + "80000000" + "00000002" + "7fffffff"},
		{"submit_sm_resp", &MessageIDResp{Header: Header{ID: SubmitSMResp, Seq: 2}, MessageID: "ab"}, "00000013" + "80000004" + "00000000" + "00000002" + "616200"},
		{"bind_transmitter", &Bind{Header: Header{ID: BindTransmitter, Seq: 1}, SystemID: "a", Password: "b", InterfaceVersion: 0x34},
			"00000019" + "00000002" + "00000000" + "00000001" + "6100" + "6200" + "00" + "34" + "00" + "00" + "00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := hex.EncodeToString(Encode(c.p)); got != c.hex {
				t.Fatalf("got %s want %s", got, c.hex)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	h := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	cases := []struct {
		name string
		in   []byte
		st   Status
		id   CommandID
	}{
		{"short", h("00000010000000"), ESME_RINVCMDLEN, 0},
		{"length mismatch", h("00000011000000150000000000000001"), ESME_RINVCMDLEN, EnquireLink},
		{"unknown command", h("0000001000000fff0000000000000003"), ESME_RINVCMDID, 0xfff},
		{"trailing bytes", h("000000110000001500000000000000010a"), ESME_RINVCMDLEN, EnquireLink},
		{"unterminated system_id", h("00000014000000090000000000000001616161" + "61"), ESME_RINVSYSID, BindTransceiver},
		{"missing fields", h("0000001200000004000000000000000100" + "00"), ESME_RINVMSGLEN, SubmitSM},
		{"bad tlv", h("000000188000000400000000000000026100" + "04240010" + "0000"), ESME_RINVOPTPARSTREAM, SubmitSMResp},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.in)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a DecodeError", err)
			}
			if de.Status != c.st || de.ID != c.id {
				t.Fatalf("got %v (%s, id %s), want %s id %s", err, de.Status, de.ID, c.st, c.id)
			}
		})
	}
}

func TestReader(t *testing.T) {
	var buf bytes.Buffer
	buf.Write(Encode(&Empty{Header{ID: EnquireLink, Seq: 1}}))
	buf.Write([]byte{0, 0, 0, 0x11, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 2, 0xff}) // trailing byte: malformed
	buf.Write(Encode(&Empty{Header{ID: Unbind, Seq: 3}}))
	buf.Write([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 4}) // absurd length
	r := NewReader(&buf, 0)
	if p, err := r.Read(); err != nil || p.Head().ID != EnquireLink {
		t.Fatalf("1: %v %v", p, err)
	}
	var de *DecodeError
	if _, err := r.Read(); !errors.As(err, &de) || de.Seq != 2 {
		t.Fatalf("2: %v", err)
	}
	if p, err := r.Read(); err != nil || p.Head().ID != Unbind {
		t.Fatalf("3: %v %v", p, err)
	}
	var fe *FrameError
	if _, err := r.Read(); !errors.As(err, &fe) || fe.Seq != 4 {
		t.Fatalf("4: %v", err)
	}
}

func TestResponseFor(t *testing.T) {
	cases := []struct {
		err  DecodeError
		want CommandID
	}{
		{DecodeError{ID: SubmitSM, Seq: 4, Status: ESME_RINVMSGLEN}, SubmitSMResp},
		{DecodeError{ID: DeliverSM, Seq: 4, Status: ESME_RINVMSGLEN}, DeliverSMResp},
		{DecodeError{ID: 0x1234, Seq: 4, Status: ESME_RINVCMDID}, GenericNack},
	}
	for _, c := range cases {
		r := ResponseFor(&c.err)
		if r.Head().ID != c.want || r.Head().Seq != 4 || r.Head().Status != c.err.Status {
			t.Errorf("%s: got %+v", c.err.ID, r.Head())
		}
		if _, err := Decode(Encode(r)); err != nil {
			t.Errorf("%s: response does not decode: %v", c.err.ID, err)
		}
	}
}

func TestTLVs(t *testing.T) {
	var ts TLVs
	ts.SetUint8(TagMessageState, 2)
	ts.SetUint16(TagSarMsgRefNum, 0x1234)
	ts.SetCString(TagReceiptedMessageID, "abc")
	ts.SetUint8(TagMessageState, 5)
	if v, _ := ts.Uint(TagMessageState); v != 5 || len(ts) != 3 {
		t.Fatalf("message_state %d, %d tlvs", v, len(ts))
	}
	if v, _ := ts.Uint(TagSarMsgRefNum); v != 0x1234 {
		t.Fatalf("sar ref %x", v)
	}
	if s, _ := ts.String(TagReceiptedMessageID); s != "abc" {
		t.Fatalf("receipted id %q", s)
	}
	if _, ok := ts.Get(TagUssdServiceOp); ok {
		t.Fatal("absent tag found")
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range goldenCases() {
		f.Add(Encode(p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is not a DecodeError: %v", err)
			}
			_ = Encode(ResponseFor(de))
			return
		}
		// What decodes re-encodes to a PDU that decodes the same.
		again := Encode(p)
		p2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded PDU does not decode: %v", err)
		}
		if !bytes.Equal(Encode(p2), again) {
			t.Fatal("encoding is not stable")
		}
		_, _ = NewReader(bytes.NewReader(b), 0).Read()
	})
}
