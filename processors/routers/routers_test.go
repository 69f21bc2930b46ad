package routers

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

// TestConfig loads every router's config: valid ones (by kind name and by
// Vumi class through router_class), and each error naming its key.
func TestConfig(t *testing.T) {
	cases := []struct {
		name, yaml, err string
	}{
		{"simple", "kind: simple_dispatch_router\ntransport_names: [sms]\nexposed_names: [app]\nroute_mappings: {sms: app}\n", ""},
		{"simple by router_class", "kind: dispatcher\nrouter_class: vumi.dispatchers.base.SimpleDispatchRouter\ntransport_names: [sms, xmpp]\nexposed_names: [app1, app2]\nroute_mappings: {sms: [app1, app2], xmpp: app2}\ntransport_mappings: {upstream: sms}\n", ""},
		{"simple by package class", "kind: dispatcher\nrouter_class: vumi.dispatchers.SimpleDispatchRouter\ntransport_names: [sms]\nexposed_names: [app]\nroute_mappings: {sms: [app]}\n", ""},
		{"simple without route_mappings", "kind: simple_dispatch_router\ntransport_names: [sms]\nexposed_names: [app]\n", "key route_mappings: is required"},
		{"simple route to unknown exposed", "kind: simple_dispatch_router\ntransport_names: [sms]\nexposed_names: [app]\nroute_mappings: {sms: [nope]}\n", `key route_mappings.sms: "nope" is not one of exposed_names`},
		{"simple route from unknown transport", "kind: simple_dispatch_router\ntransport_names: [sms]\nexposed_names: [app]\nroute_mappings: {ussd: app}\n", `key route_mappings: "ussd" is not one of transport_names`},
		{"simple bad transport_mappings", "kind: simple_dispatch_router\ntransport_names: [sms]\nexposed_names: [app]\nroute_mappings: {sms: app}\ntransport_mappings: {up: nope}\n", `key transport_mappings.up: "nope" is not one of transport_names`},
		{"simple unknown key", "kind: simple_dispatch_router\ntransport_names: [sms]\nexposed_names: [app]\nroute_mapping: {sms: app}\n", "route_mapping: unknown key"},
		{"no transport_names", "kind: simple_dispatch_router\nexposed_names: [app]\nroute_mappings: {sms: app}\n", "key transport_names"},
		{"t2t", "kind: vumi.dispatchers.TransportToTransportRouter\ntransport_names: [a, b]\nroute_mappings: {a: b}\n", ""},
		{"t2t to exposed", "kind: transport_to_transport_router\ntransport_names: [a]\nexposed_names: [b]\nroute_mappings: {a: b}\n", `"b" is not one of transport_names`},
		{"toaddr", "kind: dispatcher\nrouter_class: vumi.dispatchers.base.ToAddrRouter\ntransport_names: [sms]\nexposed_names: [a, b]\ntoaddr_mappings: {a: '^1', b: '^2'}\n", ""},
		{"toaddr bad regex", "kind: to_addr_router\ntransport_names: [sms]\nexposed_names: [a]\ntoaddr_mappings: {a: '(['}\n", "key toaddr_mappings.a: error parsing regexp"},
		{"toaddr missing", "kind: to_addr_router\ntransport_names: [sms]\nexposed_names: [a]\n", "key toaddr_mappings: is required"},
		{"toaddr unknown exposed", "kind: to_addr_router\ntransport_names: [sms]\nexposed_names: [a]\ntoaddr_mappings: {b: '1'}\n", `key toaddr_mappings: "b" is not one of exposed_names`},
		{"toaddr negative expiry", "kind: to_addr_router\ntransport_names: [sms]\nexposed_names: [a]\ntoaddr_mappings: {a: '1'}\nexpire_routing_memory: -1\n", "key expire_routing_memory: must be positive"},
		{"toaddr expiry not a number", "kind: to_addr_router\ntransport_names: [sms]\nexposed_names: [a]\ntoaddr_mappings: {a: '1'}\nexpire_routing_memory: soon\n", "expire_routing_memory: must be a number of seconds"},
		{"fromaddr", "kind: vumi.dispatchers.base.FromAddrMultiplexRouter\ntransport_names: [x1, x2]\nexposed_names: [app]\nfromaddr_mappings: {a@x: x1, b@x: x2}\n", ""},
		{"fromaddr two exposed", "kind: from_addr_multiplex_router\ntransport_names: [x1]\nexposed_names: [a, b]\nfromaddr_mappings: {a@x: x1}\n", "key exposed_names: only one exposed name allowed for FromAddrMultiplexRouter"},
		{"fromaddr missing mappings", "kind: from_addr_multiplex_router\ntransport_names: [x1]\nexposed_names: [a]\n", "key fromaddr_mappings: is required"},
		{"fromaddr unknown transport", "kind: from_addr_multiplex_router\ntransport_names: [x1]\nexposed_names: [a]\nfromaddr_mappings: {a@x: x9}\n", `key fromaddr_mappings.a@x: "x9" is not one of transport_names`},
		{"usergroup", "kind: dispatcher\nrouter_class: vumi.dispatchers.base.UserGroupingRouter\ndispatcher_name: ug\nredis_manager: {}\ntransport_names: [sms]\nexposed_names: [a, b]\ngroup_mappings: {g1: a, g2: b}\ntransport_mappings: {up: sms}\nexpire_groups: 3600\n", ""},
		{"usergroup missing", "kind: user_grouping_router\ntransport_names: [sms]\nexposed_names: [a]\n", "key group_mappings: is required"},
		{"usergroup unknown exposed", "kind: user_grouping_router\ntransport_names: [sms]\nexposed_names: [a]\ngroup_mappings: {g1: z}\n", `key group_mappings.g1: "z" is not one of exposed_names`},
		{"usergroup negative expiry", "kind: user_grouping_router\ntransport_names: [sms]\nexposed_names: [a]\ngroup_mappings: {g1: a}\nexpire_groups: -5\n", "key expire_groups: must be positive"},
		{"keyword", "kind: dispatcher\nrouter_class: vumi.dispatchers.base.ContentKeywordRouter\ndispatcher_name: kw\ntransport_names: [t1, t2]\nexposed_names: [app1, app2, fb]\nrules: [{app: app1, keyword: K1, to_addr: '8181', prefix: '+256'}]\nkeyword_mappings: {app2: K2}\nfallback_application: fb\ntransport_mappings: {sc1: t1}\nexpire_routing_memory: '3'\n", ""},
		{"keyword rule without app", "kind: content_keyword_router\ntransport_names: [t1]\nexposed_names: [a]\nrules: [{keyword: k}]\ntransport_mappings: {s: t1}\n", "key rules[0]: rule definition must contain values for both 'app' and 'keyword'"},
		{"keyword rule unknown key", "kind: content_keyword_router\ntransport_names: [t1]\nexposed_names: [a]\nrules: [{app: a, keyword: k, suffix: x}]\ntransport_mappings: {s: t1}\n", "rules[0].suffix: unknown key"},
		{"keyword rule unknown app", "kind: content_keyword_router\ntransport_names: [t1]\nexposed_names: [a]\nrules: [{app: b, keyword: k}]\ntransport_mappings: {s: t1}\n", `key rules[0].app: "b" is not one of exposed_names`},
		{"keyword bad fallback", "kind: content_keyword_router\ntransport_names: [t1]\nexposed_names: [a]\nfallback_application: b\ntransport_mappings: {s: t1}\n", `key fallback_application: "b" is not one of exposed_names`},
		{"keyword no transport_mappings", "kind: content_keyword_router\ntransport_names: [t1]\nexposed_names: [a]\nkeyword_mappings: {a: k}\n", "key transport_mappings: is required"},
		{"keyword nothing to route by", "kind: content_keyword_router\ntransport_names: [t1]\nexposed_names: [a]\ntransport_mappings: {s: t1}\n", "key rules: give rules, keyword_mappings or fallback_application"},
		{"redirect", "kind: vumi.dispatchers.base.RedirectOutboundRouter\ntransport_names: [rx, tx]\nexposed_names: [up]\nredirect_outbound: {up: tx}\nredirect_inbound: {rx: up, tx: up}\n", ""},
		{"redirect bad inbound", "kind: redirect_router\ntransport_names: [rx]\nexposed_names: [up]\nredirect_inbound: {rx: down}\n", `key redirect_inbound.rx: "down" is not one of exposed_names`},
		{"load balancer", "kind: dispatcher\nrouter_class: vumi.dispatchers.load_balancer.LoadBalancingRouter\ntransport_names: [t1, t2]\nexposed_names: [app]\nreply_affinity: false\n", ""},
		{"load balancer two exposed", "kind: load_balancing_router\ntransport_names: [t1]\nexposed_names: [a, b]\n", "only one exposed name allowed for LoadBalancingRouter"},
		{"routing table", "kind: vumi.dispatchers.endpoint_dispatchers.RoutingTableDispatcher\nreceive_inbound_connectors: [sms]\nreceive_outbound_connectors: [app]\nrouting_table: {sms: {default: [app, default]}, app: {default: [sms, default]}}\n", ""},
		{"routing table wrong direction", "kind: routing_table_dispatcher\nreceive_inbound_connectors: [sms, ussd]\nreceive_outbound_connectors: [app]\nrouting_table: {sms: {default: [ussd, default]}}\n", `key routing_table.sms.default: "ussd" must be a receive_outbound connector`},
		{"routing table bad target", "kind: routing_table_dispatcher\nreceive_inbound_connectors: [sms]\nreceive_outbound_connectors: [app]\nrouting_table: {sms: {default: [app]}}\n", "key routing_table.sms.default: must be a [connector, endpoint] pair"},
		{"routing table both names", "kind: routing_table_dispatcher\ntransport_names: [sms]\nreceive_inbound_connectors: [sms]\nreceive_outbound_connectors: [app]\nrouting_table: {sms: {default: [app, default]}}\n", "key receive_inbound_connectors: give it or transport_names, not both"},
		{"unknown router_class", "kind: dispatcher\nrouter_class: vumi.dispatchers.base.NoSuchRouter\ntransport_names: [sms]\nexposed_names: [app]\n", `unknown router_class "vumi.dispatchers.base.NoSuchRouter"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := load(tc.yaml)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && err == nil:
				t.Fatalf("no error, want %q", tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), tc.err):
				t.Fatalf("error %q does not contain %q", err, tc.err)
			case tc.err == "":
				if _, _, err := newRouter(cfg.Workers[0].Config); err != nil {
					t.Fatalf("router: %v", err)
				}
			}
		})
	}
}

// routeCase sends messages through one router and checks where they went.
type routeCase struct {
	name string
	send func(h *harness)
	// want is what was emitted, as out.String() prefixes, in drain order.
	want  []string
	check func(t *testing.T, got []out)
}

func runCases(t *testing.T, workerYAML string, cases []routeCase) {
	t.Helper()
	h := newHarness(t, workerYAML)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			tc.send(h)
			got := h.drain()
			if len(got) != len(tc.want) {
				t.Fatalf("got %d records %v, want %d %v", len(got), got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i].String(), w) {
					t.Errorf("record %d = %s, want prefix %s", i, got[i], w)
				}
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

func TestSimpleDispatchRouter(t *testing.T) {
	sms := msg("+27000000001", "1234", "hi", "sms")
	xmpp := msg("me@x", "bot@x", "yo", "xmpp")
	unknown := msg("+27000000002", "1234", "who", "smpp")
	noName := msg("+27000000003", "1234", "anon", "")
	runCases(t, `
kind: dispatcher
router_class: vumi.dispatchers.SimpleDispatchRouter
transport_names: [sms, xmpp]
exposed_names: [app1, app2]
route_mappings:
  sms: [app1, app2]
  xmpp: app2
transport_mappings:
  upstream: xmpp
`, []routeCase{
		{name: "inbound fans out a copy each", send: func(h *harness) { h.inbound("sms", sms) },
			want: []string{`app1.inbound[+27000000001] "hi" tn=sms`, `app2.inbound[+27000000001] "hi"`},
			check: func(t *testing.T, got []out) {
				if got[0].v.(*schemas.UserMessage).MessageID != sms.MessageID {
					t.Error("message id changed")
				}
			}},
		{name: "inbound single mapping", send: func(h *harness) { h.inbound("xmpp", xmpp) }, want: []string{`app2.inbound[me@x] "yo"`}},
		{name: "inbound without transport_name uses the connector", send: func(h *harness) { h.inbound("xmpp", noName) }, want: []string{`app2.inbound[+27000000003] "anon"`}},
		{name: "inbound unknown transport_name goes to failures", send: func(h *harness) { h.inbound("sms", unknown) },
			want: []string{`sms.failures[+27000000002] no route: unknown transport_name "smpp"`},
			check: func(t *testing.T, got []out) {
				f := got[0].v.(*schemas.Failure)
				if f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent || f.Message == nil || !strings.Contains(*f.Message, unknown.MessageID) {
					t.Errorf("failure %+v", f)
				}
			}},
		{name: "event fans out", send: func(h *harness) { h.event("sms", ack(sms, "sms")) }, want: []string{"app1.event[" + sms.MessageID + "] ack", "app2.event[" + sms.MessageID + "] ack"}},
		{name: "event unknown transport", send: func(h *harness) { h.event("sms", ack(unknown, "smpp")) }, want: []string{"sms.failures[" + unknown.MessageID + "] no route"}},
		{name: "outbound by transport_name", send: func(h *harness) { h.outbound("app1", msg("1234", "+27000000001", "reply", "sms")) }, want: []string{`sms.outbound[+27000000001] "reply" tn=sms`}},
		{name: "outbound re-mapped by transport_mappings", send: func(h *harness) { h.outbound("app2", msg("bot@x", "me@x", "r", "upstream")) }, want: []string{`xmpp.outbound[me@x] "r" tn=upstream`}},
		{name: "outbound unknown transport_name", send: func(h *harness) { h.outbound("app2", msg("bot@x", "me@x", "r", "nowhere")) },
			want: []string{`app2.failures[me@x] no route: unknown transport_name "nowhere"`}},
	})
}

func TestTransportToTransportRouter(t *testing.T) {
	m := msg("+27000000001", "1234", "fwd", "a")
	runCases(t, `
kind: vumi.dispatchers.base.TransportToTransportRouter
transport_names: [a, b, c]
route_mappings: {a: [b, c]}
`, []routeCase{
		{name: "inbound becomes outbound on each mapped transport", send: func(h *harness) { h.inbound("a", m) },
			want: []string{`b.outbound[1234] "fwd"`, `c.outbound[1234] "fwd"`}},
		{name: "events are discarded", send: func(h *harness) { h.event("b", ack(m, "b")) }, want: nil},
		{name: "unmapped transport", send: func(h *harness) { h.inbound("b", msg("x", "y", "z", "b")) }, want: []string{`b.failures[x] no route`}},
	})
}

func TestToAddrRouter(t *testing.T) {
	h := newHarness(t, `
kind: vumi.dispatchers.ToAddrRouter
transport_names: [sms]
exposed_names: [app1, app2]
toaddr_mappings: {app1: '12', app2: '123'}
transport_mappings: {upstream: sms}
`)
	cases := []struct {
		to   string
		want []string
	}{
		{"1234", []string{`app1.inbound[u] "x"`, `app2.inbound[u] "x"`}},
		{"1299", []string{`app1.inbound[u] "x"`}},
		{"9123", []string{`sms.failures[u] no route: to_addr "9123" matches no toaddr_mappings pattern`}},
	}
	for _, tc := range cases {
		t.Run("to_addr "+tc.to, func(t *testing.T) {
			h.inbound("sms", msg("u", tc.to, "x", "sms"))
			assertOuts(t, h.drain(), tc.want...)
		})
	}
	t.Run("events go to the exposed name that sent the message", func(t *testing.T) {
		out := msg("1234", "u", "reply", "upstream")
		h.outbound("app2", out)
		assertOuts(t, h.drain(), `sms.outbound[u] "reply"`)
		h.event("sms", ack(out, "sms"))
		assertOuts(t, h.drain(), "app2.event["+out.MessageID+"] ack")
	})
}

func assertOuts(t *testing.T, got []out, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i].String(), w) {
			t.Errorf("record %d = %s, want prefix %s", i, got[i], w)
		}
	}
}

func TestFromAddrMultiplexRouter(t *testing.T) {
	in := msg("friend@x", "bot1@x", "hello", "x1")
	runCases(t, `
kind: vumi.dispatchers.FromAddrMultiplexRouter
transport_names: [x1, x2]
exposed_names: [app]
fromaddr_mappings: {bot1@x: x1, bot2@x: x2}
`, []routeCase{
		{name: "inbound rewritten to the exposed name", send: func(h *harness) { h.inbound("x1", in) }, want: []string{`app.inbound[friend@x] "hello" tn=app`}},
		{name: "event rewritten", send: func(h *harness) { h.event("x2", ack(in, "x2")) }, want: []string{"app.event"},
			check: func(t *testing.T, got []out) {
				if tn := got[0].v.(*schemas.Event).TransportName; tn == nil || *tn != "app" {
					t.Errorf("event transport_name = %v", tn)
				}
			}},
		{name: "outbound by from_addr, rewritten", send: func(h *harness) { h.outbound("app", msg("bot2@x", "friend@x", "hi", "app")) }, want: []string{`x2.outbound[friend@x] "hi" tn=x2`}},
		{name: "outbound unknown from_addr", send: func(h *harness) { h.outbound("app", msg("bot3@x", "friend@x", "hi", "app")) }, want: []string{`app.failures[friend@x] no route: no fromaddr_mappings entry for from_addr "bot3@x"`}},
	})
}

func TestRedirectRouter(t *testing.T) {
	runCases(t, `
kind: vumi.dispatchers.base.RedirectRouter
transport_names: [rx, tx]
exposed_names: [up]
redirect_outbound: {up: tx}
redirect_inbound: {rx: up, tx: up}
`, []routeCase{
		{name: "inbound via rx", send: func(h *harness) { h.inbound("rx", msg("u", "s", "in", "rx")) }, want: []string{`up.inbound[u] "in" tn=up`}},
		{name: "event via tx", send: func(h *harness) { h.event("tx", ack(msg("s", "u", "", ""), "tx")) }, want: []string{"up.event"}},
		{name: "outbound via tx", send: func(h *harness) { h.outbound("up", msg("s", "u", "out", "up")) }, want: []string{`tx.outbound[u] "out" tn=up`}},
		{name: "outbound without redirect", send: func(h *harness) { h.outbound("up", msg("s", "u", "out", "foo")) }, want: []string{`up.failures[u] no route: no redirect_outbound specified for "foo"`}},
	})
}

func TestLoadBalancingRouter(t *testing.T) {
	for _, tc := range []struct {
		name, opts string
		// transport of each of three pushes and then a reply to a message
		// that came in on t2
		want []string
		// transport_name of the inbound and of the reply
		inTN, replyTN string
	}{
		{"defaults", "", []string{"t1", "t2", "t1", "t2"}, "app", "t2"},
		{"no reply affinity", "reply_affinity: false\n", []string{"t1", "t2", "t1", "t2"}, "app", "t2"},
		{"no rewrite", "rewrite_transport_names: false\n", []string{"t1", "t2", "t1", "t2"}, "t2", "t2"},
		{"no affinity, no rewrite", "reply_affinity: false\nrewrite_transport_names: false\n", []string{"t1", "t2", "t1", "t2"}, "t2", "t2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "kind: vumi.dispatchers.load_balancer.LoadBalancingRouter\ntransport_names: [t1, t2]\nexposed_names: [app]\n"+tc.opts)
			h.inbound("t2", msg("u", "s", "q", "t2"))
			got := h.drain()
			assertOuts(t, got, `app.inbound[u] "q" tn=`+tc.inTN)
			fwd := got[0].v.(*schemas.UserMessage)
			var sent []*schemas.UserMessage
			for range 3 {
				sent = append(sent, msg("s", "u", "push", "app"))
			}
			sent = append(sent, fwd.Reply("a", false))
			where := map[string]string{}
			names := map[string]string{}
			for _, m := range sent {
				h.outbound("app", m)
				for _, o := range h.drain() {
					om := o.v.(*schemas.UserMessage)
					where[om.MessageID] = strings.TrimSuffix(o.topic, ".outbound")
					names[om.MessageID] = om.Transport()
				}
			}
			for i, m := range sent {
				if where[m.MessageID] != tc.want[i] {
					t.Errorf("message %d went to %q, want %q", i, where[m.MessageID], tc.want[i])
				}
			}
			if got := names[sent[3].MessageID]; got != tc.replyTN {
				t.Errorf("reply transport_name = %q, want %q", got, tc.replyTN)
			}
		})
	}
}

func TestRoutingTableDispatcher(t *testing.T) {
	ep := func(m *schemas.UserMessage, e string) *schemas.UserMessage { m.SetEndpoint(e); return m }
	runCases(t, `
kind: vumi.dispatchers.endpoint_dispatchers.RoutingTableDispatcher
receive_inbound_connectors: [sms, ussd]
receive_outbound_connectors: [app1, app2]
routing_table:
  sms: {default: [app1, default], other: [app2, sms_ep]}
  ussd: {default: [app2, ussd_ep]}
  app1: {default: [sms, default]}
  app2: {sms_ep: [sms, default], ussd_ep: [ussd, default]}
`, []routeCase{
		{name: "inbound default endpoint", send: func(h *harness) { h.inbound("sms", msg("u", "s", "a", "sms")) }, want: []string{`app1.inbound[u] "a"`}},
		{name: "inbound other endpoint", send: func(h *harness) { h.inbound("sms", ep(msg("u", "s", "b", "sms"), "other")) }, want: []string{`app2.inbound[u] "b"`},
			check: func(t *testing.T, got []out) {
				if e := got[0].v.(*schemas.UserMessage).Endpoint(); e != "sms_ep" {
					t.Errorf("endpoint %q", e)
				}
			}},
		{name: "outbound by endpoint", send: func(h *harness) { h.outbound("app2", ep(msg("s", "u", "c", "x"), "ussd_ep")) }, want: []string{`ussd.outbound[u] "c"`}},
		{name: "event", send: func(h *harness) { h.event("ussd", ack(msg("s", "u", "", ""), "ussd")) }, want: []string{"app2.event"}},
		{name: "no route for endpoint", send: func(h *harness) { h.outbound("app1", ep(msg("s", "u", "d", "x"), "nope")) },
			want: []string{`app1.failures[u] no route: no routing information for endpoint "nope" on "app1"`}},
	})
}

func TestPassThroughRouter(t *testing.T) {
	runCases(t, "kind: passthrough\ntransport_names: [sms]\nexposed_names: [app]\n", []routeCase{
		{name: "inbound", send: func(h *harness) { h.inbound("sms", msg("u", "s", "a", "sms")) }, want: []string{`app.inbound[u] "a"`}},
		{name: "outbound", send: func(h *harness) { h.outbound("app", msg("s", "u", "b", "sms")) }, want: []string{`sms.outbound[u] "b"`}},
	})
}

const keywordYAML = `
kind: dispatcher
router_class: vumi.dispatchers.base.ContentKeywordRouter
dispatcher_name: keyword_dispatcher
transport_names: [transport1, transport2]
exposed_names: [app1, app2, app3, fallback_app]
rules:
  - {app: app1, keyword: KEYWORD1, to_addr: '8181', prefix: '+256'}
  - {app: app2, keyword: KEYWORD2}
keyword_mappings: {app2: KEYWORD3, app3: KEYWORD1}
fallback_application: fallback_app
transport_mappings: {shortcode1: transport1, shortcode2: transport2}
expire_routing_memory: 3600
event_wait_timeout: 60
`

func TestContentKeywordRouterInbound(t *testing.T) {
	in := func(content, to, from string) func(h *harness) {
		return func(h *harness) { h.inbound("transport1", msg(from, to, content, "transport1")) }
	}
	runCases(t, keywordYAML, []routeCase{
		{name: "rule with to_addr and prefix, and a keyword mapping", send: in("KEYWORD1 rest of msg", "8181", "+256788601462"),
			want: []string{`app1.inbound[+256788601462] "KEYWORD1`, `app3.inbound[+256788601462] "KEYWORD1`}},
		{name: "rule to_addr mismatch", send: in("KEYWORD1 rest", "9999", "+256788601462"), want: []string{`app3.inbound`}},
		{name: "rule prefix mismatch", send: in("KEYWORD1 rest", "8181", "+27788601462"), want: []string{`app3.inbound`}},
		{name: "plain rule", send: in("KEYWORD2 rest of msg", "8181", "+256788601462"), want: []string{`app2.inbound`}},
		{name: "keyword mapping", send: in("KEYWORD3 rest of msg", "8181", "+256788601462"), want: []string{`app2.inbound`}},
		{name: "not case sensitive", send: in("keyword1 rest of msg", "8181", "+256788601462"), want: []string{`app1.inbound`, `app3.inbound`}},
		{name: "first word is up to the first space", send: in(" KEYWORD2", "8181", "+256"), want: []string{`fallback_app.inbound`}},
		{name: "empty content goes to the fallback", send: func(h *harness) { h.inbound("transport1", msg("+256", "8181", "", "transport1")) }, want: []string{`fallback_app.inbound`}},
		{name: "no rule matches", send: in("hello", "8181", "+256"), want: []string{`fallback_app.inbound[+256] "hello"`}},
	})
}

func TestContentKeywordRouterNoFallback(t *testing.T) {
	runCases(t, `
kind: content_keyword_router
transport_names: [t1]
exposed_names: [app]
keyword_mappings: {app: yes}
transport_mappings: {s: t1}
`, []routeCase{
		{name: "unrouted inbound goes to failures", send: func(h *harness) { h.inbound("t1", msg("u", "s", "no thanks", "t1")) },
			want: []string{`t1.failures[u] no route: message could not be routed: keyword "no"`}},
		{name: "outbound with unknown from_addr", send: func(h *harness) { h.outbound("app", msg("other", "u", "x", "app")) },
			want: []string{`app.failures[u] no route: no transport for from_addr "other"`}},
	})
}

func TestContentKeywordRouterEvents(t *testing.T) {
	h := newHarness(t, keywordYAML)
	out := msg("shortcode2", "+256788601462", "KEYWORD1 rest of msg", "app2")

	t.Run("outbound by from_addr, remembered", func(t *testing.T) {
		h.outbound("app2", out)
		assertOuts(t, h.drain(), `transport2.outbound[+256788601462] "KEYWORD1`)
		if !slices.Contains(h.tableKeys(), out.MessageID) {
			t.Fatalf("message id not remembered; table keys %v", h.tableKeys())
		}
	})
	t.Run("ack, nack and delivery report go home", func(t *testing.T) {
		nack := &schemas.Event{EventID: "n1", EventType: schemas.EventNack, UserMessageID: out.MessageID, NackReason: schemas.String("no"), Timestamp: schemas.Now()}
		st := schemas.DeliveryDelivered
		dr := &schemas.Event{EventID: "d1", EventType: schemas.EventDeliveryReport, UserMessageID: out.MessageID, DeliveryStatus: &st, Timestamp: schemas.Now()}
		h.event("transport2", ack(out, "transport2"))
		h.event("transport1", nack)
		h.event("transport2", dr)
		assertOuts(t, h.drain(), "app2.event["+out.MessageID+"] ack", "app2.event["+out.MessageID+"] nack", "app2.event["+out.MessageID+"] delivery_report")
	})
	t.Run("memory survives a restart", func(t *testing.T) {
		h.restart()
		h.clk.advance(59 * time.Minute)
		h.sweep()
		h.event("transport2", ack(out, "transport2"))
		assertOuts(t, h.drain(), "app2.event["+out.MessageID+"] ack")
	})
	t.Run("event before its memory waits for it", func(t *testing.T) {
		early := msg("shortcode1", "+256700000000", "x", "app1")
		h.event("transport1", ack(early, "transport1"))
		assertOuts(t, h.drain())
		h.outbound("app1", early)
		assertOuts(t, h.drain(), "app1.event["+early.MessageID+"] ack", `transport1.outbound[+256700000000]`)
	})
	t.Run("event with no memory goes to failures after event_wait_timeout", func(t *testing.T) {
		stray := msg("shortcode1", "+256700000001", "x", "app1")
		h.event("transport1", ack(stray, "transport1"))
		h.clk.advance(59 * time.Second)
		h.sweep()
		assertOuts(t, h.drain())
		h.clk.advance(time.Second)
		h.sweep()
		assertOuts(t, h.drain(), "transport1.failures["+stray.MessageID+"] no routing memory of message "+stray.MessageID)
		if slices.Contains(h.tableKeys(), stray.MessageID) {
			t.Error("parked event still in the table")
		}
	})
	t.Run("memory expires", func(t *testing.T) {
		h.clk.advance(time.Hour)
		h.sweep()
		if keys := h.tableKeys(); len(keys) != 0 {
			t.Fatalf("table keys after expiry: %v", keys)
		}
		h.event("transport2", ack(out, "transport2"))
		h.clk.advance(time.Minute)
		h.sweep()
		assertOuts(t, h.drain(), "transport2.failures["+out.MessageID+"] no routing memory")
	})
	t.Run("event keyed by something else", func(t *testing.T) {
		e := ack(out, "transport2")
		b, err := h.codecs.Event.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		h.tt.Consume("transport2.event", "not-the-id", b)
		assertOuts(t, h.drain(), "transport2.failures[not-the-id] event "+e.EventID+" is keyed")
	})
}

