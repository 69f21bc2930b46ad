package transporttest

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestConfigErrors(t *testing.T) {
	kinds := topology.NewRegistry()
	if _, err := LoadWorker(kinds, "name: a, kind: nosuchkind, transport_name: a"); err == nil {
		t.Fatal("unknown kind loaded")
	}
	r := &recorder{TB: t}
	// The error names the kind, not a key: the case must be reported.
	ConfigErrors(r, kinds, map[string]string{"web_path": "name: a, kind: nosuchkind, transport_name: a"})
	if len(r.errs) != 1 {
		t.Fatalf("ConfigErrors reported %q, want one failure", r.errs)
	}
}

func TestInstances(t *testing.T) {
	got := Instances(2, "\n  - name: w{i}\n    web_port: ${PORT{i}}\n    map: {a: b}\n")
	want := "\n  - name: w0\n    web_port: ${PORT0}\n    map: {a: b}\n\n  - name: w1\n    web_port: ${PORT1}\n    map: {a: b}\n"
	if got != want {
		t.Errorf("Instances = %q, want %q", got, want)
	}
}

func TestParams(t *testing.T) {
	got := Params(url.Values{"a": {"1"}, "b": {"2"}}, "a", "<none>", "b", "3", "c", "", "odd")
	if want := "b=3&c="; got.Encode() != want {
		t.Errorf("Params = %q, want %q", got.Encode(), want)
	}
}

func TestReply(t *testing.T) {
	in := schemas.NewUserMessage()
	in.FromAddr, in.ToAddr = schemas.String("123"), schemas.String("*1#")
	out := Reply("menu", false)(in)
	if out.Text() != "menu" || out.Session() != schemas.SessionClose || out.To() != "123" || out.InReplyTo == nil || *out.InReplyTo != in.MessageID {
		t.Errorf("reply %+v", out)
	}
}
