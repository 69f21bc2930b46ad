package topology_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/topology"
)

// testConfig is a small worker kind for config tests.
type testConfig struct {
	TransportName string            `yaml:"transport_name"`
	Count         int               `yaml:"count"`
	Ratio         float64           `yaml:"ratio"`
	Tags          []string          `yaml:"tags"`
	Nested        struct{ A int }   `yaml:"nested"`
	Map           map[string]string `yaml:"map"`
	Secret        string            `yaml:"secret"`
}

func (c *testConfig) Validate() error {
	if c.TransportName == "" {
		return errors.New("key transport_name: is required")
	}
	return nil
}

func (c *testConfig) IO(string) topology.IO {
	return topology.IO{
		Consumes: []topology.Stream{{Topic: c.TransportName + ".outbound", Kind: "user_message"}},
		Produces: []topology.Stream{{Topic: c.TransportName + ".inbound", Kind: "user_message"}},
	}
}

type appConfig struct {
	TransportName string `yaml:"transport_name"`
	Kind          string `yaml:"message_kind"`
}

func (c *appConfig) Validate() error { return nil }
func (c *appConfig) IO(name string) topology.IO {
	k := c.Kind
	if k == "" {
		k = "user_message"
	}
	return topology.IO{
		Consumes:      []topology.Stream{{Topic: c.TransportName + ".inbound", Kind: k}, {Topic: name + "-table", Kind: "state", Compacted: true}},
		Produces:      []topology.Stream{{Topic: c.TransportName + ".outbound", Kind: "user_message"}, {Topic: name + "-table", Kind: "state", Compacted: true}},
		CoPartitioned: [][]string{{c.TransportName + ".inbound", name + "-table"}},
	}
}

type mwConfig struct {
	Level string `yaml:"log_level"`
}

func (c *mwConfig) Validate() error {
	if c.Level == "loud" {
		return errors.New("key log_level: unknown log level \"loud\"")
	}
	return nil
}

func registry() *topology.Registry {
	r := topology.NewRegistry()
	r.Add(&topology.Kind{Name: "fake_transport", Aliases: []string{"vumi.transports.Fake"}, Role: topology.RoleTransport,
		NewConfig: func() topology.WorkerConfig { return &testConfig{Count: 7} }})
	r.Add(&topology.Kind{Name: "fake_app", Role: topology.RoleApplication,
		NewConfig: func() topology.WorkerConfig { return &appConfig{} }})
	r.AddMiddleware(&topology.MiddlewareKind{Name: "logging", Aliases: []string{"vumi.middleware.logging.LoggingMiddleware"},
		NewConfig: func() topology.MiddlewareConfig { return &mwConfig{Level: "info"} }})
	return r
}

