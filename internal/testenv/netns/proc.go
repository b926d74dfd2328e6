package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a background process started by [Host.Start]. Its stdout and
// stderr are captured together.
type Proc struct {
	cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{}
	err  error // set before done is closed
	name string
}

// Start starts name with args in the background inside h's namespace. The
// process and its process group are killed when t ends; if t failed, its
// output is printed with t.Log then. Start stops t with Fatal when the
// program cannot be started.
func (h *Host) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return h.StartCmd(t, h.Command(context.Background(), name, args...))
}

// StartCmd is [Host.Start] for a command made with [Host.Command] (to set
// its environment or working directory first). Its Stdout and Stderr must
// be nil.
func (h *Host) StartCmd(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{cmd: cmd, done: make(chan struct{}), name: fmt.Sprintf("%s on %s", strings.Join(cmd.Args[4:], " "), h.Name)}
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("netns: start %s: %v", p.name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %s (%v):\n%s", p.name, p.exitStatus(), p.Output())
		}
	})
	return p
}

// Output returns everything the process has written so far.
func (p *Proc) Output() string { return p.out.String() }

// Pid returns the process id (the benchmarks, behind the bench build
// tag, read its CPU time from /proc).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends sig to the process (not its group), as a service manager
// would to ask it to stop.
func (p *Proc) Stop(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil on status 0). It returns an error saying so when the process
// is still running after timeout.
func (p *Proc) Wait(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.err
	case <-timer.C:
		return fmt.Errorf("%s still running after %v", p.name, timeout)
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill kills the process group and waits (boundedly) for the process.
func (p *Proc) kill() {
	if p.Exited() {
		// Its children may still be around.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

func (p *Proc) exitStatus() string {
	select {
	case <-p.done:
		if p.err == nil {
			return "exit status 0"
		}
		return p.err.Error()
	default:
		return "killed at cleanup"
	}
}

func setProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// It goes with the test binary even when that is killed (its
	// timeout) before any cleanup runs.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
