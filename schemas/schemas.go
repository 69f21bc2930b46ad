// Package schemas holds the Avro schemas of every Vumi message kind, their Go
// types, lossless conversion to and from Vumi's JSON message format, and
// typed codecs in the Confluent wire format shared by franz-go producers and
// consumers and goka processors.
package schemas

import (
	"embed"
	"fmt"
	"sort"

	"github.com/hamba/avro/v2"
)

//go:embed avsc/*.avsc
var avscFS embed.FS

// Kind describes one message kind: its Avro schema and where it comes from.
type Kind struct {
	// Name is the short name, e.g. "user_message"; the schema file is
	// avsc/<Name>.avsc.
	Name string
	// Text is the schema as written in its .avsc file.
	Text string
	// Schema is the parsed schema.
	Schema avro.Schema
}

func mustKind(name string) *Kind {
	b, err := avscFS.ReadFile("avsc/" + name + ".avsc")
	if err != nil {
		panic(fmt.Sprintf("schemas: embedded schema %s missing: %v", name, err))
	}
	s, err := avro.ParseBytesWithCache(b, "", &avro.SchemaCache{})
	if err != nil {
		panic(fmt.Sprintf("schemas: embedded schema %s invalid: %v", name, err))
	}
	return &Kind{Name: name, Text: string(b), Schema: s}
}

// The message kinds.
var (
	UserMessageKind     = mustKind("user_message")
	EventKind           = mustKind("event")
	StatusKind          = mustKind("status")
	FailureKind         = mustKind("failure")
	MetricDatapointKind = mustKind("metric_datapoint")
	MetricAggregateKind = mustKind("metric_aggregate")
	HeartbeatKind       = mustKind("heartbeat")
)

var (
	kinds          = map[string]*Kind{}
	kindByAvroName = map[string]*Kind{} // by the schema's full name
)

func init() {
	for _, k := range []*Kind{UserMessageKind, EventKind, StatusKind, FailureKind, MetricDatapointKind, MetricAggregateKind, HeartbeatKind} {
		kinds[k.Name] = k
		if n, ok := k.Schema.(avro.NamedSchema); ok {
			kindByAvroName[n.FullName()] = k
		}
	}
}

// Kinds returns every message kind, sorted by name.
func Kinds() []*Kind {
	out := make([]*Kind, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// KindByName returns the kind called name.
func KindByName(name string) (*Kind, bool) {
	k, ok := kinds[name]
	return k, ok
}

// Subject returns the schema-registry subject of a topic's values under the
// TopicNameStrategy: "<topic>-value".
func Subject(topic string) string { return topic + "-value" }
