package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// guileOnlyMachines is a machines.scm that the built-in evaluator cannot
// evaluate (iota comes from SRFI-1) but Guile can.
const guileOnlyMachines = `(use-modules (srfi srfi-1))
(define (machine n)
  (build-machine
    (name (string-append "node" (number->string n) ".example.org"))
    (systems (list "x86_64-linux"))
    (user "offload")
    (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D")))
(map machine (iota 2 1))
`

// test and status load the machines as the hook does: with its
// configured evaluator, so a machines.scm only Guile can evaluate works
// there too (issue 10, item 6).
func TestCheckUsesHookEvaluator(t *testing.T) {
	guile := testenv.LookPath(t, "guile", "guile-3.0")
	dir := t.TempDir()
	machines := filepath.Join(dir, "machines.scm")
	if err := os.WriteFile(machines, []byte(guileOnlyMachines), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		evaluator string
		want      string // the probes' names, or the error
	}{
		{"auto", "'node1.example.org:22' 'node2.example.org:22'"},
		{"guile", "'node1.example.org:22' 'node2.example.org:22'"},
		{"builtin", "unbound variable iota"},
	} {
		t.Run(tc.evaluator, func(t *testing.T) {
			config := filepath.Join(dir, tc.evaluator+".toml")
			toml := fmt.Sprintf("machines-file = %q\nevaluator = %q\nguile = %q\nstate-directory = %q\ndiscovery = false\n",
				machines, tc.evaluator, guile, filepath.Join(dir, "state-"+tc.evaluator))
			if err := os.WriteFile(config, []byte(toml), 0o644); err != nil {
				t.Fatal(err)
			}
			probes, err := buildProbes(context.Background(), checkOptions{config: config, discovered: true}, nil, false, io.Discard)
			var got []string
			for _, p := range probes {
				got = append(got, p.Name)
			}
			if err != nil {
				got = append(got, err.Error())
			}
			if s := strings.Join(got, " "); !strings.Contains(s, tc.want) {
				t.Errorf("got %q, want %q", s, tc.want)
			}
		})
	}
}
