package scm

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// machinesJSON is the Guile helper behind [EvalWithGuile]: it defines
// build-machine with Guix's defaults, primitive-loads the file and prints
// the machines as JSON.
//
//go:embed guile/machines-json.scm
var machinesJSON []byte

// GuileTimeout bounds an evaluation by [EvalWithGuile]: machines.scm is
// a program, and one that loops or waits (for the network, say) must not
// hang whoever reads it.
const GuileTimeout = 30 * time.Second

// ErrGuileTimeout is the error of an evaluation that took longer than
// [GuileTimeout].
var ErrGuileTimeout = errors.New("gave up waiting for Guile")

// EvalWithGuile evaluates the machines.scm file with the real Guile
// (the program guile, "guile" when empty), exactly as Guix's offload hook
// would, and returns its machines with Guix's defaults applied. Use it for
// files that use more of Guile than [EvalMachines] knows. As with
// [LoadMachines], a missing file means no machines. It blocks until guile
// exits, at most [GuileTimeout] (then the error wraps [ErrGuileTimeout]);
// cancelling ctx kills guile and whatever the file started, and returns
// ctx's error.
func EvalWithGuile(ctx context.Context, guile, file string) ([]Machine, error) {
	return evalWithGuile(ctx, guile, file, GuileTimeout)
}

func evalWithGuile(ctx context.Context, guile, file string, timeout time.Duration) ([]Machine, error) {
	if guile == "" {
		guile = "guile"
	}
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "guix-offload-guile-")
	if err != nil {
		return nil, fmt.Errorf("evaluate %s with guile: %w", file, err)
	}
	defer os.RemoveAll(dir)
	helper := filepath.Join(dir, "machines-json.scm")
	if err := os.WriteFile(helper, machinesJSON, 0o600); err != nil {
		return nil, fmt.Errorf("evaluate %s with guile: %w", file, err)
	}
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(gctx, guile, "--no-auto-compile", "-s", helper, file)
	cmd.Env = append(os.Environ(), "GUILE_AUTO_COMPILE=0")
	// Guile and whatever the file starts (a bridge runs guix-offload) are
	// one process group, killed together; a child that kept our pipes
	// open would otherwise keep Wait waiting.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if gctx.Err() != nil {
			return nil, fmt.Errorf("evaluate %s with %s: %w after %v (does the file loop, or wait for input or the network?)",
				file, guile, ErrGuileTimeout, timeout)
		}
		msg := lastLines(stderr.String(), 3)
		if msg == "" {
			return nil, fmt.Errorf("evaluate %s with %s: %w", file, guile, err)
		}
		return nil, fmt.Errorf("evaluate with %s: %s", guile, msg)
	}
	ms := []Machine{}
	if err := json.Unmarshal(stdout.Bytes(), &ms); err != nil {
		return nil, fmt.Errorf("evaluate %s with guile: read helper output: %w", file, err)
	}
	for i := range ms {
		if ms[i].Features == nil {
			ms[i].Features = []string{}
		}
		if ms[i].Systems == nil {
			ms[i].Systems = []string{}
		}
	}
	return ms, nil
}

// lastLines returns the last n non-empty lines of s, without warnings
// about unavailable modules, joined by "; ".
func lastLines(s string, n int) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "warning: module ") {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "; ")
}