const good = `
cluster:
  topic_prefix: prod.
  partitions: 3
  topics:
    sms.inbound: {partitions: 6}
workers:
  - name: sms_transport
    kind: vumi.transports.Fake
    transport_name: sms
    count: ${COUNT}
    secret: ${SECRET:-default-secret}
    tags: [a, b]
    nested: {a: 2}
    middleware:
      - log1: logging
      - log2: {class: vumi.middleware.logging.LoggingMiddleware, consume_priority: 1, publish_priority: -1}
    log1:
      log_level: debug
  - name: app
    kind: fake_app
    transport_name: sms
`

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestLoadGood(t *testing.T) {
	cfg, err := topology.Load("good.yaml", []byte(good), registry(), env(map[string]string{"COUNT": "42", "SECRET": ""}))
	if err != nil {
		t.Fatal(err)
	}
	w, ok := cfg.Worker("sms_transport")
	if !ok {
		t.Fatal("worker missing")
	}
	tc := w.Config.(*testConfig)
	if tc.Count != 42 || tc.Secret != "default-secret" || tc.Nested.A != 2 || len(tc.Tags) != 2 || w.Kind.Name != "fake_transport" {
		t.Errorf("decoded %+v kind %s", tc, w.Kind.Name)
	}
	if len(w.Middleware) != 2 || w.Middleware[0].Config.(*mwConfig).Level != "debug" || w.Middleware[1].Config.(*mwConfig).Level != "info" {
		t.Errorf("middleware %+v", w.Middleware)
	}
	if p := w.Middleware[1].Priorities; p != (middleware.Priorities{Consume: 1, Publish: -1}) {
		t.Errorf("priorities %+v", p)
	}
	if got := cfg.Cluster.PartitionsOf("sms.inbound"); got != 6 {
		t.Errorf("sms.inbound partitions = %d", got)
	}
	if cfg.Cluster.StateDir != "data/state" || !cfg.Cluster.IsEmbedded() || cfg.Cluster.Kafka.Compression != "none" {
		t.Errorf("defaults: state dir %q embedded %v compression %q", cfg.Cluster.StateDir, cfg.Cluster.IsEmbedded(), cfg.Cluster.Kafka.Compression)
	}
	ext, err := topology.Load("ext.yaml", []byte("cluster: {kafka: {brokers: [k:9092]}, schema_registry: {url: 'http://r:8081'}}\nworkers: [{name: a, kind: fake_app}]\n"), registry(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := ext.Cluster.Kafka.Compression; got != "snappy" {
		t.Errorf("compression to a cluster defaults to %q, want snappy", got)
	}
	// sms.inbound (6) and app-table (3) must be co-partitioned.
	err = topology.BuildGraph(cfg).Validate()
	if err == nil || !strings.Contains(err.Error(), "worker app: topics sms.inbound, app-table must be co-partitioned but have partition counts 6, 3") {
		t.Errorf("graph validation = %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"invalid yaml", "workers: [", "bad.yaml: invalid YAML"},
		{"empty", "", "bad.yaml: empty config"},
		{"top level key", "cluster: {}\nworkerz: []\n", "bad.yaml: line 2: key workerz: unknown top-level key"},
		{"no workers", "cluster: {}\n", "bad.yaml: key workers: at least one worker is required"},
		{"cluster unknown key", "cluster:\n  partitons: 3\nworkers: [{name: a, kind: fake_app}]\n", `bad.yaml: line 2: key cluster.partitons: unknown key (did you mean "partitions"?)`},
		{"cluster wrong type", "cluster:\n  partitions: many\nworkers: [{name: a, kind: fake_app}]\n", `bad.yaml: line 2: key cluster.partitions: must be an integer, got str "many"`},
		{"cluster nested unknown", "cluster:\n  kafka:\n    tls: {enabled: true, cafile: x}\nworkers: [{name: a, kind: fake_app}]\n", "key cluster.kafka.tls.cafile: unknown key"},
		{"cluster bad partitions", "cluster: {partitions: -2}\nworkers: [{name: a, kind: fake_app}]\n", "cluster.partitions: must be at least 1, got -2"},
		{"cluster registry required", "cluster: {kafka: {brokers: [k:9092]}}\nworkers: [{name: a, kind: fake_app}]\n", "cluster.schema_registry.url: is required"},
		{"cluster sasl", "cluster: {kafka: {sasl: {mechanism: GSSAPI}}}\nworkers: [{name: a, kind: fake_app}]\n", `cluster.kafka.sasl.mechanism: "GSSAPI" is not PLAIN`},
		{"compression", "cluster: {kafka: {compression: brotli}}\nworkers: [{name: a, kind: fake_app}]\n", `cluster.kafka.compression: "brotli" is not none, gzip, snappy, lz4 or zstd`},
		{"tls not enabled", "cluster: {kafka: {tls: {ca_file: /ca.pem}}}\nworkers: [{name: a, kind: fake_app}]\n", "cluster.kafka.tls.enabled: TLS settings are given but tls.enabled is false"},
		{"worker not mapping", "workers: [hello]\n", "line 1: key workers: each worker must be a mapping"},
		{"worker no name", "workers:\n  - kind: fake_app\n", "line 2: key name: every worker needs a name"},
		{"worker bad name", "workers:\n  - {name: 'a b', kind: fake_app}\n", "worker a b (line 2): key name: may only contain"},
		{"worker no kind", "workers:\n  - name: w\n", "worker w: line 2: key kind: is required; known kinds: fake_app, fake_transport"},
		{"worker unknown kind", "workers:\n  - name: w\n    kind: smpp2\n", `worker w: line 3: key kind: unknown kind "smpp2"`},
		{"worker unknown key", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    cont: 3\n", `worker w: line 5: key cont: unknown key (did you mean "count"?)`},
		{"worker wrong type", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    count: [1]\n", "worker w: line 5: key count: must be an integer, got a list"},
		{"worker wrong list type", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    tags: {a: 1}\n", "worker w: line 5: key tags: must be a list of string"},
		{"worker nested unknown", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    nested: {b: 1}\n", "worker w: line 5: key nested.b: unknown key"},
		{"worker missing required", "workers:\n  - name: w\n    kind: fake_transport\n", "worker w: key transport_name: is required"},
		{"duplicate worker", "workers:\n  - {name: w, kind: fake_app}\n  - {name: w, kind: fake_app}\n", "worker w (line 3): name already used by the worker at line 2"},
		{"duplicate key", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    count: 1\n    count: 2\n", "worker w: line 6: key count: given twice"},
		{"env missing", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: ${NOPE}\n", "line 4: environment variable NOPE is not set"},
		{"middleware not list", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    middleware: logging\n", "worker w: line 5: key middleware: must be a list"},
		{"middleware unknown", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    middleware: [{m: vumi.middleware.Nope}]\n", `worker w: line 5: key middleware.m: unknown middleware "vumi.middleware.Nope"; known: logging`},
		{"middleware bad config", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    middleware: [{m: logging}]\n    m: {log_level: loud}\n", "worker w: middleware m: key log_level: unknown log level"},
		{"middleware config unknown key", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    middleware: [{m: logging}]\n    m: {level: info}\n", "worker w: line 6: key m.level: unknown key"},
		{"middleware dup", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    middleware: [{m: logging}, {m: logging}]\n", `middleware name "m" used twice`},
		{"middleware priority type", "workers:\n  - name: w\n    kind: fake_transport\n    transport_name: x\n    middleware: [{m: {class: logging, consume_priority: high}}]\n", "key middleware.m.consume_priority: must be an integer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := topology.Load("bad.yaml", []byte(tc.yaml), registry(), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "bad.yaml: ") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestGraphValidation(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"no producer", "workers:\n  - {name: app, kind: fake_app, transport_name: sms}\n", "topic sms.inbound: consumed by app but no worker produces it"},
		{"kind mismatch", "workers:\n  - {name: t, kind: fake_transport, transport_name: sms}\n  - {name: app, kind: fake_app, transport_name: sms, message_kind: event}\n", "topic sms.inbound: workers disagree on its message kind (user_message vs event)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := topology.Load("g.yaml", []byte(tc.yaml), registry(), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			err = topology.BuildGraph(cfg).Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	// Declaring the topic external makes a producer-less consumer valid.
	cfg, err := topology.Load("g.yaml", []byte("cluster: {topics: {sms.inbound: {external: true}}}\nworkers:\n  - {name: app, kind: fake_app, transport_name: sms}\n"), registry(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := topology.BuildGraph(cfg).Validate(); err != nil {
		t.Errorf("external topic: %v", err)
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := topology.LoadFile(filepath.Join(t.TempDir(), "nope.yaml"), registry())
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}
