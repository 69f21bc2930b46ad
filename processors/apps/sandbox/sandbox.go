// Package sandbox is Vumi's Sandbox application and its JavaScript
// flavours (JsSandbox, JsFileSandbox): the application logic runs in a
// separate, resource-limited process that talks to the worker in
// line-based JSON commands, and reaches the outside world only through
// the resources the config offers it (kv, outbound, http, log, config).
//
// One warm process per worker handles messages one at a time (the goka
// callbacks of the worker's partitions take turns). A process that
// overruns its timeout or recv_limit is killed; one that crashes is
// reported; either way the message goes to <transport_name>.failures and
// the next message gets a fresh process. docs/sandbox.md has more.
package sandbox

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

//go:embed sandboxer.js
var sandboxerJS []byte

// SandboxerJS returns the JavaScript sandbox script run by JsSandbox.
func SandboxerJS() []byte { return append([]byte(nil), sandboxerJS...) }

func kind(name string, aliases []string, fl flavour, summary string) *topology.Kind {
	return &topology.Kind{
		Name: name, Aliases: aliases, Role: topology.RoleApplication, Summary: summary,
		NewConfig: func() topology.WorkerConfig { return &Config{flavour: fl} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				sb, err := New(cfg, deps.WorkerLogger(spec.Name))
				if err != nil {
					return err
				}
				defer sb.Close()
				return app.Worker(deps, spec, &cfg.Config, sb, app.Options{AllowedEndpoints: []string{"*"}}).Run(ctx)
			}), nil
		},
	}
}

// Kinds returns the sandbox kinds: sandbox, js_sandbox, js_file_sandbox.
func Kinds() []*topology.Kind {
	return []*topology.Kind{
		kind("sandbox", []string{"vumi.application.sandbox.Sandbox", "vumi.application.Sandbox"}, plain,
			"runs application logic in a resource-limited child process speaking line-based JSON"),
		kind("js_sandbox", []string{"vumi.application.sandbox.JsSandbox", "vumi.application.JsSandbox"}, jsInline,
			"runs JavaScript application logic on Node.js in a sandbox"),
		kind("js_file_sandbox", []string{"vumi.application.sandbox.JsFileSandbox", "vumi.application.JsFileSandbox"}, jsFile,
			"runs JavaScript application logic from a file on Node.js in a sandbox"),
	}
}

// Sandbox is the application: it implements app.Application,
// app.SessionHandler and app.EventHandler.
type Sandbox struct {
	cfg       *Config
	log       *slog.Logger
	resources map[string]resource
	extraArgs []string
	scriptDir string

	mu   sync.Mutex
	proc *process
}

// New prepares a sandbox application (no process is started until the
// first message).
func New(cfg *Config, log *slog.Logger) (*Sandbox, error) {
	s := &Sandbox{cfg: cfg, log: log, resources: map[string]resource{}}
	for name, spec := range cfg.Sandbox {
		s.resources[name] = newResource(name, spec, s)
	}
	if cfg.flavour != plain && len(cfg.Args) == 0 {
		dir, err := os.MkdirTemp("", "vumi-sandboxer-")
		if err != nil {
			return nil, fmt.Errorf("sandboxer script: %w", err)
		}
		path := filepath.Join(dir, "sandboxer.js")
		if err := os.WriteFile(path, sandboxerJS, 0o444); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("sandboxer script: %w", err)
		}
		s.scriptDir, s.extraArgs = dir, append(nodeFlags(cfg), path)
	}
	return s, nil
}

// nodeFlags size V8's heap below the RLIMIT_DATA of the process, so that
// V8 collects garbage (and a memory bomb ends in V8's own out-of-memory
// abort) before malloc fails under the rlimit: old space half the data
// limit, young space semi-spaces of 8 MiB.
func nodeFlags(cfg *Config) []string {
	data := cfg.rlimits[unix.RLIMIT_DATA].Soft
	if data == unix.RLIM_INFINITY || data == 0 {
		return nil
	}
	return []string{fmt.Sprintf("--max-old-space-size=%d", max(data/mb/2, 16)), "--max-semi-space-size=8"}
}

// Close kills the warm process and removes the sandboxer script.
func (s *Sandbox) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.stop(5 * time.Second)
		s.proc = nil
	}
	if s.scriptDir != "" {
		_ = os.RemoveAll(s.scriptDir)
	}
}

