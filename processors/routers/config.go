package routers

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/processors/dispatcher"
)

// Seconds is a duration given in config as Vumi does, a number of
// seconds (3600, or the string "3600"), or as a Go duration ("1h").
type Seconds time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Seconds) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("must be a number of seconds or a duration such as 10m")
	}
	v := strings.TrimSpace(n.Value)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s = Seconds(time.Duration(f * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("must be a number of seconds or a duration such as 10m, got %q", v)
	}
	*s = Seconds(d)
	return nil
}

// D returns s as a time.Duration.
func (s Seconds) D() time.Duration { return time.Duration(s) }

// NameList is one connector name or a list of them: Vumi's docs write
// route_mappings values both ways ("sms: app" and "sms: [app1, app2]").
type NameList []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *NameList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = NameList{n.Value}
		return nil
	case yaml.SequenceNode:
		var out []string
		if err := n.Decode(&out); err != nil {
			return errors.New("must be a name or a list of names")
		}
		*l = out
		return nil
	}
	return errors.New("must be a name or a list of names")
}

// Defaults of the routing memory.
const (
	// DefaultExpireRoutingMemory is Vumi's DEFAULT_ROUTING_TIMEOUT.
	DefaultExpireRoutingMemory = 7 * 24 * time.Hour
	// DefaultEventWaitTimeout is how long an event waits for the memory of
	// its outbound message before it goes to failures.
	DefaultEventWaitTimeout = 10 * time.Minute
	// DefaultSweepInterval is how often expired table entries are removed.
	DefaultSweepInterval = time.Minute
)

// MemoryConfig configures the routing memory: which exposed name sent each
// outbound message, so that its events find their way home.
type MemoryConfig struct {
	// ExpireRoutingMemory is how long an outbound message id is
	// remembered (Vumi's expire_routing_memory, seconds). Default 7 days.
	ExpireRoutingMemory Seconds `yaml:"expire_routing_memory"`
	// EventWaitTimeout is how long an event whose outbound message id is
	// not remembered (yet) waits in the table for it before it goes to
	// failures. Default 10 minutes.
	EventWaitTimeout Seconds `yaml:"event_wait_timeout"`
	// SweepInterval is how often the table is swept of expired entries.
	// Default 60 seconds.
	SweepInterval Seconds `yaml:"sweep_interval"`
}

func (c *MemoryConfig) validate() error {
	for _, d := range []struct {
		key string
		v   *Seconds
		def time.Duration
	}{
		{"expire_routing_memory", &c.ExpireRoutingMemory, DefaultExpireRoutingMemory},
		{"event_wait_timeout", &c.EventWaitTimeout, DefaultEventWaitTimeout},
		{"sweep_interval", &c.SweepInterval, DefaultSweepInterval},
	} {
		if *d.v < 0 {
			return fmt.Errorf("key %s: must be positive, got %v", d.key, d.v.D())
		}
		if *d.v == 0 {
			*d.v = Seconds(d.def)
		}
	}
	return nil
}

func checkExposed(c *dispatcher.Config, key, name string) error {
	if !c.HasExposed(name) {
		return fmt.Errorf("key %s: %q is not one of exposed_names %v", key, name, c.ExposedNames)
	}
	return nil
}

func checkTransport(c *dispatcher.Config, key, name string) error {
	if !c.HasTransport(name) {
		return fmt.Errorf("key %s: %q is not one of transport_names %v", key, name, c.TransportNames)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
