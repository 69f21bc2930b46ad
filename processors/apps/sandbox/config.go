package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/topology"
)

// Resource classes (the cls of a resource in the sandbox config), by
// Vumi's class path; the short names are accepted too.
const (
	ClsKV       = "vumi.application.sandbox.RedisResource"
	ClsOutbound = "vumi.application.sandbox.OutboundResource"
	ClsHTTP     = "vumi.application.sandbox.HttpClientResource"
	ClsLog      = "vumi.application.sandbox.LoggingResource"
	ClsJS       = "vumi.application.sandbox.JsSandboxResource"
	ClsConfig   = "vumi.application.sandbox.ConfigResource"
)

var clsShort = map[string]string{
	"kv": ClsKV, "redis": ClsKV, "outbound": ClsOutbound, "http": ClsHTTP,
	"log": ClsLog, "logging": ClsLog, "js": ClsJS, "config": ClsConfig,
}

// ResourceSpec configures one sandbox resource. Which keys apply depends
// on cls; Validate rejects the others.
type ResourceSpec struct {
	// Cls is the resource class, e.g. vumi.application.sandbox.RedisResource
	// (or kv, outbound, http, log, js, config).
	Cls string `yaml:"cls"`

	// RedisManager is accepted for Vumi compatibility and ignored: the
	// key-value store is the worker's group table (kv).
	RedisManager map[string]any `yaml:"redis_manager"`
	// KeysPerUserSoft: keys a user may hold before warnings are logged;
	// default 80% of the hard limit (kv).
	KeysPerUserSoft int `yaml:"keys_per_user_soft"`
	// KeysPerUserHard: keys a user may hold; default 100 (kv).
	KeysPerUserHard int `yaml:"keys_per_user_hard"`
	// KeysPerUser is the deprecated synonym of keys_per_user_hard (kv).
	KeysPerUser int `yaml:"keys_per_user"`

	// Timeout of one HTTP request in seconds; default 30 (http).
	Timeout int `yaml:"timeout"`
	// DataLimit: the largest response body in bytes; default 128 KiB (http).
	DataLimit int `yaml:"data_limit"`

	// Values are what config.get returns, by key (config).
	Values map[string]any `yaml:"values"`
}

// Rlimit is one resource limit: a number (soft = hard) or [soft, hard].
type Rlimit struct{ Soft, Hard uint64 }

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Rlimit) UnmarshalYAML(n *yaml.Node) error {
	var one int64
	if err := n.Decode(&one); err == nil {
		if one < 0 {
			r.Soft, r.Hard = unix.RLIM_INFINITY, unix.RLIM_INFINITY
		} else {
			r.Soft, r.Hard = uint64(one), uint64(one)
		}
		return nil
	}
	var two []int64
	if err := n.Decode(&two); err != nil || len(two) != 2 {
		return errors.New("must be an integer or a list [soft, hard]")
	}
	conv := func(v int64) uint64 {
		if v < 0 {
			return unix.RLIM_INFINITY
		}
		return uint64(v)
	}
	r.Soft, r.Hard = conv(two[0]), conv(two[1])
	return nil
}

// rlimitNames maps the names of Python's resource module to Linux's.
var rlimitNames = map[string]int{
	"RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_AS": unix.RLIMIT_AS,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
}

const (
	kb = 1024
	mb = 1024 * 1024
)

// DefaultRlimits are Vumi's defaults, except RLIMIT_NOFILE (32, not 15:
// Node.js crashes at start-up with 15) and RLIMIT_AS: Node.js reserves
// far more address space than Vumi's 196 MiB at start-up, so the default
// is 1 GiB (RLIMIT_DATA, 64 MiB, still bounds what a script can allocate).
func DefaultRlimits() map[string]Rlimit {
	return map[string]Rlimit{
		"RLIMIT_CORE":    {1 * mb, 1 * mb},
		"RLIMIT_CPU":     {60, 60},
		"RLIMIT_FSIZE":   {1 * mb, 1 * mb},
		"RLIMIT_DATA":    {64 * mb, 64 * mb},
		"RLIMIT_STACK":   {1 * mb, 1 * mb},
		"RLIMIT_RSS":     {10 * mb, 10 * mb},
		"RLIMIT_NOFILE":  {32, 32},
		"RLIMIT_MEMLOCK": {64 * kb, 64 * kb},
		"RLIMIT_AS":      {1024 * mb, 1024 * mb},
	}
}

// JsDataLimit is the default RLIMIT_DATA of the JavaScript sandboxes:
// Node.js itself needs most of Vumi's 64 MiB.
const JsDataLimit = 256 * mb

