package sandbox

import (
	"encoding/json"
	"log/slog"
	"reflect"
	"testing"

	"github.com/vumi-kafka/vumi/schemas"
)

// FuzzCommand feeds arbitrary protocol lines from a sandbox to the
// resources (all but http, which would reach the network): none may
// panic, and every command gets a reply with its cmd_id.
func FuzzCommand(f *testing.F) {
	for _, seed := range []string{
		`{"cmd":"kv.set","cmd_id":"1","reply":false,"key":"a","value":{"x":1},"seconds":1.5}`,
		`{"cmd":"kv.incr","cmd_id":"2","key":"a","amount":1e300}`,
		`{"cmd":"kv.get","cmd_id":"3","key":null}`,
		`{"cmd":"outbound.reply_to","cmd_id":"4","content":7,"in_reply_to":"m"}`,
		`{"cmd":"outbound.send_to","cmd_id":"5","to_addr":"+27","content":"x","endpoint":3}`,
		`{"cmd":"log.log","cmd_id":"6","msg":{"a":[1]},"level":-1}`,
		`{"cmd":"config.get","cmd_id":"7","key":"k"}`,
		`{"cmd":"nosuch","cmd_id":8}`,
		`{"cmd":".","cmd_id":"9"}`,
	} {
		f.Add(seed)
	}
	cfg := &Config{flavour: plain, Executable: "/bin/true", Sandbox: map[string]ResourceSpec{
		"kv": {Cls: ClsKV, KeysPerUserHard: 3}, "outbound": {Cls: ClsOutbound}, "log": {Cls: ClsLog},
		"config": {Cls: ClsConfig, Values: map[string]any{"k": "v"}},
	}}
	cfg.TransportName = "sms"
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	f.Fuzz(func(t *testing.T, line string) {
		var cm command
		if json.Unmarshal([]byte(line), &cm) != nil {
			return
		}
		m := schemas.NewUserMessage()
		m.MessageID = "m"
		k := &call{c: &fakeContext{}, msg: m, sandboxID: "27761234567"}
		reply := s.dispatch(k, cm)
		if reply["reply"] != true || !reflect.DeepEqual(reply["cmd_id"], cm["cmd_id"]) {
			t.Fatalf("reply %v to %v", reply, cm)
		}
		if _, err := json.Marshal(reply); err != nil {
			t.Fatalf("reply not encodable: %v", err)
		}
	})
}
