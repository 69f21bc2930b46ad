package httprpc

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
)

// FieldErrors are the problems found in a request's parameters, as Vumi
// reports them: {"missing_parameter": [...], "unexpected_parameter": [...]}.
type FieldErrors map[string][]string

// Add records a problem.
func (e FieldErrors) Add(kind, field string) { e[kind] = append(e[kind], field) }

// JSON is the 400 body naming the bad fields.
func (e FieldErrors) JSON() []byte {
	for _, v := range e {
		sort.Strings(v)
	}
	b, _ := json.Marshal(map[string][]string(e))
	return b
}

// FieldValues reads the request's parameters (Vumi's get_field_values):
// every expected field must be present; in strict mode any parameter that
// is neither expected nor ignored is an error, in permissive mode it is
// dropped. The first value of each parameter is used.
func (s *Server) FieldValues(r *http.Request, expected, ignored []string) (map[string]string, FieldErrors) {
	return Fields(r.Form, expected, ignored, s.cfg.ValidationMode == Strict)
}

// Fields is FieldValues over parsed parameters.
func Fields(form url.Values, expected, ignored []string, strict bool) (map[string]string, FieldErrors) {
	allowed := map[string]bool{}
	for _, f := range expected {
		allowed[f] = true
	}
	for _, f := range ignored {
		allowed[f] = true
	}
	values := map[string]string{}
	errs := FieldErrors{}
	for field, vals := range form {
		if !allowed[field] {
			if strict {
				errs.Add("unexpected_parameter", field)
			}
			continue
		}
		if len(vals) > 0 {
			values[field] = vals[0]
		}
	}
	for _, f := range expected {
		if _, ok := values[f]; !ok {
			errs.Add("missing_parameter", f)
		}
	}
	if len(errs) == 0 {
		return values, nil
	}
	return values, errs
}

// Map returns the problems, sorted, to combine with other entries of a
// transport's 400 body.
func (e FieldErrors) Map() map[string]any {
	out := map[string]any{}
	for k, v := range e {
		sort.Strings(v)
		out[k] = v
	}
	return out
}