// Config is the Sandbox worker's config (Vumi's SandboxConfig), with the
// JsSandbox and JsFileSandbox keys.
type Config struct {
	app.Config `yaml:",inline"`
	// Sandbox: the resources offered to the sandbox, by the name the
	// sandbox uses in commands (e.g. kv for kv.get).
	Sandbox map[string]ResourceSpec `yaml:"sandbox"`
	// Executable to run (Sandbox: required; JsSandbox: node from PATH).
	Executable string `yaml:"executable"`
	// Args passed to the executable (JsSandbox: the sandboxer script).
	Args []string `yaml:"args"`
	// Path is the working directory of the process; default a fresh
	// empty temporary directory.
	Path string `yaml:"path"`
	// Env is the whole environment of the process (nothing is inherited).
	Env map[string]string `yaml:"env"`
	// Timeout in seconds the process is given to handle one message;
	// default 60. A process still busy then is killed.
	Timeout int `yaml:"timeout"`
	// RecvLimit: the most bytes read from the process' stdout and stderr
	// while it handles one message; default 1 MiB. Beyond it the process
	// is killed.
	RecvLimit int `yaml:"recv_limit"`
	// Rlimits override DefaultRlimits, by RLIMIT_* name; -1 is unlimited.
	Rlimits map[string]Rlimit `yaml:"rlimits"`
	// LoggingResource reports errors of the sandboxed code (stderr,
	// crashes, kills); default none (the worker's log). JsSandbox: log.
	LoggingResource string `yaml:"logging_resource"`
	// SandboxID is accepted for Vumi compatibility; the sandbox id of a
	// message is its record key (the end user's address).
	SandboxID string `yaml:"sandbox_id"`

	// Javascript is the code JsSandbox runs.
	Javascript string `yaml:"javascript"`
	// JavascriptFile is the file JsFileSandbox runs.
	JavascriptFile string `yaml:"javascript_file"`
	// AppContext is a JavaScript expression whose value is the global
	// object the code runs with (api is added to it).
	AppContext string `yaml:"app_context"`

	// Warm keeps one process per worker running between messages (a
	// script signals the end of a message with done()); default true.
	// false starts a process per message, as Vumi did.
	Warm *bool `yaml:"warm"`
	// ReuseContext runs every message of a warm JavaScript sandbox in the
	// same V8 context (the script is re-run, so handlers are fresh, but
	// globals it does not reset survive); default false: a fresh context
	// per message, like Vumi's process per message. About 2.5 times the
	// throughput.
	ReuseContext bool `yaml:"reuse_context"`

	flavour  flavour
	rlimits  map[int]Rlimit
	resource map[string]string // name -> cls
}

type flavour int

const (
	plain flavour = iota
	jsInline
	jsFile
)

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	var errs []error
	if err := c.ValidateBase(); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout == 0 {
		c.Timeout = 60
	}
	if c.RecvLimit == 0 {
		c.RecvLimit = 1 * mb
	}
	if c.Warm == nil {
		t := true
		c.Warm = &t
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("key timeout: %d must be positive", c.Timeout))
	}
	if c.RecvLimit < 0 {
		errs = append(errs, fmt.Errorf("key recv_limit: %d must be positive", c.RecvLimit))
	}
	switch c.flavour {
	case plain:
		if c.Executable == "" {
			errs = append(errs, errors.New("key executable: is required"))
		}
		for k, v := range map[string]string{"javascript": c.Javascript, "javascript_file": c.JavascriptFile, "app_context": c.AppContext} {
			if v != "" {
				errs = append(errs, fmt.Errorf("key %s: only for the JavaScript sandboxes", k))
			}
		}
	case jsInline, jsFile:
		if c.flavour == jsInline && c.Javascript == "" {
			errs = append(errs, errors.New("key javascript: is required"))
		}
		if c.flavour == jsInline && c.JavascriptFile != "" {
			errs = append(errs, errors.New("key javascript_file: only for JsFileSandbox"))
		}
		if c.flavour == jsFile {
			if c.Javascript != "" {
				errs = append(errs, errors.New("key javascript: JsFileSandbox reads javascript_file"))
			}
			if c.JavascriptFile == "" {
				errs = append(errs, errors.New("key javascript_file: is required"))
			} else if b, err := os.ReadFile(c.JavascriptFile); err != nil {
				errs = append(errs, fmt.Errorf("key javascript_file: %w", err))
			} else {
				c.Javascript = string(b)
			}
		}
		if c.Executable == "" {
			node, err := exec.LookPath("node")
			if err != nil {
				node, err = exec.LookPath("nodejs")
			}
			if err != nil {
				errs = append(errs, errors.New("key executable: no node.js (node or nodejs) in PATH; set executable"))
			}
			c.Executable = node
		}
		if c.Sandbox == nil {
			c.Sandbox = map[string]ResourceSpec{}
		}
		if _, ok := c.Sandbox["js"]; !ok {
			c.Sandbox["js"] = ResourceSpec{Cls: ClsJS}
		}
		if _, ok := c.Sandbox["log"]; !ok {
			c.Sandbox["log"] = ResourceSpec{Cls: ClsLog}
		}
		if c.LoggingResource == "" {
			c.LoggingResource = "log"
		}
	}
	c.rlimits = map[int]Rlimit{}
	for name, r := range DefaultRlimits() {
		c.rlimits[rlimitNames[name]] = r
	}
	if c.flavour != plain {
		c.rlimits[unix.RLIMIT_DATA] = Rlimit{JsDataLimit, JsDataLimit}
	}
	for _, name := range sortedKeys(c.Rlimits) {
		n, ok := rlimitNames[strings.ToUpper(name)]
		if !ok {
			errs = append(errs, fmt.Errorf("key rlimits.%s: unknown resource limit (want one of %s)", name, strings.Join(sortedKeys(rlimitNames), ", ")))
			continue
		}
		r := c.Rlimits[name]
		if r.Soft > r.Hard {
			errs = append(errs, fmt.Errorf("key rlimits.%s: soft limit %d above hard limit %d", name, r.Soft, r.Hard))
		}
		c.rlimits[n] = r
	}
	c.resource = map[string]string{}
	for _, name := range sortedKeys(c.Sandbox) {
		spec := c.Sandbox[name]
		if err := spec.validate(name); err != nil {
			errs = append(errs, err)
			continue
		}
		c.Sandbox[name] = spec
		c.resource[name] = spec.Cls
	}
	if c.LoggingResource != "" && c.resource[c.LoggingResource] != ClsLog {
		errs = append(errs, fmt.Errorf("key logging_resource: %q is not a LoggingResource in sandbox", c.LoggingResource))
	}
	return errors.Join(errs...)
}

