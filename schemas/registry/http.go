package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// contentType is the media type of every response, as in Confluent's
// registry.
const contentType = "application/vnd.schemaregistry.v1+json"

// acceptedRequestTypes are the request media types accepted for bodies.
var acceptedRequestTypes = map[string]bool{
	"application/vnd.schemaregistry.v1+json": true,
	"application/vnd.schemaregistry+json":    true,
	"application/json":                       true,
	"application/octet-stream":               true,
}

// routes builds the REST API.
func (r *Registry) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(*http.Request) (any, error)) {
		mux.Handle(pattern, r.api(h))
	}
	handle("GET /{$}", func(*http.Request) (any, error) { return struct{}{}, nil })
	handle("GET /healthz", r.getHealth)

	handle("GET /schemas/types", func(*http.Request) (any, error) { return []string{schemaTypeAvro}, nil })
	handle("GET /schemas/ids/{id}", r.getSchemaByID)
	handle("GET /schemas/ids/{id}/schema", r.getRawSchemaByID)
	handle("GET /schemas/ids/{id}/versions", r.getSchemaVersionsByID)

	handle("GET /subjects", r.listSubjects)
	handle("POST /subjects/{subject}", r.lookupSchema)
	handle("DELETE /subjects/{subject}", r.deleteSubjectHandler)
	handle("GET /subjects/{subject}/versions", r.listVersions)
	handle("POST /subjects/{subject}/versions", r.registerSchema)
	handle("GET /subjects/{subject}/versions/{version}", r.getVersionHandler)
	handle("GET /subjects/{subject}/versions/{version}/schema", r.getRawVersion)
	handle("GET /subjects/{subject}/versions/{version}/referencedby", r.getReferencedBy)
	handle("DELETE /subjects/{subject}/versions/{version}", r.deleteVersionHandler)

	handle("POST /compatibility/subjects/{subject}/versions/{version}", r.checkCompatibilityHandler)
	handle("POST /compatibility/subjects/{subject}/versions", r.checkCompatibilityHandler)

	handle("GET /config", r.getGlobalConfig)
	handle("PUT /config", func(req *http.Request) (any, error) { return r.putConfig(req, "", true) })
	handle("DELETE /config", func(req *http.Request) (any, error) { return r.deleteConfig(req, "", true) })
	handle("GET /config/{subject}", r.getSubjectConfig)
	handle("PUT /config/{subject}", func(req *http.Request) (any, error) {
		return r.putConfig(req, req.PathValue("subject"), false)
	})
	handle("DELETE /config/{subject}", func(req *http.Request) (any, error) {
		return r.deleteConfig(req, req.PathValue("subject"), false)
	})

	return r.middleware(jsonFallbacks(mux))
}

// --- plumbing ---

// rawJSON is a response body written as is.
type rawJSON string

