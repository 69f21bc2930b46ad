package middleware

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/vumi-kafka/vumi/schemas"
)

// Tag is a Vumi tag: a (pool, name) pair, carried in a message's
// helper_metadata.tag.tag as a two-element list.
type Tag struct{ Pool, Name string }

// String returns "pool:name", the form Vumi used in keys.
func (t Tag) String() string { return t.Pool + ":" + t.Name }

// TagOf returns the tag TaggingMiddleware (or an application) put on a
// message: helper_metadata.tag.tag = [pool, name] (Vumi's map_msg_to_tag).
func TagOf(hm schemas.Metadata) (Tag, bool) {
	tm, ok := hm["tag"].(map[string]any)
	if !ok {
		return Tag{}, false
	}
	list, ok := tm["tag"].([]any)
	if !ok || len(list) != 2 {
		return Tag{}, false
	}
	pool, ok1 := list[0].(string)
	name, ok2 := list[1].(string)
	if !ok1 || !ok2 {
		return Tag{}, false
	}
	return Tag{pool, name}, true
}

// SetTag puts tag on a message's helper_metadata (Vumi's add_tag_to_msg).
func SetTag(m *schemas.UserMessage, tag Tag) {
	if m.HelperMetadata == nil {
		m.HelperMetadata = schemas.Metadata{}
	}
	tm, ok := m.HelperMetadata["tag"].(map[string]any)
	if !ok {
		tm = map[string]any{}
		m.HelperMetadata["tag"] = tm
	}
	tm["tag"] = []any{tag.Pool, tag.Name}
}

// TaggingIncoming is the incoming section of TaggingConfig.
type TaggingIncoming struct {
	// AddrPattern is a regular expression matched at the start of the
	// to_addr of inbound messages; messages that do not match are left
	// alone. Required.
	AddrPattern string `yaml:"addr_pattern"`
	// TagpoolTemplate gives the tag's pool, expanded from the match as
	// Python's match.expand does (\1, \g<1>, \g<name>). Required.
	TagpoolTemplate string `yaml:"tagpool_template"`
	// TagnameTemplate gives the tag's name, expanded likewise. Required.
	TagnameTemplate string `yaml:"tagname_template"`
}

// TaggingOutgoing is the outgoing section of TaggingConfig.
type TaggingOutgoing struct {
	// TagnamePattern is a regular expression matched at the start of the
	// tag name of outbound messages (the pool is not examined). Required.
	TagnamePattern string `yaml:"tagname_pattern"`
	// MsgTemplate holds fields to set on matching outbound messages:
	// strings are expanded from the match, dicts are merged recursively,
	// other values are set as they are. Required (may be empty).
	MsgTemplate map[string]any `yaml:"msg_template"`
}

// TaggingConfig configures Tagging (Vumi's
// vumi.middleware.tagger.TaggingMiddleware).
type TaggingConfig struct {
	Incoming *TaggingIncoming `yaml:"incoming"`
	Outgoing *TaggingOutgoing `yaml:"outgoing"`
}

// Validate compiles the patterns and templates.
func (c *TaggingConfig) Validate() error {
	_, err := compileTagging(c)
	return err
}

type compiledTagging struct {
	addrRe             *regexp.Regexp
	poolTmpl, nameTmpl template
	tagRe              *regexp.Regexp
	msgTemplate        map[string]any // strings replaced by template values
}

