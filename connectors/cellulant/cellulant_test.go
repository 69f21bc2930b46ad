package cellulant_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/cellulant"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(cellulant.Kind()) }

// req is a Cellulant request with the defaults of a new session.
func req(kv ...string) url.Values {
	v := url.Values{"MSISDN": {"27761234567"}, "INPUT": {""}, "opCode": {"BEG"}, "ABORT": {"0"}, "sessionID": {"1"}}
	return transporttest.Params(v, kv...)
}

func TestCellulantUSSD(t *testing.T) {
	e := transporttest.Start(t, kinds(), "cellulant", `
  - name: cellulant
    kind: vumi.transports.cellulant.CellulantTransport
    transport_name: cellulant
    web_path: /api/v1/ussd/cellulant/
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    ussd_session_timeout: 60
`)
	path := "/api/v1/ussd/cellulant/"
	transporttest.Run(t, e, []transporttest.Case{
		{
			Name: "BEG starts a session", Path: path, Query: req("INPUT", "*120*1#"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Content != nil || m.To() != "*120*1#" || m.From() != "27761234567" || m.Session() != schemas.SessionNew ||
					*m.TransportType != "ussd" || m.TransportMetadata["session_id"] != "1" {
					t.Errorf("inbound %+v", m)
				}
			},
			Reply: transporttest.Reply("ussd message", true), WantStatus: 200, WantBody: "1|ussd message|null|null|null|null",
		},
		{
			Name: "other opCodes resume it, with the dialled code as to_addr", Path: path, Query: req("INPUT", "hi", "opCode", ""),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Text() != "hi" || m.To() != "*120*1#" || m.Session() != schemas.SessionResume {
					t.Errorf("inbound %+v", m)
				}
			},
			Reply: transporttest.Reply("hello world", false), WantStatus: 200, WantBody: "1|hello world|null|null|end|null",
		},
		{
			Name: "ABORT closes it at once", Path: path, Query: req("INPUT", "", "opCode", "", "ABORT", "1"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Session() != schemas.SessionClose || m.To() != "*120*1#" || m.Text() != "" {
					t.Errorf("inbound %+v", m)
				}
			},
			WantStatus: 200, WantBody: "",
		},
		{Name: "the aborted session is gone", Path: path, Query: req("INPUT", "2", "opCode", ""),
			WantStatus: 400, WantBody: `{"unknown_session":["sessionID"]}`},
		{
			Name: "a new session of the same number", Path: path, Query: req("INPUT", "*120*2#", "sessionID", "2"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.To() != "*120*2#" || m.Session() != schemas.SessionNew {
					t.Errorf("inbound %+v", m)
				}
			},
			Reply: transporttest.Reply("menu", true), WantStatus: 200,
		},
		{
			Name: "opCode ABO closes it", Path: path, Query: req("opCode", "ABO", "ABORT", "null", "sessionID", "2"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Session() != schemas.SessionClose || m.To() != "*120*2#" {
					t.Errorf("inbound %+v", m)
				}
			},
			WantStatus: 200,
		},
		{Name: "unknown session", Path: path, Query: req("INPUT", "1", "opCode", "", "sessionID", "99"),
			WantStatus: 400, WantBody: `{"unknown_session":["sessionID"]}`},
		{Name: "missing parameters", Path: path, Query: req("MSISDN", "<none>", "ABORT", "<none>"),
			WantStatus: 400, WantBody: `{"missing_parameter":["ABORT","MSISDN"]}`},
		{Name: "unexpected parameter", Path: path, Query: req("colour", "red"),
			WantStatus: 400, WantBody: `{"unexpected_parameter":["colour"]}`},
	})
	// A reply without content is nacked.
	bad := e.Inbound()[0].Reply("", true)
	bad.Content = nil
	e.SendOutbound(bad)
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventNack && ev.UserMessageID == bad.MessageID && *ev.NackReason == "Missing fields: content"
	}, 30*time.Second)
}

func TestCellulantAuthAndExpiry(t *testing.T) {
	e := transporttest.Start(t, kinds(), "cellulant", `
  - name: cellulant
    kind: cellulant_ussd
    transport_name: cellulant
    web_path: /ussd
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    web_username: cell
    web_password: pw
    ussd_session_timeout: 1
    validation_mode: permissive
`)
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "no credentials", Path: "/ussd", Query: req("INPUT", "*1#"), WantStatus: 401},
		{Name: "wrong password", Path: "/ussd", Query: req("INPUT", "*1#"), User: "cell", Pass: "no", WantStatus: 401},
		{
			Name: "permissive mode ignores extra parameters", Path: "/ussd", Query: req("INPUT", "*1#", "MSC", "x"), User: "cell", Pass: "pw",
			WantInbound: func(testing.TB, *schemas.UserMessage) {}, Reply: transporttest.Reply("menu", true), WantStatus: 200,
		},
	})
	time.Sleep(1500 * time.Millisecond)
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "the session expired", Path: "/ussd", Query: req("INPUT", "1", "opCode", ""), User: "cell", Pass: "pw",
			WantStatus: 400, WantBody: `{"unknown_session":["sessionID"]}`},
	})
}

func TestPack(t *testing.T) {
	m := schemas.NewUserMessage()
	m.Content = schemas.String("Bye")
	ev := schemas.SessionClose
	m.SessionEvent = &ev
	if got := cellulant.Pack(m); got != "1|Bye|null|null|end|null" {
		t.Errorf("Pack = %q", got)
	}
}

func TestCellulantConfigErrors(t *testing.T) {
	transporttest.ConfigErrors(t, kinds(), map[string]string{"ussd_session_timeout": "name: a, kind: cellulant_ussd, transport_name: a, web_path: /x, ussd_session_timeout: -5"})
}
