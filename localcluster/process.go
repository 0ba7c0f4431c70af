package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/llm-d/llm-d/internal/poll"
)

// Process is one program of the cluster, or one started by Run, its output going to <logs>/<name>.log.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logFile string
	done    chan struct{} // closed once the program has exited and been reaped
	err     error         // how it exited; read only after done is closed
	killed  atomic.Bool   // by Kill: its exit is not a failure
}

// Run starts a program of the caller's (llm-d's binaries, say) as the cluster starts its own: in its own
// process group, its output in LogDir/<name>.log (appended, so a restarted program keeps one log), without
// proxy settings or KUBECONFIG from the environment. Stop kills it if it still runs.
func (c *Cluster) Run(name, bin string, args ...string) (*Process, error) {
	return c.startProcess(name, bin, args)
}

// Kill kills the program's process group with SIGKILL, as a node failure would, and waits until it is reaped.
func (p *Process) Kill() error {
	p.killed.Store(true)
	return killAll([]*Process{p})
}

// startProcess runs bin in its own process group, so that Stop also reaches anything it starts, with
// the environment minus what could send its traffic off the machine or to another cluster.
func (c *Cluster) startProcess(name, bin string, args []string, env ...string) (*Process, error) {
	logFile := filepath.Join(c.LogDir, name+".log")
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own copy of the descriptor
	fmt.Fprintf(f, "# %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = c.Dir
	cmd.Env = append(childEnv(), env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

// childEnv is this process's environment without proxy settings (every address the programs reach is on
// loopback, and a proxy would be the one way off it) and without KUBECONFIG (each program is told which
// kubeconfig to use; a stray one would point it at some other cluster).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "KUBECONFIG":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NO_PROXY=*", "no_proxy=*")
}

// exited reports, as an error that ends polling, that the program is no longer running.
func (p *Process) exited() error {
	if err := p.exitErr(); err != nil {
		return poll.Permanent(err)
	}
	return nil
}

// exitErr says how the program ended and what it last wrote, or nil while it runs or once Kill killed it.
func (p *Process) exitErr() error {
	if p.killed.Load() {
		return nil
	}
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.name, p.err, p.logFile, p.tail())
	default:
		return nil
	}
}

// WaitReady polls ready until it succeeds, the program exits, or ctx ends (a minute without a deadline); the
// error carries the tail of the program's log, which is where the reason almost always is.
func (p *Process) WaitReady(ctx context.Context, ready func() error) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	err := poll.Eventually(ctx, time.Until(deadline), func() error {
		if err := p.exited(); err != nil {
			return err
		}
		return ready()
	})
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "last lines of") {
		return err
	}
	return fmt.Errorf("%s not ready: %w; last lines of %s:\n%s", p.name, err, p.logFile, p.tail())
}

// tail returns the last lines of the program's log.
func (p *Process) tail() string {
	const maxBytes, maxLines = 16 << 10, 40
	f, err := os.Open(p.logFile)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxBytes {
		_, _ = f.Seek(st.Size()-maxBytes, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return string(bytes.TrimSpace([]byte(strings.Join(lines, "\n"))))
}

// killAll kills every program's process group and waits for each to be reaped. No SIGTERM first: the
// cluster's state is thrown away, the logs are written straight to files (nothing is left in a buffer to
// flush), and a graceful stop only costs time, since etcd's waits for kube-apiserver's watches while
// kube-apiserver drains the requests of clients that are stopping too (measured: >5s every time).
func killAll(procs []*Process) error {
	for _, p := range procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	var errs []error
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid))
		}
	}
	return errors.Join(errs...)
}