func compileTagging(c *TaggingConfig) (*compiledTagging, error) {
	if c.Incoming == nil {
		return nil, errors.New("key incoming: is required (addr_pattern, tagpool_template, tagname_template)")
	}
	if c.Outgoing == nil {
		return nil, errors.New("key outgoing: is required (tagname_pattern, msg_template)")
	}
	in, out := c.Incoming, c.Outgoing
	for _, req := range []struct{ key, v string }{
		{"incoming.addr_pattern", in.AddrPattern}, {"incoming.tagpool_template", in.TagpoolTemplate},
		{"incoming.tagname_template", in.TagnameTemplate}, {"outgoing.tagname_pattern", out.TagnamePattern},
	} {
		if req.v == "" {
			return nil, fmt.Errorf("key %s: is required", req.key)
		}
	}
	if out.MsgTemplate == nil {
		return nil, errors.New("key outgoing.msg_template: is required (a dict, may be empty)")
	}
	ct := &compiledTagging{}
	var err error
	if ct.addrRe, err = compileAnchored(in.AddrPattern); err != nil {
		return nil, fmt.Errorf("key incoming.addr_pattern: %w", err)
	}
	if ct.poolTmpl, err = parseTemplate(in.TagpoolTemplate, ct.addrRe); err != nil {
		return nil, fmt.Errorf("key incoming.tagpool_template: %w", err)
	}
	if ct.nameTmpl, err = parseTemplate(in.TagnameTemplate, ct.addrRe); err != nil {
		return nil, fmt.Errorf("key incoming.tagname_template: %w", err)
	}
	if ct.tagRe, err = compileAnchored(out.TagnamePattern); err != nil {
		return nil, fmt.Errorf("key outgoing.tagname_pattern: %w", err)
	}
	if ct.msgTemplate, err = compileMsgTemplate(out.MsgTemplate, ct.tagRe, "outgoing.msg_template"); err != nil {
		return nil, err
	}
	return ct, nil
}

// compileAnchored compiles a pattern that, like Python's re.match, must
// match at the start of the string (but not necessarily to its end).
func compileAnchored(p string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(p); err != nil {
		return nil, err
	}
	return regexp.Compile(`\A(?:` + p + `)`)
}

