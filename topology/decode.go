package topology

import (
	"encoding"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decodeStrict decodes a YAML mapping node into the struct pointed to by
// out, field by field, so that every error names its key: unknown keys,
// values of the wrong type, nested sections. Struct fields are matched by
// their `yaml` tag; embedded structs tagged `yaml:",inline"` contribute
// their fields. Keys in skip are left alone (the caller handles them).
func decodeStrict(node *yaml.Node, out any, path string, skip map[string]bool) error {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("internal: decodeStrict needs a pointer to a struct, got %T", out)
	}
	return decodeStruct(node, v.Elem(), path, skip)
}

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType        = reflect.TypeFor[time.Duration]()
)

// fieldsOf returns the settable fields of struct value v by YAML key,
// flattening inline embedded structs.
func fieldsOf(v reflect.Value) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			fv := v.Field(i)
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					fv.Set(reflect.New(fv.Type().Elem()))
				}
				fv = fv.Elem()
			}
			for k, sub := range fieldsOf(fv) {
				out[k] = sub
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = v.Field(i)
	}
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func decodeStruct(node *yaml.Node, v reflect.Value, path string, skip map[string]bool) error {
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return nil
	}
	if node.Kind != yaml.MappingNode {
		return &KeyError{Key: path, Line: node.Line, Msg: fmt.Sprintf("must be a mapping, got %s", describeNode(node))}
	}
	fields := fieldsOf(v)
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, val := node.Content[i], node.Content[i+1]
		key := k.Value
		if skip[key] {
			continue
		}
		kp := joinPath(path, key)
		if seen[key] {
			return &KeyError{Key: kp, Line: k.Line, Msg: "given twice"}
		}
		seen[key] = true
		fv, ok := fields[key]
		if !ok {
			return &KeyError{Key: kp, Line: k.Line, Msg: "unknown key" + suggest(key, fields)}
		}
		if err := decodeValue(val, fv, kp); err != nil {
			return err
		}
	}
	return nil
}

func decodeValue(node *yaml.Node, fv reflect.Value, path string) error {
	t := fv.Type()
	custom := customDecoding(t)
	if (t.Kind() == reflect.Map || t.Kind() == reflect.Slice) && customDecoding(t.Elem()) {
		custom = true // let the element type decode itself
	}
	switch {
	case !custom && t.Kind() == reflect.Struct && t != durationType:
		return decodeStruct(node, fv, path, nil)
	case !custom && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		if node.Tag == "!!null" {
			return nil
		}
		if fv.IsNil() {
			fv.Set(reflect.New(t.Elem()))
		}
		return decodeStruct(node, fv.Elem(), path, nil)
	case !custom && t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.Struct:
		if node.Tag == "!!null" {
			return nil
		}
		if node.Kind != yaml.MappingNode {
			return &KeyError{Key: path, Line: node.Line, Msg: fmt.Sprintf("must be a mapping, got %s", describeNode(node))}
		}
		if fv.IsNil() {
			fv.Set(reflect.MakeMap(t))
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			elem := reflect.New(t.Elem()).Elem()
			key := node.Content[i].Value
			if err := decodeStruct(node.Content[i+1], elem, joinPath(path, key), nil); err != nil {
				return err
			}
			fv.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), elem)
		}
		return nil
	case !custom && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		if node.Tag == "!!null" {
			return nil
		}
		if node.Kind != yaml.SequenceNode {
			return &KeyError{Key: path, Line: node.Line, Msg: fmt.Sprintf("must be a list, got %s", describeNode(node))}
		}
		out := reflect.MakeSlice(t, len(node.Content), len(node.Content))
		for i, item := range node.Content {
			if err := decodeStruct(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i), nil); err != nil {
				return err
			}
		}
		fv.Set(out)
		return nil
	}
	if err := node.Decode(fv.Addr().Interface()); err != nil {
		return &KeyError{Key: path, Line: node.Line, Msg: cleanYAMLError(err, node, t)}
	}
	return nil
}

// customDecoding reports whether t decodes itself from YAML or text.
func customDecoding(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType)
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), n.Value)
}

func cleanYAMLError(err error, node *yaml.Node, t reflect.Type) string {
	var te *yaml.TypeError
	if ok := asTypeError(err, &te); ok {
		return fmt.Sprintf("must be %s, got %s", typeName(t), describeNode(node))
	}
	msg := err.Error()
	if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "yaml: ") && i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

func asTypeError(err error, te **yaml.TypeError) bool {
	e, ok := err.(*yaml.TypeError)
	if ok {
		*te = e
	}
	return ok
}

func typeName(t reflect.Type) string {
	if t == durationType {
		return "a duration such as 30s or 5m"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(typeName(t.Elem()), "a ")
	case reflect.Map:
		return "a mapping"
	}
	return t.String()
}

// suggest returns a "did you mean" hint for an unknown key.
func suggest(key string, fields map[string]reflect.Value) string {
	best, bestD := "", 3
	for k := range fields {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// KeyError is a config error at one key.
type KeyError struct {
	Key  string
	Line int
	Msg  string
}

func (e *KeyError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: key %s: %s", e.Line, e.Key, e.Msg)
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// interpolate replaces ${VAR} and ${VAR:-default} in every scalar value of
// the tree with the environment's values ("$$" is a literal "$"). A
// variable that is unset and has no default is an error naming its line.
func interpolate(n *yaml.Node, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var walk func(n *yaml.Node, isKey bool) error
	walk = func(n *yaml.Node, isKey bool) error {
		switch n.Kind {
		case yaml.ScalarNode:
			if isKey || !strings.Contains(n.Value, "$") {
				return nil
			}
			var err error
			n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
				if m == "$$" {
					return "$"
				}
				sub := envRef.FindStringSubmatch(m)
				// As in the shell: ${VAR:-default} also uses the default
				// when VAR is set but empty.
				if v, ok := lookup(sub[1]); ok && (v != "" || sub[2] == "") {
					return v
				}
				if sub[2] != "" {
					return sub[3]
				}
				if err == nil {
					err = &KeyError{Line: n.Line, Msg: fmt.Sprintf("environment variable %s is not set (use ${%s:-default} for a default)", sub[1], sub[1])}
				}
				return ""
			})
			if n.Tag == "!!str" && n.Style == 0 {
				// Let "${PORT}" decode as an int once substituted.
				n.Tag = ""
			}
			return err
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if err := walk(n.Content[i], true); err != nil {
					return err
				}
				if err := walk(n.Content[i+1], false); err != nil {
					return err
				}
			}
		default:
			for _, c := range n.Content {
				if err := walk(c, false); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(n, false)
}

// DuplicateKeys reports YAML keys that a config struct declares twice
// (for instance through two embedded structs), which would make one of
// them impossible to set. Tests of a binary's registry call it for every
// kind's config.
func DuplicateKeys(cfg any) []string {
	v := reflect.ValueOf(cfg)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	seen := map[string]bool{}
	var dups []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if strings.Contains(opts, "inline") {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				walk(ft)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if seen[name] {
				dups = append(dups, name)
			}
			seen[name] = true
		}
	}
	walk(v.Type())
	return dups
}
