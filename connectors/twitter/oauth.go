package twitter

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Credentials are an application's and a user's OAuth 1.0a secrets.
type Credentials struct {
	ConsumerKey, ConsumerSecret string
	AccessToken, AccessSecret   string
}

// percentEncode is RFC 5849 §3.6: everything but ALPHA, DIGIT, '-', '.',
// '_' and '~' as %XX with upper-case hex.
func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	return b.String()
}

// signatureBase is RFC 5849 §3.4.1: method, base URL and the normalized
// parameters (query, form body and oauth_* except the signature).
func signatureBase(method string, u *url.URL, params url.Values) string {
	type kv struct{ k, v string }
	var pairs []kv
	for k, vs := range params {
		for _, v := range vs {
			pairs = append(pairs, kv{percentEncode(k), percentEncode(v)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	base := *u
	base.RawQuery, base.Fragment = "", ""
	base.Scheme, base.Host = strings.ToLower(base.Scheme), strings.ToLower(base.Host)
	if (base.Scheme == "http" && base.Port() == "80") || (base.Scheme == "https" && base.Port() == "443") {
		base.Host = base.Hostname()
	}
	return strings.ToUpper(method) + "&" + percentEncode(base.String()) + "&" + percentEncode(strings.Join(parts, "&"))
}

// sign returns the HMAC-SHA1 signature of a base string.
func (c Credentials) sign(base string) string {
	mac := hmac.New(sha1.New, []byte(percentEncode(c.ConsumerSecret)+"&"+percentEncode(c.AccessSecret)))
	mac.Write([]byte(base))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// authorization builds the Authorization header of a request whose form
// body parameters are form (nil for none), with a given nonce and time.
func (c Credentials) authorization(method string, u *url.URL, form url.Values, nonce string, now time.Time) string {
	oauth := map[string]string{
		"oauth_consumer_key":     c.ConsumerKey,
		"oauth_nonce":            nonce,
		"oauth_signature_method": "HMAC-SHA1",
		"oauth_timestamp":        strconv.FormatInt(now.Unix(), 10),
		"oauth_token":            c.AccessToken,
		"oauth_version":          "1.0",
	}
	params := url.Values{}
	for k, vs := range u.Query() {
		params[k] = append(params[k], vs...)
	}
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	for k, v := range oauth {
		params.Set(k, v)
	}
	oauth["oauth_signature"] = c.sign(signatureBase(method, u, params))
	keys := make([]string, 0, len(oauth))
	for k := range oauth {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = percentEncode(k) + `="` + percentEncode(oauth[k]) + `"`
	}
	return "OAuth " + strings.Join(parts, ", ")
}

// Sign sets the OAuth 1.0a Authorization header on r, whose form body
// (if any) is form.
func (c Credentials) Sign(r *http.Request, form url.Values) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	r.Header.Set("Authorization", c.authorization(r.Method, r.URL, form, hex.EncodeToString(b), time.Now()))
}
