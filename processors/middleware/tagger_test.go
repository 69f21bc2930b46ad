package middleware_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

func taggingConfig(addr, pool, name, tagPattern string, tmpl map[string]any) *middleware.TaggingConfig {
	return &middleware.TaggingConfig{
		Incoming: &middleware.TaggingIncoming{AddrPattern: addr, TagpoolTemplate: pool, TagnameTemplate: name},
		Outgoing: &middleware.TaggingOutgoing{TagnamePattern: tagPattern, MsgTemplate: tmpl},
	}
}

func TestTaggingInbound(t *testing.T) {
	for _, c := range []struct {
		name              string
		pattern, pool, tn string
		to                string
		want              string // "pool:name" or "" for untagged
	}{
		{"numbered groups", `^\d+(\d{3})$`, "pool1", `mytag-\1`, "1234567", "pool1:mytag-567"},
		{"g<n> and g<name>", `^(?P<prefix>\d{3})(\d+)$`, `p-\g<prefix>`, `t\g<2>`, "1234567", "p-123:t4567"},
		{"anchored at start like re.match", `\d{3}`, "pool", "tag", "ab123", ""},
		{"match need not reach the end", `12`, "pool", `\g<0>`, "12999", "pool:12"},
		{"no match untagged", `^xyz`, "pool", "tag", "1234", ""},
		{"escapes", `^(\d)`, `a\\b`, `x\ty`, "5", `a\b:x` + "\t" + `y`},
		{"unmatched optional group is empty", `^(a)?(\d+)`, "p", `[\1]\2`, "42", "p:[]42"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mw, err := middleware.NewTagging("tag", taggingConfig(c.pattern, c.pool, c.tn, ".*", map[string]any{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, phase := range []middleware.Context{consume, publish} {
				m, err := mw.HandleInbound(ctx, msg("+27", c.to), phase)
				if err != nil {
					t.Fatal(err)
				}
				tag, ok := middleware.TagOf(m.HelperMetadata)
				got := ""
				if ok {
					got = tag.String()
				}
				if got != c.want {
					t.Errorf("%s: tag %q, want %q", phase.Phase, got, c.want)
				}
			}
		})
	}
	// A message with no to_addr is left alone.
	mw, _ := middleware.NewTagging("tag", taggingConfig(".*", "p", "t", ".*", map[string]any{}))
	if m, _ := mw.HandleInbound(ctx, msg("+27", ""), consume); m.HelperMetadata != nil {
		t.Errorf("null to_addr tagged: %v", m.HelperMetadata)
	}
}

func TestTaggingOutbound(t *testing.T) {
	tmpl := map[string]any{
		"from_addr": `\1`,
		"transport_metadata": map[string]any{
			"smpp": map[string]any{"source_addr": `src-\g<num>`, "priority": 3},
		},
		"helper_metadata": map[string]any{"extra": true},
		"custom_field":    []any{"kept", 1},
	}
	mw, err := middleware.NewTagging("tag", taggingConfig(".*", "p", "t", `^tag(?P<num>\d+)$`, tmpl))
	if err != nil {
		t.Fatal(err)
	}
	m := msg("", "+27761234567")
	m.TransportMetadata = schemas.Metadata{"smpp": map[string]any{"keep": "me"}, "other": "x"}
	middleware.SetTag(m, middleware.Tag{Pool: "pool", Name: "tag42"})
	out, err := mw.HandleOutbound(ctx, m, publish)
	if err != nil {
		t.Fatal(err)
	}
	if str(out.FromAddr) != "42" || str(out.ToAddr) != "+27761234567" {
		t.Errorf("addresses: from %q to %q", str(out.FromAddr), str(out.ToAddr))
	}
	js, _ := out.MarshalJSON()
	for _, want := range []string{
		`"source_addr":"src-42"`, `"priority":3`, `"keep":"me"`, `"other":"x"`,
		`"extra":true`, `"tag":{"tag":["pool","tag42"]}`, `"custom_field": ["kept",1]`,
	} {
		if !strings.Contains(string(js), want) {
			t.Errorf("outbound lacks %s:\n%s", want, js)
		}
	}
	for _, c := range []struct {
		name string
		tag  *middleware.Tag
	}{
		{"untagged", nil},
		{"tag name not matching", &middleware.Tag{Pool: "pool", Name: "other"}},
		{"pool is not examined", &middleware.Tag{Pool: "tag1", Name: "nope"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := msg("1234", "+27")
			if c.tag != nil {
				middleware.SetTag(m, *c.tag)
			}
			out, err := mw.HandleOutbound(ctx, m, consume)
			if err != nil || str(out.FromAddr) != "1234" || out.TransportMetadata != nil {
				t.Errorf("modified: %v %v %v", str(out.FromAddr), out.TransportMetadata, err)
			}
		})
	}
	// A template that makes an invalid message is an error, not a panic.
	bad, _ := middleware.NewTagging("tag", taggingConfig(".*", "p", "t", ".*", map[string]any{"to_addr": 5}))
	m = msg("", "+27")
	middleware.SetTag(m, middleware.Tag{Pool: "p", Name: "t"})
	if _, err := bad.HandleOutbound(ctx, m, publish); err == nil {
		t.Error("to_addr: 5 accepted")
	}
}

func TestTaggingConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  *middleware.TaggingConfig
		want string
	}{
		{&middleware.TaggingConfig{Outgoing: &middleware.TaggingOutgoing{TagnamePattern: "x", MsgTemplate: map[string]any{}}}, "key incoming"},
		{&middleware.TaggingConfig{Incoming: &middleware.TaggingIncoming{AddrPattern: "x", TagpoolTemplate: "p", TagnameTemplate: "t"}}, "key outgoing"},
		{taggingConfig("", "p", "t", "x", map[string]any{}), "key incoming.addr_pattern"},
		{taggingConfig("x", "", "t", "x", map[string]any{}), "key incoming.tagpool_template"},
		{taggingConfig("x", "p", "", "x", map[string]any{}), "key incoming.tagname_template"},
		{taggingConfig("x", "p", "t", "", map[string]any{}), "key outgoing.tagname_pattern"},
		{taggingConfig("x", "p", "t", "x", nil), "key outgoing.msg_template"},
		{taggingConfig("(", "p", "t", "x", map[string]any{}), "key incoming.addr_pattern"},
		{taggingConfig("(a)", `\2`, "t", "x", map[string]any{}), "refers to group 2"},
		{taggingConfig("(a)", "p", `\g<nope>`, "x", map[string]any{}), "unknown group name"},
		{taggingConfig("x", "p", "t", "(x)", map[string]any{"a": map[string]any{"b": `\3`}}), "key outgoing.msg_template.a.b"},
		{taggingConfig("x", "p", `\g<1`, "x", map[string]any{}), "missing < >"},
	} {
		t.Run(fmt.Sprint(c.want), func(t *testing.T) {
			if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate = %v, want %q", err, c.want)
			}
		})
	}
}

func FuzzTaggingTemplate(f *testing.F) {
	for _, s := range []string{`\1`, `\g<1>`, `\g<name>`, `a\\b\n`, `\`, `\g<`, `\99`} {
		f.Add(s, "1234567")
	}
	f.Fuzz(func(t *testing.T, tmpl, addr string) {
		mw, err := middleware.NewTagging("tag", taggingConfig(`(?P<name>\d)(\d*)`, tmpl, tmpl, ".*", map[string]any{"x": tmpl}))
		if err != nil {
			return
		}
		m := msg("", addr)
		if _, err := mw.HandleInbound(ctx, m, consume); err != nil {
			t.Fatal(err)
		}
		_, _ = mw.HandleOutbound(ctx, m, publish)
	})
}