// ConsumeUserMessage implements app.Application.
func (s *Sandbox) ConsumeUserMessage(c *app.Context, m *schemas.UserMessage) error {
	return s.process(c, "inbound-message", m, m)
}

// NewSession implements app.SessionHandler: as in Vumi, a new session is
// an ordinary inbound message for the sandbox.
func (s *Sandbox) NewSession(c *app.Context, m *schemas.UserMessage) error {
	return s.process(c, "inbound-message", m, m)
}

// CloseSession implements app.SessionHandler: the sandbox sees closes too.
func (s *Sandbox) CloseSession(c *app.Context, m *schemas.UserMessage) error {
	return s.process(c, "inbound-message", m, m)
}

// ConsumeAck implements app.EventHandler.
func (s *Sandbox) ConsumeAck(c *app.Context, e *schemas.Event) error {
	return s.process(c, "inbound-event", e, nil)
}

// ConsumeNack implements app.EventHandler.
func (s *Sandbox) ConsumeNack(c *app.Context, e *schemas.Event) error {
	return s.process(c, "inbound-event", e, nil)
}

// ConsumeDeliveryReport implements app.EventHandler.
func (s *Sandbox) ConsumeDeliveryReport(c *app.Context, e *schemas.Event) error {
	return s.process(c, "inbound-event", e, nil)
}

// appContext is what the sandbox needs of app.Context (an interface, so
// that the protocol can be driven without Kafka in benchmarks).
type appContext interface {
	Context() context.Context
	Key() string
	ReplyTo(m *schemas.UserMessage, content string, continueSession bool) error
	ReplyToGroup(m *schemas.UserMessage, content string, continueSession bool) error
	SendTo(toAddr, content, endpoint string) error
	LoadState(v any) (bool, error)
	SaveState(v any) error
	SetState(b []byte)
}

var _ appContext = (*app.Context)(nil)

// call is the handling of one message or event.
type call struct {
	c         appContext
	msg       *schemas.UserMessage // nil for events
	sandboxID string
	kv        *kvState
	cmdID     int
}

func (k *call) nextID() string {
	k.cmdID++
	return fmt.Sprintf("w%d", k.cmdID)
}

// command is one protocol line.
type command map[string]any

func (c command) str(key string) (string, bool) {
	v, ok := c[key].(string)
	return v, ok
}

