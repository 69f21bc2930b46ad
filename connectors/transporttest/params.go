package transporttest

import (
	"net/url"

	"github.com/vumi-kafka/vumi/schemas"
)

// Params sets the pairs kv (key, value, key, value, ...) on v, where the
// value "<none>" deletes the key instead, and returns v: a test's default
// request parameters with a case's changes.
func Params(v url.Values, kv ...string) url.Values {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "<none>" {
			v.Del(kv[i])
			continue
		}
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// Reply is a Case's Reply that answers the inbound message with content,
// continuing the session when cont is true.
func Reply(content string, cont bool) func(*schemas.UserMessage) *schemas.UserMessage {
	return func(in *schemas.UserMessage) *schemas.UserMessage { return in.Reply(content, cont) }
}