func (s *ResourceSpec) validate(name string) error {
	if strings.ContainsAny(name, ".") || name == "" {
		return fmt.Errorf("key sandbox.%s: a resource name may not contain '.'", name)
	}
	if full, ok := clsShort[s.Cls]; ok {
		s.Cls = full
	}
	used := map[string]bool{
		"redis_manager": s.RedisManager != nil, "keys_per_user_soft": s.KeysPerUserSoft != 0,
		"keys_per_user_hard": s.KeysPerUserHard != 0, "keys_per_user": s.KeysPerUser != 0,
		"timeout": s.Timeout != 0, "data_limit": s.DataLimit != 0, "values": s.Values != nil,
	}
	var allowed []string
	switch s.Cls {
	case ClsKV:
		allowed = []string{"redis_manager", "keys_per_user_soft", "keys_per_user_hard", "keys_per_user"}
		if s.KeysPerUserHard == 0 {
			s.KeysPerUserHard = s.KeysPerUser
		}
		if s.KeysPerUserHard == 0 {
			s.KeysPerUserHard = 100
		}
		if s.KeysPerUserSoft == 0 {
			s.KeysPerUserSoft = int(0.8 * float64(s.KeysPerUserHard))
		}
		if s.KeysPerUserHard < 0 || s.KeysPerUserSoft < 0 {
			return fmt.Errorf("key sandbox.%s.keys_per_user_hard: limits must not be negative", name)
		}
	case ClsHTTP:
		allowed = []string{"timeout", "data_limit"}
		if s.Timeout == 0 {
			s.Timeout = 30
		}
		if s.DataLimit == 0 {
			s.DataLimit = 128 * kb
		}
		if s.Timeout < 0 || s.DataLimit < 0 {
			return fmt.Errorf("key sandbox.%s.timeout: timeout and data_limit must be positive", name)
		}
	case ClsConfig:
		allowed = []string{"values"}
	case ClsOutbound, ClsLog, ClsJS:
	case "":
		return fmt.Errorf("key sandbox.%s.cls: is required", name)
	default:
		return fmt.Errorf("key sandbox.%s.cls: unknown resource class %q (want one of %s, %s, %s, %s, %s, %s)", name, s.Cls, ClsKV, ClsOutbound, ClsHTTP, ClsLog, ClsJS, ClsConfig)
	}
	for _, k := range sortedKeys(used) {
		if used[k] && !contains(allowed, k) {
			return fmt.Errorf("key sandbox.%s.%s: not an option of %s", name, k, s.Cls)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *Config) timeout() time.Duration { return time.Duration(c.Timeout) * time.Second }

// IO implements topology.WorkerConfig: the application base's topics (the
// group table holds the kv resource's keys).
func (c *Config) IO(name string) topology.IO { return c.Config.IO(name) }
