package smpp

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// validConfig loads one SMPP worker the way a deployment config is
// loaded (strict decoding, then Validate).
func validConfig(extra string) (*Config, error) {
	doc := "transport_name: sms\n"
	for _, kv := range []string{"system_id: esme\n", "password: secret\n"} {
		if k, _, _ := strings.Cut(kv, ":"); !strings.HasPrefix(extra, k+":") {
			doc += kv
		}
	}
	doc += extra
	var b strings.Builder
	b.WriteString("workers:\n  - name: smpp\n    kind: smpp\n")
	for _, line := range strings.Split(strings.TrimRight(doc, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	r := topology.NewRegistry()
	r.Add(Kinds()...)
	cfg, err := topology.Load("test.yaml", []byte(b.String()), r, nil)
	if err != nil {
		return nil, err
	}
	w, _ := cfg.Worker("smpp")
	return w.Config.(*Config), nil
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		extra string
		err   string
	}{
		{"", ""},
		{"system_id: abcdefghijklmnop\n", "key system_id: longer than 15 characters"},
		{"password: 123456789\n", "key password: longer than 8 characters"},
		{"system_type: abcdefghijklm\n", "key system_type: longer than 12 characters"},
		{"address_range: " + strings.Repeat("1", 41) + "\n", "key address_range: longer than 40 characters"},
		{"system_type: \"caf\u00e9\"\n", "key system_type: must be printable ASCII"},
		{"interface_version: \"34\"\n", ""},
		{"interface_version: 52\n", "key interface_version"},
		{"bind_type: both\n", "key bind_type"},
		{"bind_type: tx_rx\n", ""},
		{"window_size: -1\n", "key window_size"},
		{"mt_tps: -5\n", "key mt_tps"},
		{"twisted_endpoint: tcp:host=smsc:port=2775\nport: 1\n", "key twisted_endpoint"},
		{"deliver_sm_decoding_error: NOPE\n", "key deliver_sm_decoding_error"},
		{"submit_sm_processor_config:\n  data_coding: KLINGON\n", "key submit_sm_processor_config.data_coding"},
		{"submit_sm_processor_config:\n  data_coding: UCS2\n  multipart_handling: multipart_udh\n", ""},
		{"submit_sm_processor_config:\n  multipart_handling: pigeons\n", "key submit_sm_processor_config.multipart_handling"},
		{"submit_sm_processor_config:\n  registered_delivery:\n    delivery_receipt: SMSC_DELIVERY_RECEIPT_REQUESTED\n    sme_originated_acks: [SME_DELIVERY_ACK_REQUESTED]\n    intermediate_notification: true\n", ""},
		{"submit_sm_processor_config:\n  dest_addr_ton: NOPE\n", "not a known name"},
		{"sm_processor_config:\n  data_coding_overrides:\n    4: klingon\n", "key sm_processor_config.data_coding_overrides"},
		{"dr_processor_config:\n  regex: 'id:(?P<id>\\S+)'\n", "needs named groups id and stat"},
		{"dr_processor_config:\n  status_mapping: {DELIVRD: yes}\n", "key dr_processor_config.status_mapping.DELIVRD"},
		{"submit_sm_processor_class: vumi.transports.smpp.processors.sixdee.SubmitShortMessageProcessor\n", ""},
		{"sm_processor_class: nope\n", "key sm_processor_class: unknown class"},
		{"OPERATOR_NUMBER: {MTN: '123'}\n", "key OPERATOR_PREFIX"},
	}
	for _, tc := range cases {
		t.Run(tc.extra, func(t *testing.T) {
			_, err := validConfig(tc.extra)
			if tc.err == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := validConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if c.SmppEnquireLinkInterval != 55 || c.SmppBindTimeout != 30 || c.WindowSize != 32 || c.AmqpPrefetchCount != 32 ||
		c.addr != "localhost:2775" || c.InterfaceVersion != 34 || c.SmppCacheConfig.Timeout != 86400 || c.BindType != bindTransceiver ||
		*c.SubmitSmProcessorConfig.DestAddrNPI != 1 || c.SubmitSmProcessorConfig.MultipartHandling != "short_message" || c.decodingError != pdu.ESME_RDELIVERYFAILURE {
		t.Fatalf("defaults: %+v", c)
	}
	if !c.drRegex.MatchString("id:abc sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD err:000 text:hi") {
		t.Fatal("default regex does not match a standard receipt")
	}
}

// TestOperatorNumber: Vumi's operator-prefix lookup picks the source
// address by the recipient's network.
func TestOperatorNumber(t *testing.T) {
	c, err := validConfig(`COUNTRY_CODE: "27"
OPERATOR_NUMBER: {VODACOM: "111", MTN: "222", CELLC: "333"}
OPERATOR_PREFIX:
  2771:
    27710: MTN
    27711: VODACOM
  2772: VODACOM
  2774:
    27741: VIRGIN
    27742: CELLC
  2783: MTN
`)
	if err != nil {
		t.Fatal(err)
	}
	for to, want := range map[string]string{
		"+27711234567": "111", "0831234567": "222", "27742223333": "333", "27710000000": "222",
		"27741000000": "from", "4412345": "from", "0721234567": "111",
	} {
		if got := c.sourceFor(to, "from"); got != want {
			t.Errorf("%s: %s, want %s", to, got, want)
		}
	}
}

func TestSequencerRollsOverAndSkipsPending(t *testing.T) {
	s := sequencer{next: maxSeq - 1}
	pending := map[uint32]chan pdu.PDU{1: nil, 2: nil}
	got := []uint32{s.take(pending), s.take(pending), s.take(pending)}
	if got[0] != maxSeq-1 || got[1] != maxSeq || got[2] != 3 {
		t.Fatalf("sequence %v", got)
	}
}

// TestSessionMalformedPDU: a malformed PDU from the SMSC gets an error
// response and the session keeps running; an unknown command gets a
// generic_nack.
func TestSessionMalformedPDU(t *testing.T) {
	esme, smsc := net.Pipe()
	defer smsc.Close()
	handled := make(chan pdu.PDU, 1)
	s := newSession(esme, bindTransceiver, 4, time.Second, slog.New(slog.DiscardHandler), func(_ context.Context, _ *session, p pdu.PDU) pdu.Status {
		handled <- p
		return pdu.ESME_ROK
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.readLoop(ctx)
	r := pdu.NewReader(smsc, 0)
	exchange := func(raw []byte) pdu.PDU {
		t.Helper()
		if _, err := smsc.Write(raw); err != nil {
			t.Fatal(err)
		}
		_ = smsc.SetReadDeadline(time.Now().Add(5 * time.Second))
		p, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// deliver_sm whose sm_length runs past the end.
	bad := pdu.Encode(&pdu.SM{Header: pdu.Header{ID: pdu.DeliverSM, Seq: 9}, SourceAddr: "1", DestinationAddr: "2", ShortMessage: []byte("hi")})
	bad[len(bad)-3] = 50
	if p := exchange(bad); p.Head().ID != pdu.DeliverSMResp || p.Head().Seq != 9 || p.Head().Status != pdu.ESME_RINVMSGLEN {
		t.Fatalf("malformed deliver_sm answered %+v", p.Head())
	}
	if p := exchange(pdu.Encode(&pdu.Empty{Header: pdu.Header{ID: 0x00000222, Seq: 10}})); p.Head().ID != pdu.GenericNack || p.Head().Status != pdu.ESME_RINVCMDID {
		t.Fatalf("unknown command answered %+v", p.Head())
	}
	if p := exchange(pdu.Encode(&pdu.Empty{Header: pdu.Header{ID: pdu.EnquireLink, Seq: 11}})); p.Head().ID != pdu.EnquireLinkResp || p.Head().Seq != 11 {
		t.Fatalf("enquire_link answered %+v", p.Head())
	}
	good := pdu.Encode(&pdu.SM{Header: pdu.Header{ID: pdu.DeliverSM, Seq: 12}, SourceAddr: "1", DestinationAddr: "2", ShortMessage: []byte("ok")})
	if p := exchange(good); p.Head().ID != pdu.DeliverSMResp || p.Head().Status != pdu.ESME_ROK {
		t.Fatalf("deliver_sm answered %+v", p.Head())
	}
	if p := <-handled; string(p.(*pdu.SM).ShortMessage) != "ok" {
		t.Fatalf("handled %+v", p)
	}
	// The SMSC unbinds: answered, session closed.
	if p := exchange(pdu.Encode(&pdu.Empty{Header: pdu.Header{ID: pdu.Unbind, Seq: 13}})); p.Head().ID != pdu.UnbindResp {
		t.Fatalf("unbind answered %+v", p.Head())
	}
	select {
	case <-s.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("session not closed after unbind")
	}
}

func TestSubmitterUSSDAndErrors(t *testing.T) {
	c, err := validConfig("")
	if err != nil {
		t.Fatal(err)
	}
	sub := newSubmitter(c)
	m := schemas.NewUserMessage()
	m.ToAddr, m.FromAddr = schemas.String("27761234567"), schemas.String("*120#")
	m.Content = schemas.String(strings.Repeat("x", 300))
	if _, err := sub.build(m); err == nil || !strings.Contains(err.Error(), "multipart_handling") {
		t.Fatalf("too long for short_message: %v", err)
	}
	m.Content = schemas.String("日本")
	if _, err := sub.build(m); err == nil {
		t.Fatal("unencodable text accepted")
	}
	m.Content = schemas.String("ok")
	m.TransportType = schemas.String("ussd")
	m.TransportMetadata = schemas.Metadata{"session_info": "zz"}
	if _, err := sub.build(m); err == nil {
		t.Fatal("bad session_info accepted")
	}
}
