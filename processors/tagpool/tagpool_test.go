package tagpool_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/processors/tagpool"
)

func owner(s string) *string { return &s }

func TestPoolLifecycle(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var p *tagpool.Pool
	step := func(c tagpool.Command) tagpool.Result {
		c.Time = now
		var r tagpool.Result
		p, r = tagpool.Apply(p, &c)
		return r
	}
	tagOf := func(r tagpool.Result) string {
		if r.Tag == nil {
			return "<none>"
		}
		return r.Tag.Pool + ":" + r.Tag.Name
	}
	if r := step(tagpool.Command{Op: tagpool.OpAcquire, Pool: "sms"}); r.Tag != nil || p != nil {
		t.Fatalf("acquire from a missing pool: %v %v", r, p)
	}
	step(tagpool.Command{Op: tagpool.OpDeclare, Pool: "sms", Tags: []string{"b", "a", "c", "a"}})
	step(tagpool.Command{Op: tagpool.OpDeclare, Pool: "sms", Tags: []string{"c", "d"}})
	if got := fmt.Sprint(p.Free); got != "[a b c d]" {
		t.Fatalf("free after declares = %s", got)
	}
	for _, c := range []struct {
		cmd  tagpool.Command
		want string
	}{
		{tagpool.Command{Op: tagpool.OpAcquire, Pool: "sms", Owner: owner("alice"), Reason: map[string]any{"why": "campaign"}}, "sms:a"},
		{tagpool.Command{Op: tagpool.OpAcquireSpecific, Pool: "sms", Tag: "c"}, "sms:c"},
		{tagpool.Command{Op: tagpool.OpAcquireSpecific, Pool: "sms", Tag: "c"}, "<none>"},
		{tagpool.Command{Op: tagpool.OpAcquire, Pool: "sms", Owner: owner("bob")}, "sms:b"},
		{tagpool.Command{Op: tagpool.OpAcquire, Pool: "sms"}, "sms:d"},
		{tagpool.Command{Op: tagpool.OpAcquire, Pool: "sms"}, "<none>"},
	} {
		if got := tagOf(step(c.cmd)); got != c.want {
			t.Errorf("%s %s = %s, want %s", c.cmd.Op, c.cmd.Tag, got, c.want)
		}
	}
	o, r := p.AcquiredBy("a")
	if o != "alice" || r["why"] != "campaign" || r["timestamp"] != 1700000000.0 {
		t.Errorf("acquired_by a = %v %v", o, r)
	}
	if got := fmt.Sprint(p.OwnedBy(owner("bob"))); got != "[{sms b}]" {
		t.Errorf("owned by bob = %s", got)
	}
	if got := fmt.Sprint(p.OwnedBy(nil)); got != "[{sms c} {sms d}]" {
		t.Errorf("unowned = %s", got)
	}
	if r := step(tagpool.Command{Op: tagpool.OpPurge, Pool: "sms"}); !strings.Contains(r.Error, "4 tags of pool sms still in use") || p == nil {
		t.Errorf("purge in use = %v", r)
	}
	for _, tag := range []string{"b", "a", "c", "d", "zz"} {
		step(tagpool.Command{Op: tagpool.OpRelease, Pool: "sms", Tag: tag})
	}
	if got := fmt.Sprint(p.Free); got != "[b a c d]" || len(p.InUse) != 0 {
		t.Errorf("free after release = %s, in use %v", got, p.InUse)
	}
	step(tagpool.Command{Op: tagpool.OpSetMetadata, Pool: "sms", Metadata: map[string]any{"transport_type": "sms"}})
	if p.Metadata["transport_type"] != "sms" {
		t.Errorf("metadata %v", p.Metadata)
	}
	if r := step(tagpool.Command{Op: tagpool.OpPurge, Pool: "sms"}); r.Error != "" || p != nil {
		t.Errorf("purge = %v %v", r, p)
	}
	if r := step(tagpool.Command{Op: "explode", Pool: "sms"}); !strings.Contains(r.Error, "unknown op") {
		t.Errorf("unknown op: %v", r)
	}
}

func TestTagJSON(t *testing.T) {
	b, _ := json.Marshal(tagpool.Tag{Pool: "p", Name: "t"})
	if string(b) != `["p","t"]` {
		t.Errorf("tag JSON %s", b)
	}
	var tag tagpool.Tag
	for _, bad := range []string{`["p"]`, `{}`, `["p", 1]`} {
		if err := json.Unmarshal([]byte(bad), &tag); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
