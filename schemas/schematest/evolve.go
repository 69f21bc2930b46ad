package schematest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Evolved returns the record schema text with extra optional fields added
// at the end (x_test_note0, x_test_note1, ...: nullable strings with a
// null default): a newer version of the schema that readers of the old one
// resolve, and whose id they have never seen.
func Evolved(recordSchema string, extra int) (string, error) {
	var s map[string]any
	if err := json.Unmarshal([]byte(recordSchema), &s); err != nil {
		return "", fmt.Errorf("schema: %w", err)
	}
	fields, ok := s["fields"].([]any)
	if !ok {
		return "", fmt.Errorf("schema has no fields")
	}
	for i := range extra {
		fields = append(fields, map[string]any{"name": fmt.Sprintf("x_test_note%d", i), "type": []any{"null", "string"}, "default": nil})
	}
	s["fields"] = fields
	b, err := json.Marshal(s)
	return string(b), err
}

// AsEvolved turns a record in the Confluent wire format, written with the
// schema Evolved started from, into the same record written with the
// evolved schema registered as id: the id in the header, and each extra
// field null (union branch 0, one zero byte).
func AsEvolved(record []byte, id, extra int) []byte {
	v := append([]byte(nil), record...)
	binary.BigEndian.PutUint32(v[1:5], uint32(id))
	return append(v, make([]byte, extra)...)
}
