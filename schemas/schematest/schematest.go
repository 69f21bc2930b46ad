// Package schematest provides an in-memory schema registry for tests and
// offline tools, in the spirit of net/http/httptest.
package schematest

import (
	"context"
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"
)

// Registry is an in-memory schemas.Registry: identical schemas (by Avro
// canonical form) get the same id, ids start at 1. It counts calls so tests
// can assert the hot path makes none.
type Registry struct {
	mu       sync.Mutex
	ids      map[[32]byte]int
	texts    map[int]string
	subjects map[string][]int
	Calls    int
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{ids: map[[32]byte]int{}, texts: map[int]string{}, subjects: map[string][]int{}}
}

// Register implements schemas.Registry.
func (r *Registry) Register(_ context.Context, subject, schema string) (int, error) {
	s, err := avro.ParseWithCache(schema, "", &avro.SchemaCache{})
	if err != nil {
		return 0, fmt.Errorf("invalid schema: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Calls++
	fp := s.Fingerprint()
	id, ok := r.ids[fp]
	if !ok {
		id = len(r.ids) + 1
		r.ids[fp] = id
		r.texts[id] = schema
	}
	for _, v := range r.subjects[subject] {
		if v == id {
			return id, nil
		}
	}
	r.subjects[subject] = append(r.subjects[subject], id)
	return id, nil
}

// SchemaByID implements schemas.Registry.
func (r *Registry) SchemaByID(_ context.Context, id int) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Calls++
	text, ok := r.texts[id]
	if !ok {
		return "", fmt.Errorf("schema id %d not found", id)
	}
	return text, nil
}

// Subjects returns the ids registered under a subject, oldest first.
func (r *Registry) Subjects(subject string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.subjects[subject]...)
}
