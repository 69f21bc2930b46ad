package httprpc

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzFieldValues feeds arbitrary form bodies through the parameter
// checks of the aggregator transports built on HTTP-RPC: every expected
// field is either returned or reported missing, and nothing else is
// returned.
func FuzzFieldValues(f *testing.F) {
	for _, s := range []string{"to=12345&from=2371234567&sms=hello", "sms=%C3%B6&foo=bar", "to=&to=2", "%zz", "a=1;b=2", ""} {
		f.Add(s, true)
	}
	expected, ignored := []string{"to", "from", "sms"}, []string{"linkID"}
	f.Fuzz(func(t *testing.T, body string, strict bool) {
		mode := Permissive
		if strict {
			mode = Strict
		}
		s := &Server{cfg: &Config{ValidationMode: mode}}
		r, err := http.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if err := r.ParseForm(); err != nil {
			return // answered 400 by serveRPC
		}
		values, errs := s.FieldValues(r, expected, ignored)
		missing := map[string]bool{}
		for _, m := range errs["missing_parameter"] {
			missing[m] = true
		}
		for _, k := range expected {
			if _, ok := values[k]; ok == missing[k] {
				t.Errorf("field %s: present %v, reported missing %v", k, ok, missing[k])
			}
		}
		for k := range values {
			if k != "to" && k != "from" && k != "sms" && k != "linkID" {
				t.Errorf("unexpected field %q returned", k)
			}
		}
		if strict {
			for k := range url.Values(r.Form) {
				if k != "to" && k != "from" && k != "sms" && k != "linkID" && !contains(errs["unexpected_parameter"], k) {
					t.Errorf("strict mode: %q not reported", k)
				}
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
