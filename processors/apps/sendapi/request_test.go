package sendapi

import (
	"encoding/json"
	"reflect"
	"testing"
)

var sendBodies = []string{
	`{"to_addr": "+27760000001", "content": "benchmark message 1"}`,
	` {"to_addr":"+1","content":null,"from_addr":"x","session_event":"close","in_reply_to":"abc"} `,
	`{"to_addr": "+1", "helper_metadata": {"voice": {"speech_url": "http://x"}, "n": 12, "f": 1.5e3, "ok": true, "l": [1, "a", null]}}`,
	`{"to_addr": "+1", "helper_metadata": null}`,
	`{"to_addr": "+1", "helper_metadata": []}`,
	`{"to_addr": 12}`,
	`{"To_Addr": "+1"}`,
	`{"to_addr": "+1", "bogus": 1}`,
	`{"to_addr": "+1", "to_addr": "+2"}`,
	`{"to_addr": "caf\u00e9"}`,
	`{"content": "line\nbreak"}`,
	`{"to_addr": "+1"} trailing`,
	`{"to_addr": "+1"`,
	`[]`,
	``,
	`{}`,
	"{\"content\": \"\xff\"}",
}

func TestDecodeSendRequestAsEncodingJSON(t *testing.T) {
	fast := 0
	for _, b := range sendBodies {
		checkSendRequest(t, []byte(b))
		if _, ok := decodeSendRequestFast([]byte(b)); ok {
			fast++
		}
	}
	if fast < 4 {
		t.Errorf("only %d bodies took the fast path", fast)
	}
	req, err := decodeSendRequest([]byte(sendBodies[2]))
	if err != nil || *req.ToAddr != "+1" || req.HelperMetadata["n"] != json.Number("12") {
		t.Errorf("decoded %+v, %v", req, err)
	}
}

func checkSendRequest(t *testing.T, b []byte) {
	t.Helper()
	got, err := decodeSendRequest(b)
	want, wantErr := decodeSendRequestJSON(b) // encoding/json alone, as before
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("%q: error %v, encoding/json: %v", b, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decoded %+v, encoding/json %+v", b, got, want)
	}
}

func FuzzDecodeSendRequest(f *testing.F) {
	for _, b := range sendBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkSendRequest(t, b) })
}
