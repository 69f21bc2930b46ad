package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vumi-kafka/vumi/connectors/httpapi"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func oldKinds() *topology.Registry { return topology.NewRegistry().Add(httpapi.OldKinds()...) }

type sentRow struct {
	Message, ToMSISDN, FromMSISDN, ID string
}

func decodeRows(t testing.TB, body string) []sentRow {
	var raw []map[string]string
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	var out []sentRow
	for _, r := range raw {
		out = append(out, sentRow{r["message"], r["to_msisdn"], r["from_msisdn"], r["id"]})
	}
	return out
}

func TestOldSimpleHttp(t *testing.T) {
	e := transporttest.Start(t, oldKinds(), "old", `
  - name: old
    kind: vumi.transports.api.OldSimpleHttpTransport
    transport_name: old
    web_path: /old
    web_port: ${WEB_PORT}
    identities:
      alice: wonderland
      bob: {password: builder, default_transport: sms}
`)
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "two recipients", Path: "/old", Query: q("message", "hello", "to_msisdn", "+27831", "to_msisdn", "+27832", "from_msisdn", "1234"),
			User: "bob", Pass: "builder",
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Text() != "hello" || m.From() != "1234" || *m.Provider != "vumi" || *m.TransportType != "old_simple_http" ||
					m.TransportMetadata["http_user"] != "bob" || m.HelperMetadata["default_transport"] != "sms" {
					t.Errorf("inbound %s", js(t, m))
				}
			},
			WantStatus: 200,
			Check: func(t testing.TB, body string) {
				rows := decodeRows(t, body)
				if len(rows) != 2 || rows[0].ToMSISDN != "+27831" || rows[1].ToMSISDN != "+27832" || rows[0].ID == rows[1].ID || rows[0].Message != "hello" {
					t.Errorf("rows %+v", rows)
				}
			}},
		{Name: "not authorized", Path: "/old", Query: q("message", "x", "to_msisdn", "1"), User: "alice", Pass: "nope", WantStatus: 401, WantBody: "Not Authorized"},
		{Name: "unknown user", Path: "/old", Query: q("message", "x", "to_msisdn", "1"), User: "mallory", Pass: "x", WantStatus: 401},
		{Name: "no recipients", Path: "/old", Query: q("message", "x"), User: "alice", Pass: "wonderland", WantStatus: 400, WantBody: `{"missing_parameter":["to_msisdn"]}`},
	})
	if n := len(e.Inbound()); n != 2 {
		t.Errorf("%d inbound messages, want 2", n)
	}
}

func TestOldTemplateHttp(t *testing.T) {
	e := transporttest.Start(t, oldKinds(), "tpl", `
  - name: tpl
    kind: old_template_http
    transport_name: tpl
    web_path: /tpl
    web_port: ${WEB_PORT}
`)
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "template per recipient", Path: "/tpl",
			Query: q("template", "Hi {{name}}, you owe {{ amount }}", "to_msisdn", "1", "to_msisdn", "2",
				"template_name", "Ann", "template_name", "Ben", "template_amount", "R5", "template_amount", "R7"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if *m.TransportType != "old_template_http" {
					t.Errorf("transport_type %q", *m.TransportType)
				}
			},
			WantStatus: 200,
			Check: func(t testing.TB, body string) {
				rows := decodeRows(t, body)
				if len(rows) != 2 || rows[0].Message != "Hi Ann, you owe R5" || rows[1].Message != "Hi Ben, you owe R7" {
					t.Errorf("rows %+v", rows)
				}
			}},
		{Name: "missing template value", Path: "/tpl", Query: q("template", "Hi {{name}}", "to_msisdn", "1", "to_msisdn", "2", "template_name", "Ann"),
			WantStatus: 400, WantBodyContains: []string{"template_name has no value for recipient 2"}},
	})
	contents := []string{}
	for _, m := range e.Inbound() {
		contents = append(contents, m.Text())
	}
	if strings.Join(contents, "|") != "Hi Ann, you owe R5|Hi Ben, you owe R7" {
		t.Errorf("inbound contents %v", contents)
	}
}
