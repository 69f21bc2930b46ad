package registry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestErrorBodies checks Confluent's error codes and bodies over raw HTTP.
func TestErrorBodies(t *testing.T) {
	c := newCluster(t, "", 0)
	t.Cleanup(c.Close)
	in := startRegistry(t, c, "_schemas")
	h := in.reg.Handler()

	if r := do(t, h, http.MethodPost, "/subjects/users/versions", schemaBody(userV1)); r.status != http.StatusOK || string(r.body) != `{"id":1}` {
		t.Fatalf("register: %d %s", r.status, r.body)
	}

	cases := []struct {
		name         string
		method, path string
		body         string
		code         int
		msgContains  string
	}{
		{"subject not found", "GET", "/subjects/nope/versions", "", codeSubjectNotFound, "Subject 'nope' not found."},
		{"subject not found/version", "GET", "/subjects/nope/versions/1", "", codeSubjectNotFound, "nope"},
		{"subject not found/latest", "GET", "/subjects/nope/versions/latest", "", codeSubjectNotFound, "nope"},
		{"subject not found/lookup", "POST", "/subjects/nope", schemaBody(userV1), codeSubjectNotFound, "nope"},
		{"version not found", "GET", "/subjects/users/versions/2", "", codeVersionNotFound, "Version 2 not found."},
		{"schema not found/id", "GET", "/schemas/ids/42", "", codeSchemaNotFound, "Schema 42 not found"},
		{"schema not found/id versions", "GET", "/schemas/ids/42/versions", "", codeSchemaNotFound, "42"},
		{"schema not found/bad id", "GET", "/schemas/ids/abc", "", codeSchemaNotFound, "abc"},
		{"schema not found/lookup", "POST", "/subjects/users", schemaBody(messageV1), codeSchemaNotFound, "Schema not found"},
		{"invalid schema/not json", "POST", "/subjects/users/versions", schemaBody(`{"type":`), codeInvalidSchema, "Invalid schema"},
		{"invalid schema/bare name", "POST", "/subjects/users/versions", schemaBody(`string`), codeInvalidSchema, "Invalid schema"},
		{"invalid schema/unknown type", "POST", "/subjects/users/versions", schemaBody(`{"type":"record","name":"A","fields":[{"name":"x","type":"Nope"}]}`), codeInvalidSchema, "Invalid schema"},
		{"invalid schema/bad default", "POST", "/subjects/users/versions", schemaBody(`{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":"one"}]}`), codeInvalidSchema, "Invalid schema"},
		{"invalid schema/empty", "POST", "/subjects/users/versions", `{"schema":""}`, codeInvalidSchema, "empty schema"},
		{"invalid schema/missing", "POST", "/subjects/users/versions", `{"schemaType":"AVRO"}`, codeInvalidSchema, "Empty schema"},
		{"invalid schema/protobuf", "POST", "/subjects/users/versions", `{"schema":"syntax = \"proto3\";","schemaType":"PROTOBUF"}`, codeInvalidSchema, "only AVRO"},
		{"invalid schema/references", "POST", "/subjects/users/versions", `{"schema":"\"string\"","references":[{"name":"a","subject":"b","version":1}]}`, codeInvalidSchema, "references"},
		{"invalid schema/lookup", "POST", "/subjects/users", schemaBody(`{"type":"nope"}`), codeInvalidSchema, "Invalid schema"},
		{"invalid version/zero", "GET", "/subjects/users/versions/0", "", codeInvalidVersion, "'0' is not a valid version"},
		{"invalid version/word", "GET", "/subjects/users/versions/first", "", codeInvalidVersion, "first"},
		{"invalid version/too big", "GET", "/subjects/users/versions/2147483648", "", codeInvalidVersion, "2147483648"},
		{"invalid version/negative", "GET", "/subjects/users/versions/-2", "", codeInvalidVersion, "-2"},
		{"invalid compatibility", "PUT", "/config/users", `{"compatibility":"MOSTLY"}`, codeInvalidCompatibility, "Invalid compatibility level"},
		{"incompatible", "POST", "/subjects/users/versions", schemaBody(userAgeNoDefault), codeIncompatibleSchema, "incompatible"},
		{"subject config not configured", "GET", "/config/users", "", codeSubjectCompatNotConfigured, "does not have subject-level compatibility configured"},
		{"invalid subject", "POST", "/subjects/a%01b/versions", schemaBody(userV1), codeInvalidSubject, "not valid"},
		{"import id", "POST", "/subjects/users/versions", `{"schema":"\"string\"","id":7}`, codeOperationNotPermitted, "IMPORT"},
		{"malformed json", "POST", "/subjects/users/versions", `{"schema":`, 400, "Malformed JSON"},
		{"trailing data", "POST", "/subjects/users/versions", `{"schema":"\"string\""} {}`, 400, "after the JSON"},
		{"wrong json type", "POST", "/subjects/users/versions", `{"schema":12}`, 422, "schema"},
		{"json array", "PUT", "/config", `["FULL"]`, 422, "Invalid JSON"},
		{"unknown path", "GET", "/nothing/here", "", 404, "HTTP 404 Not Found"},
		{"wrong method", "PATCH", "/config", "", 405, "HTTP 405 Method Not Allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, h, tc.method, tc.path, tc.body)
			msg := expectError(t, r, tc.code)
			if !strings.Contains(msg, tc.msgContains) {
				t.Fatalf("message %q does not contain %q", msg, tc.msgContains)
			}
			if r.contentType != contentType {
				t.Fatalf("Content-Type = %q, want %q", r.contentType, contentType)
			}
		})
	}

	// A body without a request body at all.
	req := httptest.NewRequest(http.MethodPost, "/subjects/users/versions", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	expectError(t, response{status: rec.Code, body: rec.Body.Bytes()}, 422)

	// Unsupported request media type.
	req = httptest.NewRequest(http.MethodPost, "/subjects/users/versions", strings.NewReader(schemaBody(userV1)))
	req.Header.Set("Content-Type", "text/plain")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	expectError(t, response{status: rec.Code, body: rec.Body.Bytes()}, 415)

	// Plain application/json and no content type are accepted.
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", ""} {
		req = httptest.NewRequest(http.MethodPost, "/subjects/users", strings.NewReader(schemaBody(userV1)))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("Content-Type %q: %d %s", ct, rec.Code, rec.Body)
		}
	}

	// A schema too large for a Kafka record.
	huge := `{"type":"record","name":"Huge","doc":"` + strings.Repeat("x", 1<<20+1024) + `","fields":[]}`
	expectError(t, do(t, h, http.MethodPost, "/subjects/huge/versions", schemaBody(huge)), codeSchemaTooLarge)

	// Oversized bodies are refused.
	big := `{"schema":"` + strings.Repeat(" ", int(in.reg.cfg.MaxRequestBytes)) + `\"string\""}`
	expectError(t, do(t, h, http.MethodPost, "/subjects/users/versions", big), 413)
}

