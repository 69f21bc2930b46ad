package schemas

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
	// Schema lookups by id use their own request, which honours the
	// caller's context and keeps the HTTP status (srclient's GetSchema
	// does neither): an outage must be told from "no such schema".
	url        string
	hc         *http.Client
	user, pass string

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
	return &RegistryClient{client: c, url: strings.TrimRight(url, "/"), hc: hc, user: opts.Username, pass: opts.Password,
		registered: map[[2]string]int{}, byID: map[int]string{}}
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

// SchemaByID implements Registry. An error wraps ErrRegistryUnavailable
// when the registry could not answer (unreachable, timed out, 5xx, 408,
// 429, or 401/403: credentials are the deployment's problem, not the
// record's); 404 and other answers are definitive.
func (r *RegistryClient) SchemaByID(ctx context.Context, id int) (string, error) {
	r.mu.RLock()
	text, ok := r.byID[id]
	r.mu.RUnlock()
	if ok {
		return text, nil
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("schema registry: schema id %d: %w: not asked (%w)", id, ErrRegistryUnavailable, err)
	}
	text, err := r.fetchSchema(ctx, id)
	if err != nil {
		return "", fmt.Errorf("schema registry: schema id %d: %w", id, err)
	}
	r.mu.Lock()
	r.byID[id] = text
	r.mu.Unlock()
	return text, nil
}

// fetchSchema is GET /schemas/ids/{id}.
func (r *RegistryClient) fetchSchema(ctx context.Context, id int) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/schemas/ids/"+strconv.Itoa(id), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json, application/json")
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrRegistryUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("%w: reading the answer: %w", ErrRegistryUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code    int    `json:"error_code"`
			Message string `json:"message"`
		}
		msg := resp.Status
		if json.Unmarshal(body, &e) == nil && e.Message != "" {
			msg = fmt.Sprintf("%s: %s (error code %d)", resp.Status, e.Message, e.Code)
		}
		switch c := resp.StatusCode; {
		case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests,
			c == http.StatusUnauthorized, c == http.StatusForbidden:
			return "", fmt.Errorf("%w: %s", ErrRegistryUnavailable, msg)
		default:
			return "", fmt.Errorf("registry answered %s", msg)
		}
	}
	var s struct {
		Schema     string `json:"schema"`
		SchemaType string `json:"schemaType"`
	}
	if err := json.Unmarshal(body, &s); err != nil || s.Schema == "" {
		// A proxy's error page with a 200, or a registry mid-restart:
		// not an answer about the schema.
		return "", fmt.Errorf("%w: the answer is not a schema (%d bytes)", ErrRegistryUnavailable, len(body))
	}
	if s.SchemaType != "" && s.SchemaType != "AVRO" {
		return "", fmt.Errorf("schema id %d is a %s schema, not Avro", id, s.SchemaType)
	}
	return s.Schema, nil
}
