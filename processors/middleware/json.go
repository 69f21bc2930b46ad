package middleware

import (
	"bytes"
	"encoding/json"
)

// jsonUnmarshal decodes JSON keeping numbers as json.Number, so that
// integers in messages survive a round trip.
func jsonUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
