package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/cmd/internal/cmdutil"
)

// Every command says what it is for, with an example.
func TestHelpTexts(t *testing.T) {
	for _, p := range cmdutil.Lint(newRootCommand()) {
		t.Error(p)
	}
}

// TestCLIConventions runs the program as people do and checks Guix's
// conventions: -V/--version, exit status 2 for every usage error, 1 for
// an error of the command.
func TestCLIConventions(t *testing.T) {
	t.Setenv("GUIX_OFFLOAD_CONFIG", filepath.Join(t.TempDir(), "none.toml"))
	missing := filepath.Join(t.TempDir(), "machines.scm")
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout or stderr
	}{
		{[]string{"-V"}, 0, "guix-offload (guix-offload) "},
		{[]string{"--version"}, 0, "guix-offload (guix-offload) "},
		{[]string{"discover", "--version"}, 0, "guix-offload (guix-offload) "},
		{[]string{"-v"}, 2, "unknown shorthand flag: 'v'"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"discover", "--bogus"}, 2, "try 'guix-offload discover --help'"},
		{[]string{"discover", "--timeout", "soon"}, 2, `"soon" is not a duration`},
		{[]string{"discover", "--format", "xml"}, 2, `unknown format "xml"`},
		{[]string{"discover", "--watch", "--format", "scm"}, 2, "--watch cannot print"},
		{[]string{"discover", "extra"}, 2, `unknown command "extra"`},
		{[]string{"discover", "--private-key", "id_ed25519"}, 2, "not an absolute file name"},
		{[]string{"machines", "a.scm", "b.scm"}, 2, "accepts at most 1 arg"},
		{[]string{"machines", "--format", "xml", "../../examples/machines.scm"}, 2, `unknown format "xml"`},
		{[]string{"machines", "--eval", "perl", "../../examples/machines.scm"}, 2, `unknown evaluator "perl"`},
		{[]string{"machines", "--file", "../../examples/machines.scm", "../../examples/machines.scm"}, 2, "FILE given twice"},
		{[]string{"machines", "../../examples/machines.scm"}, 0, "hydra.lan"},
		{[]string{"machines", "--file", "../../examples/machines.scm"}, 0, "hydra.lan"},
		{[]string{"machines", missing}, 1, "no such file"},
		{[]string{"machines", "--file", missing}, 1, "no such file"},
		{[]string{"test", "--timeout", "30", "--no-discovered", missing, "("}, 2, "bad REGEXP"},
		{[]string{"status", "a", "b", "c"}, 2, "accepts at most 2 arg"},
		{[]string{"keys", "show"}, 2, "accepts 1 arg"},
		{[]string{"keys", "frob"}, 2, `unknown command "frob"`},
		{[]string{"archive", "check", "--acl", missing}, 2, "no such file"},
		{[]string{"install-shim"}, 2, "accepts 1 arg"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Errorf("exit status %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, stdout, stderr)
			}
			if strings.Contains(stderr, "Usage:") {
				t.Errorf("a usage error printed the whole usage:\n%s", stderr)
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("a test created the missing file")
	}
}

var update = flag.Bool("update", false, "rewrite the man pages and completions under dist/ (go generate ./cmd/...)")

// TestGeneratedDocs keeps dist/guix-offload (man pages, completions) in
// sync with the commands: regenerate with `go generate ./cmd/...`.
func TestGeneratedDocs(t *testing.T) {
	diffs, err := cmdutil.CheckDocs(newRootCommand(), filepath.Join("..", ".."), t.TempDir(), *update)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Error(d)
	}
	if len(diffs) > 0 {
		t.Log("regenerate with: go generate ./cmd/...")
	}
}

// The completions ask the program itself (cobra's __complete).
func TestCompletion(t *testing.T) {
	code, stdout, stderr := runCLI(t, "__complete", "disc")
	if code != 0 || !strings.Contains(stdout, "discover") {
		t.Errorf("__complete disc: status %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "__complete", "discover", "--trust", "")
	if code != 0 || !strings.Contains(stdout, "tofu") {
		t.Errorf("__complete discover --trust: status %d\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "__complete", "test", "--no-")
	if code != 0 || !strings.Contains(stdout, "--no-discovered") {
		t.Errorf("__complete test --no-: status %d\n%s", code, stdout)
	}
}
