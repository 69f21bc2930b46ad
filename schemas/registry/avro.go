package registry

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// schemaTypeAvro is the only schema type this registry supports.
const schemaTypeAvro = "AVRO"

// parsedSchema is a validated Avro schema.
type parsedSchema struct {
	// text is the schema as it was submitted.
	text string
	// schema is the parsed form, used for compatibility checks.
	schema avro.Schema
	// canonical identifies the schema: the fully normalised JSON form,
	// which keeps everything that matters for compatibility (defaults,
	// aliases, logical types, custom properties) but not formatting.
	// Two schemas are "the same schema" when their canonical forms are
	// equal.
	canonical string
}

// parseAvro parses and validates an Avro schema. Every schema is parsed
// with a fresh name cache, so a schema can only use the named types it
// defines itself.
func parseAvro(text string) (ps *parsedSchema, err error) {
	defer func() {
		// The parser is third-party code fed with untrusted input; a
		// bug there must not take the server down.
		if r := recover(); r != nil {
			ps, err = nil, fmt.Errorf("avro parser failed: %v", r)
		}
	}()
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("empty schema")
	}
	if !json.Valid([]byte(text)) {
		return nil, fmt.Errorf("schema is not valid JSON")
	}
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, err
	}
	canonical, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("normalising schema: %w", err)
	}
	return &parsedSchema{text: text, schema: s, canonical: string(canonical)}, nil
}

// Level is a compatibility level, as used by Confluent's schema registry.
type Level string

// The compatibility levels.
const (
	LevelNone               Level = "NONE"
	LevelBackward           Level = "BACKWARD"
	LevelBackwardTransitive Level = "BACKWARD_TRANSITIVE"
	LevelForward            Level = "FORWARD"
	LevelForwardTransitive  Level = "FORWARD_TRANSITIVE"
	LevelFull               Level = "FULL"
	LevelFullTransitive     Level = "FULL_TRANSITIVE"
)

// parseLevel parses a compatibility level case-insensitively.
func parseLevel(s string) (Level, bool) {
	l := Level(strings.ToUpper(strings.TrimSpace(s)))
	switch l {
	case LevelNone, LevelBackward, LevelBackwardTransitive, LevelForward,
		LevelForwardTransitive, LevelFull, LevelFullTransitive:
		return l, true
	}
	return "", false
}

func (l Level) backward() bool {
	return l == LevelBackward || l == LevelBackwardTransitive || l == LevelFull || l == LevelFullTransitive
}

func (l Level) forward() bool {
	return l == LevelForward || l == LevelForwardTransitive || l == LevelFull || l == LevelFullTransitive
}

func (l Level) transitive() bool {
	return l == LevelBackwardTransitive || l == LevelForwardTransitive || l == LevelFullTransitive
}

// previousSchema is an already registered version a new schema is checked
// against.
type previousSchema struct {
	version int
	id      int
	schema  avro.Schema
}

// checkCompatibility checks candidate against the given previous versions
// (oldest first) under level, and returns one message per incompatibility;
// no messages means compatible. Non-transitive levels only look at the
// newest of the previous versions.
func checkCompatibility(level Level, candidate avro.Schema, previous []previousSchema) []string {
	if level == LevelNone || len(previous) == 0 {
		return nil
	}
	if !level.transitive() {
		previous = previous[len(previous)-1:]
	}
	var msgs []string
	// Newest first, which is the order a human reads the report in.
	for i := len(previous) - 1; i >= 0; i-- {
		p := previous[i]
		if level.backward() {
			if err := compatible(candidate, p.schema); err != nil {
				msgs = append(msgs, fmt.Sprintf(
					"new schema cannot read data written with version %d (schema id %d), as %s requires: %v",
					p.version, p.id, level, err))
			}
		}
		if level.forward() {
			if err := compatible(p.schema, candidate); err != nil {
				msgs = append(msgs, fmt.Sprintf(
					"version %d (schema id %d) cannot read data written with the new schema, as %s requires: %v",
					p.version, p.id, level, err))
			}
		}
	}
	return msgs
}

// compatible reports whether data written with writer can be read with
// reader. A fresh checker is used for every pair: hamba's checker caches
// results by Parsing Canonical Form fingerprint, which ignores defaults, so a
// shared cache would confuse schemas that differ only in their defaults.
func compatible(reader, writer avro.Schema) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compatibility check failed: %v", r)
		}
	}()
	return avro.NewSchemaCompatibility().Compatible(reader, writer)
}
