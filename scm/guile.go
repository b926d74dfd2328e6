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
)

// machinesJSON is the Guile helper behind [EvalWithGuile]: it defines
// build-machine with Guix's defaults, primitive-loads the file and prints
// the machines as JSON.
//
//go:embed guile/machines-json.scm
var machinesJSON []byte

// EvalWithGuile evaluates the machines.scm file with the real Guile
// (the program guile, "guile" when empty), exactly as Guix's offload hook
// would, and returns its machines with Guix's defaults applied. Use it for
// files that use more of Guile than [EvalMachines] knows. As with
// [LoadMachines], a missing file means no machines. It blocks until guile
// exits; cancelling ctx kills guile.
func EvalWithGuile(ctx context.Context, guile, file string) ([]Machine, error) {
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
	cmd := exec.CommandContext(ctx, guile, "--no-auto-compile", "-s", helper, file)
	cmd.Env = append(os.Environ(), "GUILE_AUTO_COMPILE=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
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