// api adapts a handler returning a value or an error.
func (r *Registry) api(h func(*http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		v, err := h(req)
		if err != nil {
			r.writeError(w, req, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var body []byte
	if raw, ok := v.(rawJSON); ok {
		body = []byte(raw)
	} else {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			status = http.StatusInternalServerError
			buf.Reset()
			fmt.Fprintf(&buf, `{"error_code":%d,"message":"encoding the response failed"}`, codeStoreError)
		}
		body = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError writes err as a Confluent error body. Errors that are not API
// errors are internal: they are logged and reported as 50001 without
// details.
func (r *Registry) writeError(w http.ResponseWriter, req *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{Code: codeStoreError, Message: "Internal error in the schema registry", cause: err}
	}
	if ae.status() >= 500 {
		r.logger.Error("schema registry request failed", "method", req.Method, "path", req.URL.Path,
			"error_code", ae.Code, "error", ae)
	}
	writeJSON(w, ae.status(), ae)
}

// jsonFallbacks answers requests the mux has no route for (404) or no
// method for (405) with Confluent-style JSON bodies instead of the mux's
// plain-text ones. Paths that are not clean ("//", "." or ".." segments)
// are not found rather than redirected: a redirect would turn, say, a
// registration under an empty subject into a lookup in another subject.
func jsonFallbacks(mux *http.ServeMux) http.Handler {
	notFound := &apiError{Code: codeNotFound, Message: "HTTP 404 Not Found"}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if p := req.URL.EscapedPath(); p != "" && p != "/" {
			if c := path.Clean(p); c != p && c+"/" != p {
				writeJSON(w, http.StatusNotFound, notFound)
				return
			}
		}
		h, pattern := mux.Handler(req)
		if pattern != "" {
			mux.ServeHTTP(w, req)
			return
		}
		probe := &probeWriter{header: http.Header{}}
		h.ServeHTTP(probe, req)
		switch probe.status {
		case http.StatusNotFound:
			writeJSON(w, http.StatusNotFound, notFound)
		case http.StatusMethodNotAllowed:
			if allow := probe.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			writeJSON(w, http.StatusMethodNotAllowed, &apiError{Code: http.StatusMethodNotAllowed, Message: "HTTP 405 Method Not Allowed"})
		default:
			h.ServeHTTP(w, req)
		}
	})
}

// probeWriter records the status a handler writes, discarding the body.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }

func (p *probeWriter) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

func (p *probeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// statusWriter remembers the status of a response for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// middleware adds panic recovery, access logging, authentication and
// request body checks around h.
func (r *Registry) middleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				r.logger.Error("panic serving schema registry request", "method", req.Method,
					"path", req.URL.Path, "panic", p)
				if sw.status == 0 {
					writeJSON(sw, http.StatusInternalServerError,
						&apiError{Code: codeStoreError, Message: "Internal error in the schema registry"})
				}
			}
			r.logger.LogAttrs(req.Context(), slog.LevelDebug, "schema registry request",
				slog.String("method", req.Method), slog.String("path", req.URL.Path),
				slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
		}()

		if r.cfg.Username != "" && req.URL.Path != "/healthz" && !r.authorized(req) {
			sw.Header().Set("WWW-Authenticate", `Basic realm="SchemaRegistry", charset="UTF-8"`)
			writeJSON(sw, http.StatusUnauthorized, &apiError{Code: codeUnauthorized, Message: "Unauthorized"})
			return
		}
		if req.Method == http.MethodPost || req.Method == http.MethodPut {
			if ct := req.Header.Get("Content-Type"); ct != "" {
				mt, _, err := mime.ParseMediaType(ct)
				if err != nil || !acceptedRequestTypes[mt] {
					writeJSON(sw, http.StatusUnsupportedMediaType,
						&apiError{Code: http.StatusUnsupportedMediaType, Message: "HTTP 415 Unsupported Media Type"})
					return
				}
			}
		}
		req.Body = http.MaxBytesReader(sw, req.Body, r.cfg.MaxRequestBytes)
		h.ServeHTTP(sw, req)
	})
}

// authorized checks HTTP Basic credentials in constant time.
func (r *Registry) authorized(req *http.Request) bool {
	user, pass, ok := req.BasicAuth()
	uh := sha256.Sum256([]byte(user))
	ph := sha256.Sum256([]byte(pass))
	match := subtle.ConstantTimeCompare(uh[:], r.userHash[:]) & subtle.ConstantTimeCompare(ph[:], r.passHash[:])
	return ok && match == 1
}

// writeContext bounds a write request by the configured write timeout.
func (r *Registry) writeContext(req *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(req.Context(), r.cfg.WriteTimeout)
}

// decodeBody decodes the JSON request body into v, reporting malformed
// bodies as Jackson does in Confluent's registry: 400 for invalid JSON, 422
// for JSON of the wrong shape.
func decodeBody(req *http.Request, v any) error {
	dec := json.NewDecoder(req.Body)
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return newAPIError(http.StatusBadRequest, "Unexpected data after the JSON request body")
		}
		return nil
	}
	var (
		maxErr  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return newAPIError(http.StatusRequestEntityTooLarge, "Request body is larger than %d bytes", maxErr.Limit)
	case errors.Is(err, io.EOF):
		return newAPIError(http.StatusUnprocessableEntity, "Request body is required")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "the request body"
		}
		return newAPIError(http.StatusUnprocessableEntity, "Invalid JSON request: %s cannot be a JSON %s", field, typeErr.Value)
	default:
		return newAPIError(http.StatusBadRequest, "Malformed JSON request body: %v", err)
	}
}

func boolQuery(req *http.Request, name string) bool {
	b, err := strconv.ParseBool(req.URL.Query().Get(name))
	return err == nil && b
}