func (s *Sandbox) process(c appContext, cmd string, payload interface{ MarshalJSON() ([]byte, error) }, msg *schemas.UserMessage) error {
	js, err := payload.MarshalJSON()
	if err != nil {
		return worker.Permanent(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := &call{c: c, msg: msg, sandboxID: c.Key()}
	defer func() {
		if k.kv != nil && k.kv.dirty {
			if err := k.kv.save(c); err != nil {
				s.log.Error("sandbox kv state not saved", "sandbox_id", k.sandboxID, "error", err)
			}
		}
	}()
	p, err := s.ensure(k)
	if err != nil {
		return worker.Temporary(err)
	}
	p.resetRecv()
	line, _ := json.Marshal(command{"cmd": cmd, "cmd_id": k.nextID(), "reply": false, "msg": json.RawMessage(js)})
	if err := p.send(line); err != nil {
		// The process died between messages (e.g. its CPU rlimit): start
		// afresh once.
		s.ended(k, p, nil)
		if p, err = s.ensure(k); err != nil {
			return worker.Temporary(err)
		}
		if err := p.send(line); err != nil {
			s.ended(k, p, nil)
			return worker.Temporary(fmt.Errorf("sandbox: writing command: %w", err))
		}
	}
	timer := time.NewTimer(s.cfg.timeout())
	defer timer.Stop()
	for {
		raw, err := p.next(c.Context(), timer.C)
		if err != nil {
			return s.ended(k, p, err)
		}
		var cm command
		if err := json.Unmarshal(raw, &cm); err != nil {
			s.report(k, slog.LevelError, fmt.Sprintf("Sandbox sent an invalid command line: %.200q", raw))
			continue
		}
		name, _ := cm.str("cmd")
		if isReply, _ := cm["reply"].(bool); isReply {
			continue // a sandbox acknowledging the worker's command
		}
		if name == "done" {
			s.flushStderr(k, p)
			if !*s.cfg.Warm {
				p.stop(5 * time.Second)
				s.proc = nil
			}
			return nil
		}
		reply := s.dispatch(k, cm)
		b, err := json.Marshal(reply)
		if err != nil {
			b, _ = json.Marshal(command{"cmd": name, "cmd_id": cm["cmd_id"], "reply": true, "success": false, "reason": "reply not encodable: " + err.Error()})
		}
		if err := p.send(b); err != nil {
			return s.ended(k, p, err)
		}
	}
}

// ensure returns the running process, starting and initialising one.
func (s *Sandbox) ensure(k *call) (*process, error) {
	if s.proc != nil && s.proc.alive() {
		return s.proc, nil
	}
	p, err := start(s.cfg, s.extraArgs)
	if err != nil {
		return nil, err
	}
	s.proc = p
	for _, name := range sortedKeys(s.resources) {
		if init, ok := s.resources[name].(initializer); ok {
			if err := init.sandboxInit(k, p); err != nil {
				p.stop(5 * time.Second)
				s.proc = nil
				return nil, fmt.Errorf("sandbox resource %s: %w", name, err)
			}
		}
	}
	return p, nil
}

// ended handles the end of a process during a message: an exit, a kill
// for a limit, or a cancelled worker.
func (s *Sandbox) ended(k *call, p *process, cause error) error {
	p.stop(5 * time.Second)
	s.proc = nil
	s.flushStderr(k, p)
	switch {
	case cause == nil:
		return nil
	case errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded):
		return cause
	case errors.Is(cause, ErrExited):
		if p.err == nil {
			return nil // exited cleanly: a message per process, as in Vumi
		}
		err := fmt.Errorf("sandbox %q: process ended during a message: %w", k.sandboxID, p.err)
		s.report(k, slog.LevelError, err.Error())
		return worker.Permanent(err)
	case errors.Is(cause, ErrTimeout):
		err := fmt.Errorf("sandbox %q killed: %w after %ds", k.sandboxID, cause, s.cfg.Timeout)
		s.report(k, slog.LevelError, err.Error())
		return worker.Permanent(err)
	case errors.Is(cause, ErrRecvLimit):
		err := fmt.Errorf("sandbox %q killed: %w (recv_limit %d bytes)", k.sandboxID, cause, s.cfg.RecvLimit)
		s.report(k, slog.LevelError, err.Error())
		return worker.Permanent(err)
	default:
		err := fmt.Errorf("sandbox %q: %w", k.sandboxID, cause)
		s.report(k, slog.LevelError, err.Error())
		return worker.Permanent(err)
	}
}

func (s *Sandbox) flushStderr(k *call, p *process) {
	if lines := p.takeStderr(); len(lines) > 0 {
		s.report(k, slog.LevelError, strings.Join(lines, "\n"))
	}
}

// report logs a problem of the sandboxed code through the logging
// resource when one is configured, else the worker's log.
func (s *Sandbox) report(k *call, level slog.Level, msg string) {
	if lr, ok := s.resources[s.cfg.LoggingResource].(*logResource); ok {
		lr.log(k, level, msg)
		return
	}
	s.log.Log(context.Background(), level, msg, "sandbox_id", k.sandboxID)
}

// dispatch hands a command to its resource and returns the reply.
func (s *Sandbox) dispatch(k *call, cm command) command {
	full, _ := cm.str("cmd")
	res, rest, _ := strings.Cut(full, ".")
	reply := func(fields command) command {
		fields["cmd"], fields["cmd_id"], fields["reply"] = full, cm["cmd_id"], true
		return fields
	}
	r, ok := s.resources[res]
	if !ok {
		s.report(k, slog.LevelError, fmt.Sprintf("Resource %q not found: command %q", res, full))
		return reply(command{"success": false, "reason": fmt.Sprintf("Resource not found: %s", res)})
	}
	var out command
	err := worker.Safely(func() error {
		out = r.handle(k, rest, cm)
		return nil
	})
	if err != nil {
		s.log.Error("sandbox resource failed", "resource", res, "command", rest, "error", err)
		out = command{"success": false, "reason": "internal error"}
	}
	return reply(out)
}

func fail(reason string) command { return command{"success": false, "reason": reason} }

func ok(fields command) command {
	if fields == nil {
		fields = command{}
	}
	fields["success"] = true
	return fields
}
