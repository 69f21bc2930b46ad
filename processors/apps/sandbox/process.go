package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Errors that end a sandbox process.
var (
	ErrTimeout   = errors.New("sandbox timed out")
	ErrRecvLimit = errors.New("sandbox killed for producing too much data on stderr and stdout")
	ErrExited    = errors.New("sandbox process ended")
)

// process is one running sandboxed child: line-based JSON on stdin and
// stdout, stderr collected, resource limits applied with prlimit(2).
type process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan []byte // stdout lines; closed when stdout ends
	exited chan struct{}
	err    error // exit status, valid once exited is closed

	recvLimit int64
	recv      atomic.Int64
	overLimit chan struct{}
	limitOnce sync.Once

	mu     sync.Mutex
	stderr []string
	tmpDir string

	quit     chan struct{} // closed by kill: stop delivering lines
	quitOnce sync.Once
}

// start spawns the sandbox: a new process group, an explicit environment
// only, and the rlimits applied before any sandboxed code is sent to it.
func start(cfg *Config, extraArgs []string) (*process, error) {
	dir := cfg.Path
	var tmp string
	if dir == "" {
		var err error
		tmp, err = os.MkdirTemp("", "vumi-sandbox-")
		if err != nil {
			return nil, fmt.Errorf("sandbox working directory: %w", err)
		}
		dir = tmp
	}
	cmd := exec.Command(cfg.Executable, append(append([]string(nil), cfg.Args...), extraArgs...)...)
	cmd.Dir = dir
	env := make([]string, 0, len(cfg.Env))
	for _, k := range sortedKeys(cfg.Env) {
		env = append(env, k+"="+cfg.Env[k])
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		if tmp != "" {
			_ = os.RemoveAll(tmp)
		}
		return nil, fmt.Errorf("sandbox process failed to start: %w", err)
	}
	p := &process{cmd: cmd, stdin: stdin, lines: make(chan []byte, 64), exited: make(chan struct{}),
		recvLimit: int64(cfg.RecvLimit), overLimit: make(chan struct{}), tmpDir: tmp, quit: make(chan struct{})}
	if err := p.applyRlimits(cfg.rlimits); err != nil {
		p.kill()
		_ = cmd.Wait()
		if tmp != "" {
			_ = os.RemoveAll(tmp)
		}
		return nil, err
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); p.readStdout(stdout) }()
	go func() { defer readers.Done(); p.readStderr(stderr) }()
	go func() {
		readers.Wait()
		p.err = cmd.Wait()
		if tmp != "" {
			_ = os.RemoveAll(tmp)
		}
		close(p.exited)
	}()
	return p, nil
}

func (p *process) applyRlimits(limits map[int]Rlimit) error {
	keys := make([]int, 0, len(limits))
	for k := range limits {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, res := range keys {
		l := limits[res]
		rl := unix.Rlimit{Cur: l.Soft, Max: l.Hard}
		if err := unix.Prlimit(p.cmd.Process.Pid, res, &rl, nil); err != nil {
			return fmt.Errorf("sandbox rlimit %d (%d, %d): %w", res, l.Soft, l.Hard, err)
		}
	}
	return nil
}

// count adds n received bytes; beyond the limit the process is killed.
func (p *process) count(n int) bool {
	if p.recv.Add(int64(n)) <= p.recvLimit {
		return true
	}
	p.limitOnce.Do(func() { close(p.overLimit); p.kill() })
	return false
}

func (p *process) readStdout(r io.Reader) {
	defer close(p.lines)
	buf := make([]byte, 64*1024)
	var partial []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if !p.count(n) {
				_, _ = io.Copy(io.Discard, r)
				return
			}
			data := buf[:n]
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					partial = append(partial, data...)
					break
				}
				line := append(partial, data[:i]...)
				partial = nil
				data = data[i+1:]
				if len(bytes.TrimSpace(line)) > 0 && !p.deliver(line) {
					_, _ = io.Copy(io.Discard, r)
					return
				}
			}
		}
		if err != nil {
			if len(bytes.TrimSpace(partial)) > 0 {
				p.deliver(partial)
			}
			return
		}
	}
}

// deliver hands a line to the worker; false once the process is killed.
func (p *process) deliver(line []byte) bool {
	select {
	case p.lines <- line:
		return true
	case <-p.quit:
		return false
	}
}

func (p *process) readStderr(r io.Reader) {
	buf := make([]byte, 16*1024)
	var partial []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if !p.count(n) {
				_, _ = io.Copy(io.Discard, r)
				return
			}
			partial = append(partial, buf[:n]...)
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				p.addStderr(string(partial[:i]))
				partial = partial[i+1:]
			}
		}
		if err != nil {
			if len(partial) > 0 {
				p.addStderr(string(partial))
			}
			return
		}
	}
}

func (p *process) addStderr(line string) {
	p.mu.Lock()
	p.stderr = append(p.stderr, line)
	p.mu.Unlock()
}

// takeStderr returns and clears the stderr lines so far.
func (p *process) takeStderr() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.stderr
	p.stderr = nil
	return out
}

// send writes one command line.
func (p *process) send(line []byte) error {
	_, err := p.stdin.Write(append(line, '\n'))
	return err
}

// kill kills the whole process group.
func (p *process) kill() {
	p.quitOnce.Do(func() { close(p.quit) })
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Process.Kill()
	}
}

// stop kills the process and waits for it, at most d.
func (p *process) stop(d time.Duration) {
	p.kill()
	select {
	case <-p.exited:
	case <-time.After(d):
	}
}

// alive reports whether the process is still running.
func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// resetRecv starts counting received bytes afresh (per message).
func (p *process) resetRecv() { p.recv.Store(0) }

// next waits for the next stdout line. It returns ErrExited when the
// process ended (and stdout is drained), ErrRecvLimit, ErrTimeout, or
// ctx's error.
func (p *process) next(ctx context.Context, deadline <-chan time.Time) ([]byte, error) {
	select {
	case line, ok := <-p.lines:
		if ok {
			return line, nil
		}
		select {
		case <-p.overLimit:
			return nil, ErrRecvLimit
		default:
		}
		<-p.exited
		return nil, ErrExited
	case <-p.overLimit:
		return nil, ErrRecvLimit
	case <-deadline:
		return nil, ErrTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