// parseVersion parses a version path segment: a number in [1, 2^31-1],
// "latest", or -1 which means latest.
func parseVersion(s string) (int, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "latest") {
		return latestVersion, nil
	}
	n, err := strconv.Atoi(t)
	if err != nil || n == 0 || n < -1 || n > math.MaxInt32 {
		return 0, errInvalidVersion(s)
	}
	return n, nil
}

// parseID parses a schema id path segment. Ids that cannot exist are
// simply not found.
func parseID(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > math.MaxInt32 {
		return 0, errSchemaIDNotFound(s)
	}
	return n, nil
}

// validSubject rejects subject names Confluent's registry rejects: empty
// ones, invalid UTF-8 and control characters.
func validSubject(subject string) error {
	ok := subject != "" && utf8.ValidString(subject) &&
		strings.IndexFunc(subject, unicode.IsControl) < 0
	if !ok {
		return newAPIError(codeInvalidSubject, "The specified subject %q is not valid", subject)
	}
	return nil
}

// schemaRequest is the body of register, lookup and compatibility
// requests.
type schemaRequest struct {
	Schema     *string           `json:"schema"`
	SchemaType *string           `json:"schemaType"`
	References []json.RawMessage `json:"references"`
	ID         *int64            `json:"id"`
	Version    *int64            `json:"version"`
}

// readSchema decodes a schema request and parses its schema.
func readSchema(req *http.Request) (*parsedSchema, *schemaRequest, error) {
	var body schemaRequest
	if err := decodeBody(req, &body); err != nil {
		return nil, nil, err
	}
	ps, err := body.parse()
	if err != nil {
		return nil, nil, err
	}
	return ps, &body, nil
}

// parse validates the request's schema type and references and parses its
// schema.
func (body *schemaRequest) parse() (*parsedSchema, error) {
	if body.SchemaType != nil && *body.SchemaType != "" && !strings.EqualFold(*body.SchemaType, schemaTypeAvro) {
		return nil, errInvalidSchema("Invalid schema type %s: this schema registry supports only AVRO schemas", *body.SchemaType)
	}
	if len(body.References) > 0 {
		return nil, errInvalidSchema("Schema references are not supported by this schema registry")
	}
	if body.Schema == nil {
		return nil, errInvalidSchema("Empty schema")
	}
	ps, err := parseAvro(*body.Schema)
	if err != nil {
		return nil, errInvalidSchema("Invalid schema: %v", err)
	}
	return ps, nil
}

// schemaResponse is Confluent's Schema entity.
type schemaResponse struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
	ID      int    `json:"id"`
	Schema  string `json:"schema"`
}

type subjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

type levelResponse struct {
	CompatibilityLevel Level `json:"compatibilityLevel"`
}

type levelUpdate struct {
	Compatibility Level `json:"compatibility"`
}

// --- handlers ---

func (r *Registry) getHealth(*http.Request) (any, error) {
	if !r.kl.running() {
		return nil, newAPIError(codeStoreError, "The schema registry is not reading its Kafka topic")
	}
	return map[string]string{"status": "UP"}, nil
}

