package httprpc

import "testing"

func TestPathMatches(t *testing.T) {
	cases := []struct {
		path, webPath string
		want          bool
	}{
		{"/api", "/api", true},
		{"/api/", "/api", true},
		{"/api/v1/x", "api/", true},
		{"/apix", "/api", false},
		{"/", "/api", false},
		{"/", "/", true},
		{"/anything/below", "/", true},
		{"/x", "", true},
	}
	for _, c := range cases {
		if got := pathMatches(c.path, c.webPath); got != c.want {
			t.Errorf("pathMatches(%q, %q) = %v, want %v", c.path, c.webPath, got, c.want)
		}
	}
}
