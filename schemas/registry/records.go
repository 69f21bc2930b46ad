package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The record layout of the _schemas topic follows Confluent's schema
// registry, so the topic can be inspected with the usual tools:
//
//	key   {"keytype":"SCHEMA","subject":S,"version":V,"magic":1}
//	value {"subject":S,"version":V,"id":N,"schema":"...","deleted":false}
//
//	key   {"keytype":"CONFIG","subject":S or null,"magic":0}
//	value {"compatibilityLevel":"BACKWARD"}
//
//	key   {"keytype":"DELETE_SUBJECT","subject":S,"magic":0}   (read only)
//	value {"subject":S,"version":V}
//
//	key   {"keytype":"NOOP","magic":0}                          value null
//
// A nil value is a tombstone: the permanent deletion of that key.
//
// Keys are compared byte for byte by log compaction, so they are always
// encoded the same way (fixed field order, no HTML escaping), matching
// Confluent's encoding.

const (
	keyTypeSchema        = "SCHEMA"
	keyTypeConfig        = "CONFIG"
	keyTypeDeleteSubject = "DELETE_SUBJECT"
	keyTypeNoop          = "NOOP"
)

type recordKind int

const (
	kindUnknown recordKind = iota
	kindSchema
	kindConfig
	kindDeleteSubject
	kindNoop
)

type schemaKeyJSON struct {
	KeyType string `json:"keytype"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
	Magic   int    `json:"magic"`
}

type configKeyJSON struct {
	KeyType string  `json:"keytype"`
	Subject *string `json:"subject"`
	Magic   int     `json:"magic"`
}

type noopKeyJSON struct {
	KeyType string `json:"keytype"`
	Magic   int    `json:"magic"`
}

// anyKeyJSON decodes every key type.
type anyKeyJSON struct {
	KeyType string  `json:"keytype"`
	Subject *string `json:"subject"`
	Version *int64  `json:"version"`
}

type schemaValueJSON struct {
	Subject    string            `json:"subject"`
	Version    int64             `json:"version"`
	ID         int64             `json:"id"`
	SchemaType string            `json:"schemaType,omitempty"`
	References []json.RawMessage `json:"references,omitempty"`
	Schema     string            `json:"schema"`
	Deleted    bool              `json:"deleted"`
}

type configValueJSON struct {
	CompatibilityLevel *string `json:"compatibilityLevel"`
}

type deleteSubjectValueJSON struct {
	Subject string `json:"subject"`
	Version int64  `json:"version"`
}

// logRecord is a decoded record of the topic.
type logRecord struct {
	kind recordKind
	// subject is the subject of the key; for CONFIG keys global is set
	// instead when the key's subject is null.
	subject string
	global  bool
	// version is the version of a SCHEMA key.
	version int64
	// tombstone is set when the record has a nil value.
	tombstone bool

	schema        *schemaValueJSON        // kindSchema, unless tombstone
	config        *configValueJSON        // kindConfig, unless tombstone
	deleteSubject *deleteSubjectValueJSON // kindDeleteSubject, unless tombstone
}

// decodeRecord decodes a record of the topic. Unknown key types decode to
// kindUnknown without error so that records written by newer or richer
// registries are skipped rather than treated as corruption.
func decodeRecord(key, value []byte) (logRecord, error) {
	var k anyKeyJSON
	if err := json.Unmarshal(key, &k); err != nil {
		return logRecord{}, fmt.Errorf("decoding key %q: %w", key, err)
	}
	rec := logRecord{tombstone: value == nil}
	switch k.KeyType {
	case keyTypeSchema:
		rec.kind = kindSchema
		if k.Subject == nil || k.Version == nil {
			return logRecord{}, fmt.Errorf("SCHEMA key %q lacks subject or version", key)
		}
		rec.subject, rec.version = *k.Subject, *k.Version
		if !rec.tombstone {
			rec.schema = new(schemaValueJSON)
			if err := json.Unmarshal(value, rec.schema); err != nil {
				return logRecord{}, fmt.Errorf("decoding SCHEMA value for key %q: %w", key, err)
			}
		}
	case keyTypeConfig:
		rec.kind = kindConfig
		if k.Subject == nil {
			rec.global = true
		} else {
			rec.subject = *k.Subject
		}
		if !rec.tombstone {
			rec.config = new(configValueJSON)
			if err := json.Unmarshal(value, rec.config); err != nil {
				return logRecord{}, fmt.Errorf("decoding CONFIG value for key %q: %w", key, err)
			}
		}
	case keyTypeDeleteSubject:
		rec.kind = kindDeleteSubject
		if k.Subject == nil {
			return logRecord{}, fmt.Errorf("DELETE_SUBJECT key %q lacks subject", key)
		}
		rec.subject = *k.Subject
		if !rec.tombstone {
			rec.deleteSubject = new(deleteSubjectValueJSON)
			if err := json.Unmarshal(value, rec.deleteSubject); err != nil {
				return logRecord{}, fmt.Errorf("decoding DELETE_SUBJECT value for key %q: %w", key, err)
			}
		}
	case keyTypeNoop:
		rec.kind = kindNoop
	default:
		rec.kind = kindUnknown
	}
	return rec, nil
}

// marshalCompact encodes v as JSON without HTML escaping and without the
// trailing newline json.Encoder adds.
func marshalCompact(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only plain structs of strings and numbers are encoded here.
		panic(fmt.Sprintf("registry: encoding %T: %v", v, err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func schemaKeyBytes(subject string, version int) []byte {
	return marshalCompact(schemaKeyJSON{KeyType: keyTypeSchema, Subject: subject, Version: version, Magic: 1})
}

func schemaValueBytes(subject string, version, id int, schema string, deleted bool) []byte {
	return marshalCompact(schemaValueJSON{
		Subject: subject, Version: int64(version), ID: int64(id), Schema: schema, Deleted: deleted,
	})
}

// configKeyBytes encodes the CONFIG key of subject, or the global CONFIG
// key when global is set.
func configKeyBytes(subject string, global bool) []byte {
	k := configKeyJSON{KeyType: keyTypeConfig}
	if !global {
		k.Subject = &subject
	}
	return marshalCompact(k)
}

func configValueBytes(level Level) []byte {
	l := string(level)
	return marshalCompact(configValueJSON{CompatibilityLevel: &l})
}

func noopKeyBytes() []byte {
	return marshalCompact(noopKeyJSON{KeyType: keyTypeNoop})
}