const groupingYAML = `
kind: dispatcher
router_class: vumi.dispatchers.base.UserGroupingRouter
dispatcher_name: user_group_dispatcher
transport_names: [transport1]
exposed_names: [app1, app2]
group_mappings: {group1: app1, group2: app2}
transport_mappings: {upstream1: transport1}
`

func TestUserGroupingRouter(t *testing.T) {
	h := newHarness(t, groupingYAML)
	send := func(from, content string) { h.inbound("transport1", msg(from, "1234", content, "transport1")) }
	t.Run("round robin over sorted groups", func(t *testing.T) {
		for i := range 4 {
			send(fmt.Sprintf("from_%d", i), "foo")
		}
		assertOuts(t, h.drain(), `app1.inbound[from_0]`, `app1.inbound[from_2]`, `app2.inbound[from_1]`, `app2.inbound[from_3]`)
	})
	t.Run("a user keeps the group", func(t *testing.T) {
		for range 5 {
			send("from_1", "again")
		}
		got := h.drain()
		if len(got) != 5 || slices.ContainsFunc(got, func(o out) bool { return o.topic != "app2.inbound" }) {
			t.Fatalf("from_1 went to %v", topicsOf(got))
		}
	})
	t.Run("assignments and counter survive a restart", func(t *testing.T) {
		h.restart()
		send("from_0", "back")
		send("from_4", "new")
		send("from_5", "new")
		assertOuts(t, h.drain(), `app1.inbound[from_0] "back"`, `app1.inbound[from_4]`, `app2.inbound[from_5]`)
	})
	t.Run("outbound as SimpleDispatchRouter", func(t *testing.T) {
		o := msg("1234", "from_1", "r", "upstream1")
		h.outbound("app2", o)
		assertOuts(t, h.drain(), `transport1.outbound[from_1] "r"`)
		h.event("transport1", ack(o, "transport1"))
		assertOuts(t, h.drain(), "app2.event["+o.MessageID+"] ack")
	})
	t.Run("a group removed from the config is reassigned", func(t *testing.T) {
		cfg, err := load(strings.Replace(groupingYAML, "{group1: app1, group2: app2}", "{group1: app1, group3: app2}", 1))
		if err != nil {
			t.Fatal(err)
		}
		h.spec = cfg.Workers[0]
		h.restart()
		send("from_0", "stays") // group1 still exists
		send("from_1", "moved") // group2 is gone: counter 7 -> group1
		send("from_6", "new")   // counter 8 -> group3
		assertOuts(t, h.drain(), `app1.inbound[from_0] "stays"`, `app1.inbound[from_1] "moved"`, `app2.inbound[from_6]`)
	})
}

