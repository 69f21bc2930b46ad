package topology

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/processors/middleware"
)

// Config is a whole deployment: the cluster and its workers.
type Config struct {
	// File is the path the config was loaded from.
	File    string        `yaml:"-"`
	Cluster ClusterConfig `yaml:"cluster"`
	// Management is the management API, dashboard and control topic.
	Management ManagementConfig `yaml:"management"`
	Workers    []*WorkerSpec    `yaml:"-"`
	byName     map[string]int   `yaml:"-"`
}

// ClusterConfig says where Kafka and the schema registry are, and how
// topics are named and sized.
type ClusterConfig struct {
	Kafka          KafkaConfig          `yaml:"kafka"`
	SchemaRegistry SchemaRegistryConfig `yaml:"schema_registry"`
	Embedded       EmbeddedConfig       `yaml:"embedded"`
	// TopicPrefix is prepended to every topic name, e.g. "prod.".
	TopicPrefix string `yaml:"topic_prefix"`
	// Partitions is the default partition count of the topics the
	// deployment creates. Default 4.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor of created topics; default -1 (broker default).
	ReplicationFactor int `yaml:"replication_factor"`
	// Topics overrides settings per topic (name without prefix).
	Topics map[string]TopicConfig `yaml:"topics"`
	// StateDir holds the local copies of group tables. Default
	// <embedded.data_dir>/state in embedded mode, ./state otherwise.
	StateDir string `yaml:"state_dir"`
}

// TopicConfig overrides one topic's settings.
type TopicConfig struct {
	Partitions int               `yaml:"partitions"`
	Config     map[string]string `yaml:"config"`
	// External marks a topic written by something outside this config
	// (another deployment, a data pipeline), so that consuming it without
	// a producer here is not an error.
	External bool `yaml:"external"`
}

