package schemas

import (
	"testing"

	"github.com/hamba/avro/v2"
)

func mustParseForTest(t *testing.T, text string) avro.Schema {
	t.Helper()
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatalf("parse schema: %v", err)
	}
	return s
}