// TestResponseShapes checks the exact JSON of the successful responses.
func TestResponseShapes(t *testing.T) {
	reg := newMemRegistry(t)
	h := reg.Handler()
	steps := []struct {
		method, path, body string
		want               string
	}{
		{"GET", "/", "", `{}`},
		{"GET", "/healthz", "", `{"status":"UP"}`},
		{"GET", "/schemas/types", "", `["AVRO"]`},
		{"GET", "/subjects", "", `[]`},
		{"POST", "/subjects/s%2Fwith%2Fslashes/versions", `{"schema":"\"string\"","schemaType":"AVRO","references":[]}`, `{"id":1}`},
		{"POST", "/subjects/t/versions", schemaBody(`{"type": "string"}`), `{"id":1}`},
		{"GET", "/subjects", "", `["s/with/slashes","t"]`},
		{"GET", "/subjects?subjectPrefix=s", "", `["s/with/slashes"]`},
		{"GET", "/subjects/s%2Fwith%2Fslashes/versions", "", `[1]`},
		{"GET", "/subjects/s%2Fwith%2Fslashes/versions/latest", "", `{"subject":"s/with/slashes","version":1,"id":1,"schema":"\"string\""}`},
		{"GET", "/subjects/t/versions/-1", "", `{"subject":"t","version":1,"id":1,"schema":"\"string\""}`},
		{"GET", "/subjects/t/versions/1/schema", "", `"string"`},
		{"GET", "/subjects/t/versions/1/referencedby", "", `[]`},
		{"POST", "/subjects/t", schemaBody(`"string"`), `{"subject":"t","version":1,"id":1,"schema":"\"string\""}`},
		{"GET", "/schemas/ids/1", "", `{"schema":"\"string\""}`},
		{"GET", "/schemas/ids/1/schema", "", `"string"`},
		{"GET", "/schemas/ids/1/versions", "", `[{"subject":"s/with/slashes","version":1},{"subject":"t","version":1}]`},
		{"PUT", "/config/t", `{"compatibility":"none"}`, `{"compatibility":"NONE"}`},
		{"GET", "/config/t", "", `{"compatibilityLevel":"NONE"}`},
		{"GET", "/config/u?defaultToGlobal=true", "", `{"compatibilityLevel":"BACKWARD"}`},
		{"POST", "/subjects/t/versions", schemaBody(`"int"`), `{"id":2}`},
		{"DELETE", "/subjects/t/versions/1", "", `1`},
		{"GET", "/schemas/ids/1/versions", "", `[{"subject":"s/with/slashes","version":1}]`},
		{"GET", "/schemas/ids/1/versions?deleted=true", "", `[{"subject":"s/with/slashes","version":1},{"subject":"t","version":1}]`},
		{"DELETE", "/subjects/t/versions/1?permanent=true", "", `1`},
		{"DELETE", "/subjects/t", "", `[2]`},
		{"DELETE", "/subjects/t?permanent=true", "", `[2]`},
		{"DELETE", "/config", "", `{"compatibilityLevel":"BACKWARD","compatibility":"BACKWARD"}`},
	}
	for _, s := range steps {
		r := do(t, h, s.method, s.path, s.body)
		if r.status != http.StatusOK || string(r.body) != s.want {
			t.Fatalf("%s %s: %d %s, want 200 %s", s.method, s.path, r.status, r.body, s.want)
		}
		if r.contentType != contentType {
			t.Fatalf("%s %s: Content-Type %q", s.method, s.path, r.contentType)
		}
	}
}

// TestWritesAfterClose checks that a closed registry keeps serving reads
// from memory and fails writes with a store error.
func TestWritesAfterClose(t *testing.T) {
	reg := newMemRegistry(t)
	h := reg.Handler()
	if r := do(t, h, http.MethodPost, "/subjects/s/versions", schemaBody(userV1)); r.status != http.StatusOK {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if r := do(t, h, http.MethodGet, "/subjects/s/versions/1", ""); r.status != http.StatusOK {
		t.Fatalf("read after close: %d %s", r.status, r.body)
	}
	expectError(t, do(t, h, http.MethodPost, "/subjects/s/versions", schemaBody(userAgeDefault)), codeStoreError)
	expectError(t, do(t, h, http.MethodGet, "/healthz", ""), codeStoreError)
}