// KafkaConfig is how to reach a Kafka cluster. No brokers means embedded.
type KafkaConfig struct {
	Brokers  []string   `yaml:"brokers"`
	ClientID string     `yaml:"client_id"`
	TLS      TLSConfig  `yaml:"tls"`
	SASL     SASLConfig `yaml:"sasl"`
	// DialTimeout for broker connections; default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// Compression of produced batches: none, gzip, snappy, lz4 or zstd.
	// Default snappy for a cluster, none for the embedded broker (loopback:
	// compressing only costs CPU on both ends).
	Compression string `yaml:"compression"`
}

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig enables SASL authentication to the brokers.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// SchemaRegistryConfig is how to reach the schema registry. No URL in
// embedded mode means the embedded registry.
type SchemaRegistryConfig struct {
	URL      string `yaml:"url"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// EmbeddedConfig configures the embedded broker and registry used when no
// brokers are configured.
type EmbeddedConfig struct {
	DataDir      string `yaml:"data_dir"`
	KafkaPort    int    `yaml:"kafka_port"`
	RegistryPort int    `yaml:"registry_port"`
	SyncWrites   bool   `yaml:"sync_writes"`
}

// IsEmbedded reports whether the deployment runs its own broker.
func (c *ClusterConfig) IsEmbedded() bool { return len(c.Kafka.Brokers) == 0 }

// Names returns the topic namer of the deployment.
func (c *ClusterConfig) Names() Names { return Names{Prefix: c.TopicPrefix} }

// PartitionsOf returns the partition count of a topic (name without prefix).
func (c *ClusterConfig) PartitionsOf(topic string) int {
	if t, ok := c.Topics[topic]; ok && t.Partitions > 0 {
		return t.Partitions
	}
	return c.Partitions
}

func (c *ClusterConfig) defaults() {
	if c.Partitions == 0 {
		c.Partitions = 4
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.Embedded.DataDir == "" {
		c.Embedded.DataDir = "data"
	}
	if c.Embedded.KafkaPort == 0 {
		c.Embedded.KafkaPort = 9092
	}
	if c.Embedded.RegistryPort == 0 {
		c.Embedded.RegistryPort = 8081
	}
	if c.StateDir == "" {
		if c.IsEmbedded() {
			c.StateDir = c.Embedded.DataDir + "/state"
		} else {
			c.StateDir = "state"
		}
	}
	if c.Kafka.ClientID == "" {
		c.Kafka.ClientID = "vumi"
	}
	if c.Kafka.DialTimeout == 0 {
		c.Kafka.DialTimeout = 10 * time.Second
	}
	if c.Kafka.Compression == "" {
		c.Kafka.Compression = "snappy"
		if c.IsEmbedded() {
			c.Kafka.Compression = "none"
		}
	}
}

var topicNameRe = regexp.MustCompile(`^[A-Za-z0-9._-]*$`)

// ValidTopicPrefix reports whether s may be used as a topic prefix.
func ValidTopicPrefix(s string) bool { return topicNameRe.MatchString(s) }

func (c *ClusterConfig) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cluster.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Partitions < 1 {
		bad("partitions", "must be at least 1, got %d", c.Partitions)
	}
	if c.ReplicationFactor < -1 || c.ReplicationFactor == 0 {
		bad("replication_factor", "must be -1 (broker default) or at least 1, got %d", c.ReplicationFactor)
	}
	if !topicNameRe.MatchString(c.TopicPrefix) {
		bad("topic_prefix", "%q may only contain letters, digits, '.', '_' and '-'", c.TopicPrefix)
	}
	for name, t := range c.Topics {
		if t.Partitions < 0 {
			bad("topics."+name+".partitions", "must be at least 1, got %d", t.Partitions)
		}
	}
	for _, p := range []struct {
		key string
		v   int
	}{{"embedded.kafka_port", c.Embedded.KafkaPort}, {"embedded.registry_port", c.Embedded.RegistryPort}} {
		if p.v < -1 || p.v > 65535 {
			bad(p.key, "%d is not a port (1-65535, or -1 for any free port)", p.v)
		}
	}
	if !c.IsEmbedded() && c.SchemaRegistry.URL == "" {
		bad("schema_registry.url", "is required when kafka.brokers is set (a real cluster needs a real registry)")
	}
	switch c.Kafka.Compression {
	case "", "none", "gzip", "snappy", "lz4", "zstd":
	default:
		bad("kafka.compression", "%q is not none, gzip, snappy, lz4 or zstd", c.Kafka.Compression)
	}
	switch strings.ToUpper(c.Kafka.SASL.Mechanism) {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		bad("kafka.sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.Kafka.SASL.Mechanism)
	}
	if c.Kafka.SASL.Mechanism != "" && c.Kafka.SASL.Username == "" {
		bad("kafka.sasl.username", "is required with a SASL mechanism")
	}
	if tls := c.Kafka.TLS; !tls.Enabled && (tls.CAFile != "" || tls.CertFile != "" || tls.KeyFile != "" || tls.ServerName != "" || tls.InsecureSkipVerify) {
		bad("kafka.tls.enabled", "TLS settings are given but tls.enabled is false; set enabled: true to use them")
	}
	if (c.Kafka.TLS.CertFile == "") != (c.Kafka.TLS.KeyFile == "") {
		bad("kafka.tls", "cert_file and key_file must be given together")
	}
	if (c.SchemaRegistry.Username == "") != (c.SchemaRegistry.Password == "") {
		bad("schema_registry", "username and password must be given together")
	}
	return errors.Join(errs...)
}

// WorkerSpec is one worker of the deployment, decoded and validated.
type WorkerSpec struct {
	Name       string
	Kind       *Kind
	Config     WorkerConfig
	Middleware []*MiddlewareSpec
	// Line is where the worker is defined in the config file.
	Line int
}

// MiddlewareSpec is one middleware of a worker's stack, in config order.
type MiddlewareSpec struct {
	Name       string
	Kind       *MiddlewareKind
	Config     MiddlewareConfig
	Priorities middleware.Priorities
}

// middlewareClass reads a middleware entry's value: a class name, or (as in
// Vumi) a mapping with class, consume_priority and publish_priority.
func middlewareClass(n *yaml.Node, path string) (string, middleware.Priorities, error) {
	var p middleware.Priorities
	if n.Kind == yaml.ScalarNode {
		return n.Value, p, nil
	}
	var long struct {
		Class           string `yaml:"class"`
		ConsumePriority int    `yaml:"consume_priority"`
		PublishPriority int    `yaml:"publish_priority"`
	}
	if err := decodeStrict(n, &long, path, nil); err != nil {
		return "", p, err
	}
	if long.Class == "" {
		return "", p, &KeyError{Key: path + ".class", Line: n.Line, Msg: "is required"}
	}
	p.Consume, p.Publish = long.ConsumePriority, long.PublishPriority
	return long.Class, p, nil
}

// ConfigOf returns a config of a cluster section and some already loaded
// workers: tools run part of a deployment under another cluster section
// with it (`vumi replay` runs one worker under a shadow topic prefix).
func ConfigOf(cluster *ClusterConfig, workers ...*WorkerSpec) *Config {
	cfg := &Config{File: "(derived config)", Cluster: *cluster, byName: map[string]int{}}
	for i, w := range workers {
		cfg.byName[w.Name] = i
		cfg.Workers = append(cfg.Workers, w)
	}
	return cfg
}

// Worker returns the worker called name.
func (c *Config) Worker(name string) (*WorkerSpec, bool) {
	i, ok := c.byName[name]
	if !ok {
		return nil, false
	}
	return c.Workers[i], true
}

// WorkerNames returns the worker names in config order.
func (c *Config) WorkerNames() []string {
	out := make([]string, len(c.Workers))
	for i, w := range c.Workers {
		out[i] = w.Name
	}
	return out
}

// LoadFile reads and validates a deployment config with the kinds of reg.
func LoadFile(path string, reg *Registry) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Load(path, b, reg, nil)
}

// Load parses and validates a deployment config. file names it in errors;
// env looks up ${VAR} references (nil: the process environment).
func Load(file string, data []byte, reg *Registry, env func(string) (string, bool)) (*Config, error) {
	cfg, err := load(data, reg, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	cfg.File = file
	return cfg, nil
}

var workerNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func load(data []byte, reg *Registry, env func(string) (string, bool)) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty config")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &KeyError{Line: root.Line, Msg: "the config must be a mapping with cluster and workers"}
	}
	if err := interpolate(root, env); err != nil {
		return nil, err
	}
	cfg := &Config{byName: map[string]int{}}
	var workersNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "cluster":
			if err := decodeStrict(v, &cfg.Cluster, "cluster", nil); err != nil {
				return nil, err
			}
		case "workers":
			workersNode = v
		case "management":
			if err := decodeStrict(v, &cfg.Management, "management", nil); err != nil {
				return nil, err
			}
			cfg.Management.present = true
		default:
			return nil, &KeyError{Key: k.Value, Line: k.Line, Msg: "unknown top-level key (want cluster, management and workers)"}
		}
	}
	cfg.Cluster.defaults()
	if err := cfg.Cluster.validate(); err != nil {
		return nil, err
	}
	cfg.Management.defaults()
	if err := cfg.Management.validate(); err != nil {
		return nil, err
	}
	if workersNode == nil || len(workersNode.Content) == 0 {
		if cfg.Management.Enabled() {
			// A process of channels and routers created at run time only.
			return cfg, nil
		}
		return nil, errors.New("key workers: at least one worker is required (or a management section, for a process of channels created at run time)")
	}
	if workersNode.Kind != yaml.SequenceNode {
		return nil, &KeyError{Key: "workers", Line: workersNode.Line, Msg: "must be a list of workers"}
	}
	for _, wn := range workersNode.Content {
		w, err := loadWorker(wn, reg)
		if err != nil {
			return nil, err
		}
		if prev, dup := cfg.byName[w.Name]; dup {
			return nil, fmt.Errorf("worker %s (line %d): name already used by the worker at line %d", w.Name, w.Line, cfg.Workers[prev].Line)
		}
		cfg.byName[w.Name] = len(cfg.Workers)
		cfg.Workers = append(cfg.Workers, w)
	}
	return cfg, nil
}

func loadWorker(n *yaml.Node, reg *Registry) (*WorkerSpec, error) {
	if n.Kind != yaml.MappingNode {
		return nil, &KeyError{Key: "workers", Line: n.Line, Msg: "each worker must be a mapping with name and kind"}
	}
	get := func(key string) *yaml.Node {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
		return nil
	}
	w := &WorkerSpec{Line: n.Line}
	nameNode := get("name")
	if nameNode == nil || nameNode.Value == "" {
		return nil, &KeyError{Key: "name", Line: n.Line, Msg: "every worker needs a name"}
	}
	w.Name = nameNode.Value
	if !workerNameRe.MatchString(w.Name) {
		return nil, fmt.Errorf("worker %s (line %d): key name: may only contain letters, digits, '.', '_' and '-'", w.Name, n.Line)
	}
	fail := func(err error) (*WorkerSpec, error) {
		return nil, fmt.Errorf("worker %s: %w", w.Name, err)
	}
	kindNode := get("kind")
	if kindNode == nil || kindNode.Value == "" {
		return fail(&KeyError{Key: "kind", Line: n.Line, Msg: "is required; known kinds: " + strings.Join(reg.KindNames(), ", ")})
	}
	kind, ok := reg.Kind(kindNode.Value)
	if !ok {
		return fail(&KeyError{Key: "kind", Line: kindNode.Line, Msg: fmt.Sprintf("unknown kind %q; known kinds: %s", kindNode.Value, strings.Join(reg.KindNames(), ", "))})
	}
	if kind.SelectBy != "" {
		sel := get(kind.SelectBy)
		if sel == nil || sel.Value == "" {
			return fail(&KeyError{Key: kind.SelectBy, Line: n.Line, Msg: fmt.Sprintf("is required with kind %s", kindNode.Value)})
		}
		chosen, ok := reg.Kind(sel.Value)
		if !ok || chosen.Role != kind.Role || chosen.SelectBy != "" {
			return fail(&KeyError{Key: kind.SelectBy, Line: sel.Line, Msg: fmt.Sprintf("unknown %s %q; known: %s", kind.SelectBy, sel.Value, strings.Join(reg.KindNamesOf(kind.Role), ", "))})
		}
		kind = chosen
	} else {
		// A specific kind may repeat the selecting key (router_class), but
		// it must name the same kind.
		for _, g := range reg.generic(kind.Role) {
			sel := get(g.SelectBy)
			if sel == nil || sel.Value == "" {
				continue
			}
			if named, ok := reg.Kind(sel.Value); !ok || named != kind {
				return fail(&KeyError{Key: g.SelectBy, Line: sel.Line, Msg: fmt.Sprintf("%q does not name kind %s (give one or the other, or kind: %s)", sel.Value, kind.Name, g.Name)})
			}
		}
	}
	w.Kind = kind
	skip := map[string]bool{"name": true, "kind": true, "middleware": true}
	if mwNode := get("middleware"); mwNode != nil && mwNode.Tag != "!!null" {
		if mwNode.Kind != yaml.SequenceNode {
			return fail(&KeyError{Key: "middleware", Line: mwNode.Line, Msg: "must be a list of {name: middleware_class} entries"})
		}
		names := map[string]bool{}
		for _, item := range mwNode.Content {
			if item.Kind != yaml.MappingNode || len(item.Content) != 2 {
				return fail(&KeyError{Key: "middleware", Line: item.Line, Msg: "each entry must be a single {name: middleware_class} pair"})
			}
			mwName := item.Content[0].Value
			className, prio, err := middlewareClass(item.Content[1], "middleware."+mwName)
			if err != nil {
				return fail(err)
			}
			if names[mwName] {
				return fail(&KeyError{Key: "middleware", Line: item.Line, Msg: fmt.Sprintf("middleware name %q used twice", mwName)})
			}
			if skip[mwName] {
				return fail(&KeyError{Key: "middleware", Line: item.Line, Msg: fmt.Sprintf("middleware name %q clashes with a worker key", mwName)})
			}
			names[mwName] = true
			mk, ok := reg.Middleware(className)
			if !ok {
				return fail(&KeyError{Key: "middleware." + mwName, Line: item.Content[1].Line, Msg: fmt.Sprintf("unknown middleware %q; known: %s", className, strings.Join(reg.MiddlewareNames(), ", "))})
			}
			mc := mk.NewConfig()
			if sec := get(mwName); sec != nil {
				if err := decodeStrict(sec, mc, mwName, nil); err != nil {
					return fail(err)
				}
			}
			if err := mc.Validate(); err != nil {
				return fail(fmt.Errorf("middleware %s: %w", mwName, err))
			}
			skip[mwName] = true
			w.Middleware = append(w.Middleware, &MiddlewareSpec{Name: mwName, Kind: mk, Config: mc, Priorities: prio})
		}
	}
	wc := kind.NewConfig()
	if err := decodeStrict(n, wc, "", skip); err != nil {
		return fail(err)
	}
	if err := wc.Validate(); err != nil {
		return fail(err)
	}
	w.Config = wc
	return w, nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
