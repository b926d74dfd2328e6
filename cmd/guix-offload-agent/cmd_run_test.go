package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/cmd/internal/cmdutil"
	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/internal/testenv"
)

// execute runs the command line with its output in buffers.
func execute(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCommand()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func hostKey(t *testing.T) string {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	pk, _ := ssh.NewPublicKey(pub)
	p := filepath.Join(t.TempDir(), "ssh_host_ed25519_key.pub")
	if err := os.WriteFile(p, ssh.MarshalAuthorizedKey(pk), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Dry runs read the interfaces but send nothing.
func TestFlagsOverrideFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.toml")
	os.WriteFile(conf, []byte("name = \"from-file\"\nspeed = 2.0\nuser = \"builder\"\nsystems = [\"aarch64-linux\"]\n"), 0o644)
	out, _, err := execute(t, "--config", conf, "--once", "--dry-run", "--host-key-file", hostKey(t),
		"--signing-key", filepath.Join(dir, "none"), "--speed", "3", "--features", "kvm,big-parallel", "--overload-threshold", "#f")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"instance: from-file\n", "  speed=3.0\n", "  user=builder\n", "  systems=aarch64-linux\n",
		"  features=kvm,big-parallel\n", "  overload-threshold=#f\n", "signed: false\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBadConfigFile(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "agent.toml")
	os.WriteFile(conf, []byte("# x\nport = \"ssh\"\n"), 0o644)
	_, _, err := execute(t, "--config", conf, "--dry-run")
	var exit cli.ExitError
	if !errors.As(err, &exit) || exit.Code != 2 || err.Error() != conf+":2: port: must be an integer, not a string" {
		t.Errorf("error %v; want exit 2 with %s:2: port: …", err, conf)
	}
	_, _, err = execute(t, "--config", filepath.Join(t.TempDir(), "missing.toml"), "--dry-run")
	if err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing --config file: %v; want an error naming it", err)
	}
}

func TestBadFlag(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "agent.toml")
	os.WriteFile(conf, nil, 0o644)
	_, _, err := execute(t, "--config", conf, "--port", "99999", "--dry-run")
	if err == nil || err.Error() != "--port: 99999 is not a TCP port (1 to 65535)" {
		t.Errorf("error %v; want --port: 99999 is not a TCP port (1 to 65535)", err)
	}
}

func TestOnceNeedsDryRun(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "agent.toml")
	os.WriteFile(conf, nil, 0o644)
	_, _, err := execute(t, "--config", conf, "--once")
	var exit cli.ExitError
	if !errors.As(err, &exit) || exit.Code != 2 {
		t.Errorf("--once alone: %v; want exit status 2", err)
	}
}

func TestVersionAndHelp(t *testing.T) {
	out, _, err := execute(t, "--version")
	if err != nil || !strings.Contains(out, version) {
		t.Errorf("--version: %q, %v", out, err)
	}
	out, _, err = execute(t, "--help")
	if err != nil || !strings.Contains(out, "--dry-run") || !strings.Contains(out, "--overload-threshold") {
		t.Errorf("--help: %q, %v", out, err)
	}
}

// Every command says what it is for, with an example.
func TestHelpTexts(t *testing.T) {
	for _, p := range cmdutil.Lint(newRootCommand()) {
		t.Error(p)
	}
}

// TestCLIConventions: Guix's -V/--version (-v is --verbose), durations
// in plain seconds, status 2 for every usage error.
func TestCLIConventions(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "agent.toml")
	os.WriteFile(conf, nil, 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-V"}, 0, "guix-offload-agent (guix-offload) "},
		{[]string{"stream", "--version"}, 0, "guix-offload-agent (guix-offload) "},
		{[]string{"--bogus"}, 2, "try 'guix-offload-agent --help'"},
		{[]string{"--config", conf, "--refresh-interval", "soon", "--dry-run"}, 2, `"soon" is not a duration`},
		{[]string{"--config", conf, "--refresh-interval", "0.5", "--dry-run"}, 2, "refresh-interval"},
		{[]string{"--config", conf, "--port", "99999", "--dry-run"}, 2, "--port: 99999 is not a TCP port"},
		{[]string{"strem"}, 2, "did you mean stream?"},
		{[]string{"stream", "sideways"}, 2, `unknown stream direction "sideways"`},
		{[]string{"stream", "import", "x"}, 2, "stream import takes no argument"},
		{[]string{"relay", "x"}, 2, "unknown command"},
		{[]string{"relay", "--socket", "/nonexistent/socket"}, 1, "guix-offload-agent: error: cannot connect to guix-daemon's socket /nonexistent/socket"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runWith(context.Background(), tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.want) {
				t.Errorf("exit status %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, out.String(), errOut.String())
			}
		})
	}
}

var update = flag.Bool("update", false, "rewrite the man pages and completions under dist/ (go generate ./cmd/...)")

// TestGeneratedDocs keeps dist/guix-offload-agent (man pages,
// completions) in sync with the commands: regenerate with
// `go generate ./cmd/...`.
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

// The Guix System service module (dist/guix) runs the agent with flags it
// has: checked with real Guile against stand-ins of Guix's modules.
func TestGuixServiceCommandLine(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0")
	cmd := exec.Command(guile, "--no-auto-compile", "-L", "standins", "-L", "..", "check-services.scm")
	cmd.Dir = filepath.Join("..", "..", "dist", "guix", "testdata")
	cmd.Env = append(os.Environ(), "GUILE_AUTO_COMPILE=0", "GUILE_LOAD_PATH=", "GUILE_LOAD_COMPILED_PATH=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "argv agent") {
			continue
		}
		n++
		args := strings.Split(line, "\t")[2:]
		root := newRootCommand()
		if err := root.ParseFlags(args); err != nil || len(root.Flags().Args()) > 0 {
			t.Errorf("%s: %v (left %v)", line, err, root.Flags().Args())
		}
	}
	if n == 0 {
		t.Fatalf("no agent command line in:\n%s", out)
	}
}
