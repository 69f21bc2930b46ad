package builtin_test

import (
	"strings"
	"testing"

	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/processors/middleware/builtin"
	"github.com/vumi-kafka/vumi/topology"
)

type appConfig struct {
	app.Config `yaml:",inline"`
}

func (c *appConfig) Validate() error { return c.ValidateBase() }

func registry() *topology.Registry {
	r := topology.NewRegistry()
	r.Add(&topology.Kind{Name: "app", Role: topology.RoleApplication, NewConfig: func() topology.WorkerConfig { return &appConfig{} }})
	r.AddMiddleware(builtin.Kinds()...)
	return r
}

const head = `cluster:
  topics:
    sms.inbound: {external: true}
    sms.event: {external: true}
workers:
  - name: w
    kind: app
    transport_name: sms
`

// TestConfigs: every kind loads under Vumi's class path with its options,
// and strict decoding names the key at fault.
func TestConfigs(t *testing.T) {
	for _, c := range []struct {
		name, yaml, err string
		check           func(t *testing.T, cfg *topology.Config)
	}{
		{"all Vumi class paths", `    middleware:
      - at: vumi.middleware.address_translator.AddressTranslationMiddleware
      - log: vumi.middleware.logging.LoggingMiddleware
      - tag: vumi.middleware.tagger.TaggingMiddleware
      - st: vumi.middleware.message_storing.StoringMiddleware
      - sl: vumi.middleware.session_length.SessionLengthMiddleware
      - sp: vumi.middleware.provider_setter.StaticProviderSettingMiddleware
      - pp: vumi.middleware.provider_setter.AddressPrefixProviderSettingMiddleware
    at: {outbound_map: {a: b}}
    log: {log_level: debug, failure_log_level: critical}
    tag:
      incoming: {addr_pattern: '^(\d+)$', tagpool_template: pool, tagname_template: '\1'}
      outgoing: {tagname_pattern: '.*', msg_template: {transport_metadata: {x: 1}}}
    st: {store_prefix: archive, store_on_consume: false, riak_manager: {bucket_prefix: x}}
    sl: {timeout: 30, namespace_type: tag, field_name: sess, redis_manager: {}}
    sp: {provider: MNO}
    pp: {provider_prefixes: {"+27": ZA}, normalize_msisdn: {country_code: "27", strip_plus: true}}
`, "", func(t *testing.T, cfg *topology.Config) {
			w, _ := cfg.Worker("w")
			if len(w.Middleware) != 7 {
				t.Fatalf("%d middleware", len(w.Middleware))
			}
			st := w.Middleware[3].Config.(*middleware.StoringConfig)
			if st.StorePrefix != "archive" || st.StoreOnConsume {
				t.Errorf("storing config %+v", st)
			}
			g := topology.BuildGraph(cfg)
			for _, topic := range []string{"archive.inbound", "archive.outbound", "archive.event", "w.sl.sessions"} {
				if _, ok := g.Topics[topic]; !ok {
					t.Errorf("graph lacks %s: %v", topic, g.TopicNames())
				}
			}
			if !g.Topics["w.sl.sessions"].Compacted {
				t.Error("session topic not compacted")
			}
			if err := g.Validate(); err != nil {
				t.Error(err)
			}
		}},
		{"defaults", `    middleware:
      - st: storing
      - sl: session_length
`, "", func(t *testing.T, cfg *topology.Config) {
			w, _ := cfg.Worker("w")
			if st := w.Middleware[0].Config.(*middleware.StoringConfig); st.StorePrefix != "message_store" || !st.StoreOnConsume {
				t.Errorf("storing defaults %+v", st)
			}
			if sl := w.Middleware[1].Config.(*middleware.SessionLengthConfig); sl.Timeout != 600 || sl.FieldName != "session" || sl.NamespaceType != "transport_name" {
				t.Errorf("session_length defaults %+v", sl)
			}
		}},
		{"unknown key", "    middleware: [{at: address_translator}]\n    at: {outbound_map: {}, inbound_map: {}}\n", "inbound_map", nil},
		{"missing required", "    middleware: [{sp: static_provider}]\n", "key provider: is required", nil},
		{"bad regexp", "    middleware: [{t: tagger}]\n    t: {incoming: {addr_pattern: '(', tagpool_template: p, tagname_template: t}, outgoing: {tagname_pattern: x, msg_template: {}}}\n", "key incoming.addr_pattern", nil},
		{"wrong type", "    middleware: [{sl: session_length}]\n    sl: {timeout: soon}\n", "timeout", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := topology.Load("test.yaml", []byte(head+c.yaml), registry(), nil)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}
