package schemas

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/riferrei/srclient"
)

// RegistryClient is a Registry backed by any Confluent-compatible schema
// registry over HTTP (the embedded one or a real cluster's), through
// github.com/riferrei/srclient. Registrations and schemas are cached, so
// after warm-up no call reaches the network.
type RegistryClient struct {
	client *srclient.SchemaRegistryClient

	mu         sync.RWMutex
	registered map[[2]string]int // (subject, schema) -> id
	byID       map[int]string
}

// RegistryClientOptions configure a RegistryClient.
type RegistryClientOptions struct {
	// Username and Password enable HTTP Basic auth when Username is set.
	Username, Password string
	// Timeout bounds each HTTP request; default 10s.
	Timeout time.Duration
	// HTTPClient replaces the default client (e.g. for TLS settings).
	HTTPClient *http.Client
}

// NewRegistryClient returns a client for the registry at url.
func NewRegistryClient(url string, opts RegistryClientOptions) *RegistryClient {
	hc := opts.HTTPClient
	if hc == nil {
		timeout := opts.Timeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		hc = &http.Client{Timeout: timeout}
	}
	c := srclient.NewSchemaRegistryClient(url, srclient.WithClient(hc))
	if opts.Username != "" {
		c.SetCredentials(opts.Username, opts.Password)
	}
	return &RegistryClient{client: c, registered: map[[2]string]int{}, byID: map[int]string{}}
}

// Register implements Registry.
func (r *RegistryClient) Register(ctx context.Context, subject, schema string) (int, error) {
	key := [2]string{subject, schema}
	r.mu.RLock()
	id, ok := r.registered[key]
	r.mu.RUnlock()
	if ok {
		return id, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s, err := r.client.CreateSchema(subject, schema, srclient.Avro)
	if err != nil {
		return 0, fmt.Errorf("schema registry: register subject %s: %w", subject, err)
	}
	r.mu.Lock()
	r.registered[key] = s.ID()
	r.byID[s.ID()] = s.Schema()
	r.mu.Unlock()
	return s.ID(), nil
}

// SchemaByID implements Registry.
func (r *RegistryClient) SchemaByID(ctx context.Context, id int) (string, error) {
	r.mu.RLock()
	text, ok := r.byID[id]
	r.mu.RUnlock()
	if ok {
		return text, nil
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s, err := r.client.GetSchema(id)
	if err != nil {
		return "", fmt.Errorf("schema registry: schema id %d: %w", id, err)
	}
	r.mu.Lock()
	r.byID[id] = s.Schema()
	r.mu.Unlock()
	return s.Schema(), nil
}
