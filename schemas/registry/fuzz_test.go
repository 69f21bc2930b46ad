package registry

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
)

// FuzzRegister feeds arbitrary subjects and request bodies to the
// endpoints that parse schemas. The handler must never fail with a server
// error (a panic would surface as one) and must answer anything it does
// not accept with a 4xx Confluent error body. A registration that
// succeeds must be found again by lookup.
func FuzzRegister(f *testing.F) {
	for _, seed := range []struct{ subject, body string }{
		{"s", schemaBody(userV1)},
		{"s", schemaBody(userAgeDefault)},
		{"s", `{"schema":"\"string\"","schemaType":"AVRO","references":[]}`},
		{"s", `{"schema":"{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"],\"default\":\"A\"}"}`},
		{"s", `{"schema":"{\"type\":\"fixed\",\"name\":\"F\",\"size\":4,\"logicalType\":\"decimal\",\"precision\":4}"}`},
		{"s", `{"schema":"[\"null\",{\"type\":\"array\",\"items\":{\"type\":\"map\",\"values\":\"bytes\"}}]"}`},
		{"s", `{"schema":"{\"type\":\"record\",\"name\":\"L\",\"fields\":[{\"name\":\"next\",\"type\":[\"null\",\"L\"]}]}"}`},
		{"s", `{"schema":"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"r\",\"type\":{\"type\":\"record\",\"name\":\"S\",\"fields\":[]},\"default\":{}}]}"}`},
		{"s", `{"schema":"{\"type\":\"int\",\"logicalType\":\"date\"}"}`},
		{"s", `{"schema":"[\"int\",\"int\"]"}`},
		{"s", `{"schema":"{\"type\":\"record\",\"name\":\"1bad\",\"fields\":[]}"}`},
		{"s", `{"schema":"{\"type\":\"record\",\"name\":\"D\",\"fields\":[{\"name\":\"b\",\"type\":\"bytes\",\"default\":\"\\u00ff\"}]}"}`},
		{"s", `{"schema":"","schemaType":"JSON"}`},
		{"s", `{"schema":12}`},
		{"s", `{"schema":"\"string\"","id":3}`},
		{"s", `{"schema":"\"string\"","version":-3}`},
		{"s", `null`},
		{"s", `[]`},
		{"s", `{`},
		{"s", ""},
		{"s", "\x00\xff"},
		{"", schemaBody(userV1)},
		{"a\nb", schemaBody(userV1)},
		{"..", schemaBody(userV1)},
		{"\xff", schemaBody(userV1)},
	} {
		f.Add(seed.subject, seed.body)
	}
	f.Fuzz(func(t *testing.T, subject, body string) {
		// A fresh registry per input keeps every run reproducible.
		h := newMemRegistry(t, func(c *Config) {
			c.DefaultCompatibility = LevelNone
			c.MaxRequestBytes = 1 << 16
			c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		}).Handler()
		esc := url.PathEscape(subject)
		var registered bool
		for _, path := range []string{
			"/subjects/" + esc + "/versions",
			"/subjects/" + esc,
			"/compatibility/subjects/" + esc + "/versions/latest",
			"/compatibility/subjects/" + esc + "/versions?verbose=true",
		} {
			r := do(t, h, http.MethodPost, path, body)
			if r.status >= 500 {
				t.Fatalf("POST %s %q: server error %d %s", path, body, r.status, r.body)
			}
			if r.status != http.StatusOK {
				if r.status < 400 {
					t.Fatalf("POST %s %q: status %d", path, body, r.status)
				}
				r.errorBody(t)
				continue
			}
			if !json.Valid(r.body) {
				t.Fatalf("POST %s: invalid JSON response %q", path, r.body)
			}
			if path == "/subjects/"+esc+"/versions" {
				registered = true
			}
		}
		if !registered {
			return
		}
		// What was registered is valid and can be found again.
		var req schemaRequest
		if err := json.Unmarshal([]byte(body), &req); err != nil || req.Schema == nil {
			t.Fatalf("registered %q, which is not a schema request", body)
		}
		if _, err := parseAvro(*req.Schema); err != nil {
			t.Fatalf("registered an invalid schema %q: %v", *req.Schema, err)
		}
		if r := do(t, h, http.MethodPost, "/subjects/"+esc, body); r.status != http.StatusOK {
			t.Fatalf("lookup after register: %d %s", r.status, r.body)
		}
	})
}
