package topology

import (
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// ManagementConfig is the config file's management section: the
// management HTTP API and dashboard, and the control topic that makes
// channels and routers created through it durable and shared by every
// process of the deployment.
type ManagementConfig struct {
	// Addr is where the API and dashboard listen (host:port; port 0 for
	// any free port). Empty serves nothing, but a process with a
	// management section still runs the channels and routers of the
	// control topic.
	Addr string `yaml:"addr"`
	// BearerToken, if set, is accepted as "Authorization: Bearer <token>".
	BearerToken string `yaml:"bearer_token"`
	// Username and Password, if set, are accepted as HTTP basic auth
	// (which is what a browser opening the dashboard uses).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// ControlTopic is the compacted topic holding the channels and routers
	// created at run time. Default vumi.control.
	ControlTopic string `yaml:"control_topic"`
	// Dashboard serves the dashboard at / (default true).
	Dashboard *bool `yaml:"dashboard"`
	// MaxBodyBytes bounds request bodies; default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// LogBuffer is how many recent log records the process keeps for the
	// logs endpoints; default 5000.
	LogBuffer int `yaml:"log_buffer"`
	// Lookback is how far back the dashboard reads heartbeats, statuses
	// and failures when it starts; default 15m.
	Lookback time.Duration `yaml:"lookback"`
	// SampleInterval is how often throughput and lag are sampled; default 2s.
	SampleInterval time.Duration `yaml:"sample_interval"`

	present bool
}

// Enabled reports whether the config has a management section.
func (m *ManagementConfig) Enabled() bool { return m.present }

// DashboardOn reports whether the dashboard is served.
func (m *ManagementConfig) DashboardOn() bool { return m.Dashboard == nil || *m.Dashboard }

func (m *ManagementConfig) defaults() {
	if m.ControlTopic == "" {
		m.ControlTopic = "vumi.control"
	}
	if m.MaxBodyBytes == 0 {
		m.MaxBodyBytes = 1 << 20
	}
	if m.LogBuffer == 0 {
		m.LogBuffer = 5000
	}
	if m.Lookback == 0 {
		m.Lookback = 15 * time.Minute
	}
	if m.SampleInterval == 0 {
		m.SampleInterval = 2 * time.Second
	}
}

func (m *ManagementConfig) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("management.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if (m.Username == "") != (m.Password == "") {
		bad("username", "username and password must be given together")
	}
	if m.Addr != "" && m.BearerToken == "" && m.Username == "" {
		bad("addr", "the management API requires auth: set bearer_token, or username and password (or both)")
	}
	if !topicNameRe.MatchString(m.ControlTopic) {
		bad("control_topic", "%q may only contain letters, digits, '.', '_' and '-'", m.ControlTopic)
	}
	if m.MaxBodyBytes < 1 {
		bad("max_body_bytes", "must be at least 1, got %d", m.MaxBodyBytes)
	}
	if m.LogBuffer < 1 {
		bad("log_buffer", "must be at least 1, got %d", m.LogBuffer)
	}
	if m.Lookback < 0 {
		bad("lookback", "must not be negative")
	}
	if m.SampleInterval < 100*time.Millisecond {
		bad("sample_interval", "must be at least 100ms, got %s", m.SampleInterval)
	}
	return errors.Join(errs...)
}

// ControlTopic is the full name of the control topic.
func (c *Config) ControlTopic() string { return c.Cluster.TopicPrefix + c.Management.ControlTopic }

// LoadWorker validates one worker given as a kind and a JSON (or YAML)
// object of its keys, exactly as a worker of a config file is validated:
// the same kind registry, strict keys, the kind's Validate, middleware.
// It is how workers created at run time (the management API) are checked.
func LoadWorker(reg *Registry, name, kind string, config []byte) (*WorkerSpec, error) {
	var doc yaml.Node
	if len(config) == 0 {
		config = []byte("{}")
	}
	if err := yaml.Unmarshal(config, &doc); err != nil {
		return nil, fmt.Errorf("worker %s: config: %w", name, err)
	}
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1}
	if len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1}
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("worker %s: config must be an object of the worker's keys", name)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k := root.Content[i].Value; k {
		case "name", "kind":
			return nil, fmt.Errorf("worker %s: config: key %s: give it outside config", name, k)
		}
	}
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Line: 1} }
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1,
		Content: append([]*yaml.Node{str("name"), str(name), str("kind"), str(kind)}, root.Content...)}
	return loadWorker(n, reg)
}

// With returns a copy of c with extra workers added (workers created at
// run time), failing on a name already used.
func (c *Config) With(extra ...*WorkerSpec) (*Config, error) {
	out := *c
	out.Workers = append([]*WorkerSpec(nil), c.Workers...)
	out.byName = make(map[string]int, len(c.Workers)+len(extra))
	for i, w := range out.Workers {
		out.byName[w.Name] = i
	}
	for _, w := range extra {
		if _, dup := out.byName[w.Name]; dup {
			return nil, fmt.Errorf("worker %s: name already used by another worker", w.Name)
		}
		out.byName[w.Name] = len(out.Workers)
		out.Workers = append(out.Workers, w)
	}
	return &out, nil
}

// Only returns a copy of c with just the named workers (for preparing the
// topics of one worker started at run time).
func (c *Config) Only(specs ...*WorkerSpec) *Config {
	out := *c
	out.Workers = nil
	out.byName = map[string]int{}
	for _, w := range specs {
		out.byName[w.Name] = len(out.Workers)
		out.Workers = append(out.Workers, w)
	}
	return &out
}