func TestUserGroupingRouterExpiry(t *testing.T) {
	h := newHarness(t, groupingYAML+"expire_groups: 60\n")
	h.inbound("transport1", msg("a", "1234", "x", "transport1"))
	h.inbound("transport1", msg("b", "1234", "x", "transport1"))
	assertOuts(t, h.drain(), "app1.inbound[a]", "app2.inbound[b]")
	h.clk.advance(time.Minute)
	h.sweep()
	if keys := h.tableKeys(); !slices.Equal(keys, []string{counterKey}) {
		t.Fatalf("table keys after expiry %q, want only the counter", keys)
	}
	h.inbound("transport1", msg("a", "1234", "x", "transport1"))
	assertOuts(t, h.drain(), "app1.inbound[a]") // counter 3 -> group1
}

// TestTableStaysBounded: a long run (simulated, 48 hours of traffic) with
// routing memory expiry keeps the table at about one expiry period's worth
// of message ids, not everything ever sent.
func TestTableStaysBounded(t *testing.T) {
	h := newHarness(t, `
kind: content_keyword_router
transport_names: [sms]
exposed_names: [app]
fallback_application: app
transport_mappings: {short: sms}
expire_routing_memory: 3600
sweep_interval: 600
`)
	const perTick = 20 // messages per 10 simulated minutes
	var sizes []int
	for tick := range 6 * 48 {
		for i := range perTick {
			m := msg("short", fmt.Sprintf("+2770%04d%03d", tick, i), "x", "app")
			h.outbound("app", m)
			h.event("sms", ack(m, "sms"))
		}
		h.clk.advance(10 * time.Minute)
		h.sweep()
		sizes = append(sizes, len(h.tableKeys()))
		h.drain()
	}
	maxSize := slices.Max(sizes)
	if limit := 6 * perTick; maxSize > limit {
		t.Fatalf("table grew to %d keys, want at most %d (one expiry period of ids); sizes %v", maxSize, limit, sizes)
	}
	if last := sizes[len(sizes)-1]; last < 5*perTick {
		t.Fatalf("table has %d keys at the end, want about %d: memory expires too early", last, 6*perTick)
	}
	t.Logf("table size over 48 simulated hours: first %v ... last %v, max %d", sizes[:8], sizes[len(sizes)-4:], maxSize)
}