func compileMsgTemplate(t map[string]any, re *regexp.Regexp, path string) (map[string]any, error) {
	out := make(map[string]any, len(t))
	for k, v := range t {
		switch x := v.(type) {
		case string:
			tm, err := parseTemplate(x, re)
			if err != nil {
				return nil, fmt.Errorf("key %s.%s: %w", path, k, err)
			}
			out[k] = tm
		case map[string]any:
			sub, err := compileMsgTemplate(x, re, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = sub
		default:
			out[k] = v
		}
	}
	return out, nil
}

// template is a parsed Python match.expand template: literal text and
// group references.
type template []templatePart

type templatePart struct {
	lit   string
	group int // -1 for a literal
}

func (t template) expand(s string, loc []int) string {
	if len(t) == 1 && t[0].group < 0 {
		return t[0].lit
	}
	var b strings.Builder
	for _, p := range t {
		if p.group < 0 {
			b.WriteString(p.lit)
			continue
		}
		if i := 2 * p.group; i+1 < len(loc) && loc[i] >= 0 {
			b.WriteString(s[loc[i]:loc[i+1]])
		}
	}
	return b.String()
}

var escapes = map[byte]string{'n': "\n", 't': "\t", 'r': "\r", 'a': "\a", 'b': "\b", 'f': "\f", 'v': "\v", '\\': "\\"}

// parseTemplate parses a Python re template: \N and \NN (group numbers),
// \g<N> and \g<name>, the escapes \n \t \r \a \b \f \v \\; other
// backslashes are kept as they are. Group references must exist in re.
func parseTemplate(s string, re *regexp.Regexp) (template, error) {
	var out template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, templatePart{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	group := func(n int) error {
		if n > re.NumSubexp() {
			return fmt.Errorf("template %q refers to group %d but the pattern has %d groups", s, n, re.NumSubexp())
		}
		flush()
		out = append(out, templatePart{group: n})
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			lit.WriteByte(c)
			continue
		}
		n := s[i+1]
		switch {
		case n == 'g':
			end := strings.IndexByte(s[i:], '>')
			if i+2 >= len(s) || s[i+2] != '<' || end < 0 {
				return nil, fmt.Errorf("template %q: missing < > after \\g", s)
			}
			ref := s[i+3 : i+end]
			if num, err := strconv.Atoi(ref); err == nil {
				if num < 0 {
					return nil, fmt.Errorf("template %q: bad group number %q", s, ref)
				}
				if err := group(num); err != nil {
					return nil, err
				}
			} else {
				idx := re.SubexpIndex(ref)
				if idx < 0 {
					return nil, fmt.Errorf("template %q refers to unknown group name %q", s, ref)
				}
				if err := group(idx); err != nil {
					return nil, err
				}
			}
			i += end
		case n >= '1' && n <= '9':
			num := int(n - '0')
			if i+2 < len(s) && s[i+2] >= '0' && s[i+2] <= '9' {
				num = num*10 + int(s[i+2]-'0')
				i++
			}
			if err := group(num); err != nil {
				return nil, err
			}
			i++
		default:
			if e, ok := escapes[n]; ok {
				lit.WriteString(e)
			} else {
				lit.WriteByte('\\')
				lit.WriteByte(n)
			}
			i++
		}
	}
	flush()
	if out == nil {
		out = template{{group: -1}}
	}
	return out, nil
}

// Tagging adds a tag to inbound messages whose to_addr matches a pattern,
// and adds fields to outbound messages whose tag name matches a pattern.
type Tagging struct {
	name string
	c    *compiledTagging
}

// NewTagging returns the middleware.
func NewTagging(name string, cfg *TaggingConfig) (*Tagging, error) {
	c, err := compileTagging(cfg)
	if err != nil {
		return nil, err
	}
	return &Tagging{name: name, c: c}, nil
}

// Name implements Middleware.
func (t *Tagging) Name() string { return t.name }

// HandleInbound tags messages whose to_addr matches addr_pattern.
func (t *Tagging) HandleInbound(_ context.Context, m *schemas.UserMessage, _ Context) (*schemas.UserMessage, error) {
	if m.ToAddr == nil {
		return m, nil
	}
	to := *m.ToAddr
	loc := t.c.addrRe.FindStringSubmatchIndex(to)
	if loc == nil {
		return m, nil
	}
	SetTag(m, Tag{Pool: t.c.poolTmpl.expand(to, loc), Name: t.c.nameTmpl.expand(to, loc)})
	return m, nil
}

// HandleOutbound merges msg_template into messages whose tag name matches
// tagname_pattern.
func (t *Tagging) HandleOutbound(_ context.Context, m *schemas.UserMessage, _ Context) (*schemas.UserMessage, error) {
	tag, ok := TagOf(m.HelperMetadata)
	if !ok {
		return m, nil
	}
	loc := t.c.tagRe.FindStringSubmatchIndex(tag.Name)
	if loc == nil || len(t.c.msgTemplate) == 0 {
		return m, nil
	}
	js, err := m.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode message for msg_template: %w", err)
	}
	payload := map[string]any{}
	if err := jsonUnmarshal(js, &payload); err != nil {
		return nil, fmt.Errorf("decode message for msg_template: %w", err)
	}
	deepUpdate(payload, t.c.msgTemplate, tag.Name, loc)
	out, err := jsonMarshal(payload)
	if err != nil {
		return nil, fmt.Errorf("msg_template: %w", err)
	}
	updated, err := schemas.ParseUserMessage(out)
	if err != nil {
		return nil, fmt.Errorf("msg_template made an invalid message: %w", err)
	}
	return updated, nil
}

// deepUpdate sets tmpl's values into dst: templates expanded, dicts merged
// recursively (a non-dict value in dst is replaced by a dict).
func deepUpdate(dst map[string]any, tmpl map[string]any, s string, loc []int) {
	for k, v := range tmpl {
		switch x := v.(type) {
		case template:
			dst[k] = x.expand(s, loc)
		case map[string]any:
			sub, ok := dst[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
				dst[k] = sub
			}
			deepUpdate(sub, x, s, loc)
		default:
			dst[k] = x
		}
	}
}