func (r *Registry) getSchemaByID(req *http.Request) (any, error) {
	text, err := r.schemaText(req.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return struct {
		Schema string `json:"schema"`
	}{text}, nil
}

func (r *Registry) getRawSchemaByID(req *http.Request) (any, error) {
	text, err := r.schemaText(req.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return rawJSON(text), nil
}

func (r *Registry) schemaText(idStr string) (string, error) {
	id, err := parseID(idStr)
	if err != nil {
		return "", err
	}
	var sc *storedSchema
	r.read(func(st *state) { sc = st.schemaByID(id) })
	if sc == nil {
		return "", errSchemaIDNotFound(idStr)
	}
	return sc.text, nil
}

func (r *Registry) getSchemaVersionsByID(req *http.Request) (any, error) {
	idStr := req.PathValue("id")
	id, err := parseID(idStr)
	if err != nil {
		return nil, err
	}
	deleted := boolQuery(req, "deleted")
	out := []subjectVersion{}
	found := false
	r.read(func(st *state) {
		if st.schemaByID(id) == nil {
			return
		}
		found = true
		for _, v := range st.subjectVersionsForID(id, deleted) {
			out = append(out, subjectVersion{Subject: v.subject, Version: v.version})
		}
	})
	if !found {
		return nil, errSchemaIDNotFound(idStr)
	}
	return out, nil
}

func (r *Registry) listSubjects(req *http.Request) (any, error) {
	deleted := boolQuery(req, "deleted")
	prefix := req.URL.Query().Get("subjectPrefix")
	var names []string
	r.read(func(st *state) { names = st.subjectNames(deleted) })
	out := make([]string, 0, len(names))
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (r *Registry) listVersions(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	deleted := boolQuery(req, "deleted")
	var versions []int
	r.read(func(st *state) { versions = st.versions(subject, deleted) })
	if len(versions) == 0 {
		return nil, errSubjectNotFound(subject)
	}
	return versions, nil
}

// findVersion resolves a subject/version path, with Confluent's errors.
func (r *Registry) findVersion(subject, vstr string, includeDeleted bool) (schemaResponse, error) {
	vn, err := parseVersion(vstr)
	if err != nil {
		return schemaResponse{}, err
	}
	var (
		resp   schemaResponse
		apiErr *apiError
	)
	r.read(func(st *state) {
		v := st.getVersion(subject, vn, includeDeleted)
		switch {
		case v != nil:
			resp = schemaResponse{Subject: subject, Version: v.version, ID: v.id, Schema: st.schemaByID(v.id).text}
		case !st.hasSubject(subject, includeDeleted):
			apiErr = errSubjectNotFound(subject)
		default:
			apiErr = errVersionNotFound(vn)
		}
	})
	if apiErr != nil {
		return schemaResponse{}, apiErr
	}
	return resp, nil
}

func (r *Registry) getVersionHandler(req *http.Request) (any, error) {
	return r.findVersion(req.PathValue("subject"), req.PathValue("version"), boolQuery(req, "deleted"))
}

func (r *Registry) getRawVersion(req *http.Request) (any, error) {
	resp, err := r.findVersion(req.PathValue("subject"), req.PathValue("version"), boolQuery(req, "deleted"))
	if err != nil {
		return nil, err
	}
	return rawJSON(resp.Schema), nil
}

// getReferencedBy always answers an empty list once the version is found:
// this registry does not support schema references.
func (r *Registry) getReferencedBy(req *http.Request) (any, error) {
	if _, err := r.findVersion(req.PathValue("subject"), req.PathValue("version"), true); err != nil {
		return nil, err
	}
	return []int{}, nil
}

func (r *Registry) registerSchema(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	if err := validSubject(subject); err != nil {
		return nil, err
	}
	ps, body, err := readSchema(req)
	if err != nil {
		return nil, err
	}
	if body.ID != nil && *body.ID > 0 {
		return nil, newAPIError(codeOperationNotPermitted,
			"Registering a schema with a given id is only permitted in IMPORT mode, which this schema registry does not support")
	}
	if body.Version != nil && *body.Version > 0 {
		return nil, newAPIError(codeOperationNotPermitted,
			"Registering a schema with a given version is not supported by this schema registry")
	}
	ctx, cancel := r.writeContext(req)
	defer cancel()
	id, err := r.register(ctx, subject, ps)
	if err != nil {
		return nil, err
	}
	return struct {
		ID int `json:"id"`
	}{id}, nil
}

func (r *Registry) lookupSchema(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	deleted := boolQuery(req, "deleted")
	var body schemaRequest
	if err := decodeBody(req, &body); err != nil {
		return nil, err
	}
	// Confluent checks the subject before the schema.
	var exists bool
	r.read(func(st *state) { exists = st.hasSubject(subject, deleted) })
	if !exists {
		return nil, errSubjectNotFound(subject)
	}
	ps, err := body.parse()
	if err != nil {
		return nil, err
	}
	var (
		resp  schemaResponse
		found bool
	)
	r.read(func(st *state) {
		if v := st.lookup(subject, ps, deleted); v != nil {
			found = true
			resp = schemaResponse{Subject: subject, Version: v.version, ID: v.id, Schema: st.schemaByID(v.id).text}
		}
	})
	if !found {
		return nil, errSchemaNotFound()
	}
	return resp, nil
}

func (r *Registry) deleteSubjectHandler(req *http.Request) (any, error) {
	ctx, cancel := r.writeContext(req)
	defer cancel()
	return r.deleteSubject(ctx, req.PathValue("subject"), boolQuery(req, "permanent"))
}

func (r *Registry) deleteVersionHandler(req *http.Request) (any, error) {
	vstr := req.PathValue("version")
	vn, err := parseVersion(vstr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := r.writeContext(req)
	defer cancel()
	return r.deleteVersion(ctx, req.PathValue("subject"), vn, vstr, boolQuery(req, "permanent"))
}

// checkCompatibilityHandler serves both
// /compatibility/subjects/{subject}/versions/{version}, which checks against
// one version, and /compatibility/subjects/{subject}/versions, which checks
// against the versions the subject's compatibility level covers.
func (r *Registry) checkCompatibilityHandler(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	vstr := req.PathValue("version")
	vn := 0
	if vstr != "" {
		var err error
		if vn, err = parseVersion(vstr); err != nil {
			return nil, err
		}
	}
	ps, _, err := readSchema(req)
	if err != nil {
		return nil, err
	}
	var (
		msgs   []string
		apiErr *apiError
	)
	r.read(func(st *state) {
		level := st.level(subject, r.cfg.DefaultCompatibility)
		if vstr == "" {
			msgs = checkCompatibility(level, ps.schema, st.liveSchemas(subject))
			return
		}
		v := st.getVersion(subject, vn, false)
		switch {
		case v == nil && vn == latestVersion:
			// Nothing to be incompatible with.
		case v == nil && !st.hasSubject(subject, false):
			apiErr = errSubjectNotFound(subject)
		case v == nil:
			apiErr = errVersionNotFound(vn)
		default:
			prev := []previousSchema{{version: v.version, id: v.id, schema: st.schemaByID(v.id).parsed.schema}}
			msgs = checkCompatibility(level, ps.schema, prev)
		}
	})
	if apiErr != nil {
		return nil, apiErr
	}
	resp := struct {
		IsCompatible bool     `json:"is_compatible"`
		Messages     []string `json:"messages,omitempty"`
	}{IsCompatible: len(msgs) == 0}
	if boolQuery(req, "verbose") {
		resp.Messages = msgs
	}
	return resp, nil
}

func (r *Registry) getGlobalConfig(*http.Request) (any, error) {
	var l Level
	r.read(func(st *state) { l = st.globalOrDefault(r.cfg.DefaultCompatibility) })
	return levelResponse{CompatibilityLevel: l}, nil
}

func (r *Registry) getSubjectConfig(req *http.Request) (any, error) {
	subject := req.PathValue("subject")
	var (
		l  Level
		ok bool
	)
	r.read(func(st *state) {
		if l, ok = st.subjectLevels[subject]; !ok && boolQuery(req, "defaultToGlobal") {
			l, ok = st.globalOrDefault(r.cfg.DefaultCompatibility), true
		}
	})
	if !ok {
		return nil, newAPIError(codeSubjectCompatNotConfigured,
			"Subject '%s' does not have subject-level compatibility configured", subject)
	}
	return levelResponse{CompatibilityLevel: l}, nil
}

// putConfig serves PUT /config and PUT /config/{subject}.
func (r *Registry) putConfig(req *http.Request, subject string, global bool) (any, error) {
	if !global {
		if err := validSubject(subject); err != nil {
			return nil, err
		}
	}
	var body struct {
		Compatibility *string `json:"compatibility"`
	}
	if err := decodeBody(req, &body); err != nil {
		return nil, err
	}
	if body.Compatibility == nil {
		return nil, errInvalidCompatibility()
	}
	level, ok := parseLevel(*body.Compatibility)
	if !ok {
		return nil, errInvalidCompatibility()
	}
	ctx, cancel := r.writeContext(req)
	defer cancel()
	if err := r.setLevel(ctx, subject, global, level); err != nil {
		return nil, err
	}
	return levelUpdate{Compatibility: level}, nil
}

// deleteConfig serves DELETE /config and DELETE /config/{subject}. It
// answers the level that was in force, under both Confluent's
// "compatibilityLevel" key and the "compatibility" key srclient's
// DeleteSubjectCompatibilityLevel reads.
func (r *Registry) deleteConfig(req *http.Request, subject string, global bool) (any, error) {
	ctx, cancel := r.writeContext(req)
	defer cancel()
	old, err := r.deleteLevel(ctx, subject, global)
	if err != nil {
		return nil, err
	}
	return struct {
		CompatibilityLevel Level `json:"compatibilityLevel"`
		Compatibility      Level `json:"compatibility"`
	}{old, old}, nil
}
