package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// resource is one sandbox resource: it answers the commands addressed to
// <name>.<command>.
type resource interface {
	handle(k *call, cmd string, cm command) command
}

// initializer is a resource that sends something to each new process.
type initializer interface {
	sandboxInit(k *call, p *process) error
}

func newResource(name string, spec ResourceSpec, s *Sandbox) resource {
	switch spec.Cls {
	case ClsKV:
		return &kvResource{name: name, spec: spec, s: s}
	case ClsOutbound:
		return outboundResource{}
	case ClsHTTP:
		return newHTTPResource(spec)
	case ClsLog:
		return &logResource{name: name, s: s}
	case ClsJS:
		return jsResource{s: s}
	default:
		return configResource{values: spec.Values}
	}
}

// ---- js

type jsResource struct{ s *Sandbox }

func (jsResource) handle(_ *call, cmd string, _ command) command {
	return fail("unknown command js." + cmd)
}

func (r jsResource) sandboxInit(k *call, p *process) error {
	b, err := json.Marshal(command{"cmd": "initialize", "cmd_id": k.nextID(), "reply": false,
		"javascript": r.s.cfg.Javascript, "app_context": r.s.cfg.AppContext, "reuse_context": r.s.cfg.ReuseContext})
	if err != nil {
		return err
	}
	return p.send(b)
}

// ---- log

type logResource struct {
	name string
	s    *Sandbox
}

// Python logging levels, as the log command's level field gives them.
const (
	pyDebug    = 10
	pyInfo     = 20
	pyWarning  = 30
	pyError    = 40
	pyCritical = 50
)

func slogLevel(py int) slog.Level {
	switch {
	case py >= pyCritical:
		return slog.LevelError + 4
	case py >= pyError:
		return slog.LevelError
	case py >= pyWarning:
		return slog.LevelWarn
	case py >= pyInfo:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

func (r *logResource) log(k *call, level slog.Level, msg string) {
	r.s.log.Log(context.Background(), level, msg, "sandbox_id", k.sandboxID, "resource", r.name)
}

func (r *logResource) handle(k *call, cmd string, cm command) command {
	level := pyInfo
	switch cmd {
	case "debug":
		level = pyDebug
	case "info":
		level = pyInfo
	case "warning":
		level = pyWarning
	case "error":
		level = pyError
	case "critical":
		level = pyCritical
	case "log":
		if v, present := cm["level"]; present && v != nil {
			f, isNum := v.(float64)
			if !isNum || f != math.Trunc(f) {
				return fail("Level must be an integer")
			}
			level = int(f)
		}
	default:
		return fail("unknown command log." + cmd)
	}
	v, present := cm["msg"]
	if !present || v == nil {
		return fail("Value expected for msg")
	}
	msg, isStr := v.(string)
	if !isStr {
		b, _ := json.Marshal(v)
		msg = string(b)
	}
	r.log(k, slogLevel(level), msg)
	return ok(nil)
}

// ---- config

type configResource struct{ values map[string]any }

func (r configResource) handle(_ *call, cmd string, cm command) command {
	if cmd != "get" {
		return fail("unknown command config." + cmd)
	}
	key, isStr := cm.str("key")
	if !isStr {
		return fail("Value expected for key")
	}
	return ok(command{"value": r.values[key]})
}

// ---- outbound

type outboundResource struct{}

func (outboundResource) handle(k *call, cmd string, cm command) command {
	content, hasContent := cm["content"]
	text, isStr := content.(string)
	if !hasContent || (content != nil && !isStr) {
		return fail("content is required: a string or null")
	}
	cont := true
	if v, present := cm["continue_session"]; present {
		b, isBool := v.(bool)
		if !isBool {
			return fail("continue_session must be true or false")
		}
		cont = b
	}
	var err error
	switch cmd {
	case "reply_to", "reply_to_group":
		id, _ := cm.str("in_reply_to")
		if k.msg == nil || id != k.msg.MessageID {
			return fail(fmt.Sprintf("Could not find original message with id: %q", id))
		}
		if cmd == "reply_to" {
			err = k.c.ReplyTo(k.msg, text, cont)
		} else {
			err = k.c.ReplyToGroup(k.msg, text, cont)
		}
	case "send_to":
		to, isStr := cm.str("to_addr")
		if !isStr || to == "" {
			return fail("to_addr is required")
		}
		endpoint := "default"
		if v, present := cm["endpoint"]; present && v != nil {
			e, isStr := v.(string)
			if !isStr {
				return fail("endpoint must be a string")
			}
			endpoint = e
		}
		err = k.c.SendTo(to, text, endpoint)
	default:
		return fail("unknown command outbound." + cmd)
	}
	if err != nil {
		return fail(err.Error())
	}
	return ok(nil)
}

// ---- kv

type kvResource struct {
	name string
	spec ResourceSpec
	s    *Sandbox
}

// kvState is one sandbox id's keys, stored as the record key's value in
// the worker's group table.
type kvState struct {
	Keys  map[string]kvEntry `json:"keys"`
	dirty bool
}

type kvEntry struct {
	Value json.RawMessage `json:"v"`
	// Expires is the Unix time in milliseconds after which the key is
	// gone; 0 never.
	Expires int64 `json:"exp,omitempty"`
}

func loadKV(c appContext) (*kvState, error) {
	st := &kvState{}
	if _, err := c.LoadState(st); err != nil {
		return nil, fmt.Errorf("kv state: %w", err)
	}
	if st.Keys == nil {
		st.Keys = map[string]kvEntry{}
	}
	now := time.Now().UnixMilli()
	for k, e := range st.Keys {
		if e.Expires != 0 && e.Expires <= now {
			delete(st.Keys, k)
			st.dirty = true
		}
	}
	return st, nil
}

func (st *kvState) save(c appContext) error {
	if len(st.Keys) == 0 {
		c.SetState(nil)
		return nil
	}
	return c.SaveState(st)
}

func (r *kvResource) handle(k *call, cmd string, cm command) command {
	if k.kv == nil {
		st, err := loadKV(k.c)
		if err != nil {
			return fail(err.Error())
		}
		k.kv = st
	}
	st := k.kv
	key, isStr := cm.str("key")
	if !isStr {
		return fail("Value expected for key")
	}
	switch cmd {
	case "get":
		e, found := st.Keys[key]
		if !found {
			return ok(command{"value": nil})
		}
		return ok(command{"value": e.Value})
	case "set":
		if !r.checkKeys(k, key) {
			return fail("Too many keys")
		}
		v, err := json.Marshal(cm["value"])
		if err != nil {
			return fail(err.Error())
		}
		e := kvEntry{Value: v}
		if secs, present := cm["seconds"]; present && secs != nil {
			f, isNum := secs.(float64)
			if !isNum || f <= 0 {
				return fail("seconds must be a positive number or null")
			}
			e.Expires = time.Now().Add(time.Duration(f * float64(time.Second))).UnixMilli()
		}
		st.Keys[key] = e
		st.dirty = true
		return ok(nil)
	case "delete":
		_, existed := st.Keys[key]
		if existed {
			delete(st.Keys, key)
			st.dirty = true
		}
		return ok(command{"existed": existed})
	case "incr":
		amount := int64(1)
		if v, present := cm["amount"]; present && v != nil {
			f, isNum := v.(float64)
			if !isNum || f != math.Trunc(f) {
				return fail("amount must be an integer")
			}
			amount = int64(f)
		}
		var cur int64
		e, found := st.Keys[key]
		if found {
			if err := json.Unmarshal(e.Value, &cur); err != nil {
				return fail("value is not an integer or out of range")
			}
		} else if !r.checkKeys(k, key) {
			return fail("Too many keys")
		}
		cur += amount
		e.Value, _ = json.Marshal(cur)
		st.Keys[key] = e
		st.dirty = true
		return ok(command{"value": cur})
	}
	return fail("unknown command " + r.name + "." + cmd)
}

// checkKeys reports whether key may be written: an existing key always,
// a new one while the sandbox holds fewer than keys_per_user_hard keys.
// Past keys_per_user_soft a warning is logged.
func (r *kvResource) checkKeys(k *call, key string) bool {
	if _, exists := k.kv.Keys[key]; exists {
		return true
	}
	n := len(k.kv.Keys) + 1
	if n > r.spec.KeysPerUserHard {
		r.s.report(k, slog.LevelError, fmt.Sprintf("Key store hard limit of %d keys reached for sandbox %s. No more keys can be written.", r.spec.KeysPerUserHard, k.sandboxID))
		return false
	}
	if n > r.spec.KeysPerUserSoft {
		r.s.report(k, slog.LevelWarn, fmt.Sprintf("Key store soft limit of %d keys reached for sandbox %s. Once the hard limit of %d is reached no more keys can be written.", r.spec.KeysPerUserSoft, k.sandboxID, r.spec.KeysPerUserHard))
	}
	return true
}

// ---- http

type httpResource struct {
	timeout   time.Duration
	dataLimit int64
	verified  *http.Client
	insecure  *http.Client
}

func newHTTPResource(spec ResourceSpec) *httpResource {
	t := time.Duration(spec.Timeout) * time.Second
	tr := http.DefaultTransport.(*http.Transport).Clone()
	insecureTr := http.DefaultTransport.(*http.Transport).Clone()
	insecureTr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by VERIFY_NONE
	return &httpResource{timeout: t, dataLimit: int64(spec.DataLimit),
		verified: &http.Client{Timeout: t, Transport: tr}, insecure: &http.Client{Timeout: t, Transport: insecureTr}}
}

var verifyOptions = map[string]bool{"VERIFY_NONE": true, "VERIFY_PEER": true, "VERIFY_CLIENT_ONCE": true, "VERIFY_FAIL_IF_NO_PEER_CERT": true}

var sslMethods = map[string]bool{"SSLv3": true, "SSLv23": true, "TLSv1": true, "TLSv1_1": true, "TLSv1_2": true}

func (r *httpResource) handle(k *call, cmd string, cm command) command {
	method := map[string]string{"get": http.MethodGet, "head": http.MethodHead, "post": http.MethodPost,
		"put": http.MethodPut, "patch": http.MethodPatch, "delete": http.MethodDelete}[cmd]
	if method == "" {
		return fail("unknown command http." + cmd)
	}
	target, _ := cm.str("url")
	if target == "" {
		return fail("No URL given")
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fail("URL must be http or https")
	}
	client := r.verified
	if v, present := cm["verify_options"]; present && v != nil {
		list, isList := v.([]any)
		if !isList {
			return fail("verify_options must be a list")
		}
		for _, o := range list {
			name, _ := o.(string)
			if !verifyOptions[name] {
				return fail(fmt.Sprintf("unknown verify option %v", o))
			}
			if name == "VERIFY_NONE" {
				client = r.insecure
			}
		}
	}
	if v, present := cm["ssl_method"]; present && v != nil {
		// Go negotiates the best TLS version itself; the names are checked
		// for compatibility.
		if name, _ := v.(string); !sslMethods[name] {
			return fail(fmt.Sprintf("unknown ssl_method %v", v))
		}
	}
	var body io.Reader
	contentType := ""
	if v, present := cm["data"]; present && v != nil {
		s, isStr := v.(string)
		if !isStr {
			return fail("data must be a string")
		}
		body = strings.NewReader(s)
	}
	if v, present := cm["files"]; present && v != nil {
		files, isMap := v.(map[string]any)
		if !isMap {
			return fail("files must be a dictionary")
		}
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for _, field := range sortedKeys(files) {
			f, _ := files[field].(map[string]any)
			name, _ := f["file_name"].(string)
			ct, _ := f["content_type"].(string)
			data, _ := f["data"].(string)
			raw, err := base64.StdEncoding.DecodeString(data)
			if err != nil {
				return fail(fmt.Sprintf("files.%s.data: not base64: %v", field, err))
			}
			h := make(map[string][]string)
			h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name=%q; filename=%q`, field, name)}
			if ct != "" {
				h["Content-Type"] = []string{ct}
			}
			part, err := mw.CreatePart(h)
			if err != nil {
				return fail(err.Error())
			}
			_, _ = part.Write(raw)
		}
		_ = mw.Close()
		body, contentType = &buf, mw.FormDataContentType()
	}
	ctx, cancel := context.WithTimeout(k.c.Context(), r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fail(err.Error())
	}
	if v, present := cm["headers"]; present && v != nil {
		hs, isMap := v.(map[string]any)
		if !isMap {
			return fail("headers must be a dictionary")
		}
		for name, vals := range hs {
			switch vv := vals.(type) {
			case string:
				req.Header.Add(name, vv)
			case []any:
				for _, one := range vv {
					req.Header.Add(name, fmt.Sprint(one))
				}
			default:
				return fail(fmt.Sprintf("header %s: values must be a list of strings", name))
			}
		}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail(err.Error())
	}
	defer resp.Body.Close()
	if resp.ContentLength > r.dataLimit {
		return fail(fmt.Sprintf("Received %d bytes, maximum of %d bytes allowed.", resp.ContentLength, r.dataLimit))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.dataLimit+1))
	if err != nil {
		return fail(err.Error())
	}
	if int64(len(b)) > r.dataLimit {
		return fail(fmt.Sprintf("Received more than %d bytes, maximum of %d bytes allowed.", r.dataLimit, r.dataLimit))
	}
	return ok(command{"body": string(b), "code": resp.StatusCode})
}
