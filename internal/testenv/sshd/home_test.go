package sshd_test

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
	"github.com/guix-offload/guix-offload/internal/transport"
)

// slowHomeEnv marks the child run of TestSlowLoginShell.
const slowHomeEnv = "GUIX_OFFLOAD_TEST_SLOW_HOME"

// TestSlowLoginShell runs TestRemoteCommandsIgnoreTheHome again in a
// private mount namespace where the invoking user's home holds a
// .bashrc that sleeps for a minute, as on a machine whose root login
// shell initialises slowly: remote commands must not notice.
func TestSlowLoginShell(t *testing.T) {
	testenv.NeedRoot(t)
	unshare := testenv.LookPath(t, "unshare", "util-linux")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".bashrc"), []byte("sleep 60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" "$2" && shift 2 && exec "$@"`, "slow-home", home, u.HomeDir,
		os.Args[0], "-test.run=^TestRemoteCommandsIgnoreTheHome$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), slowHomeEnv+"=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("child run (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("with a slow ~/.bashrc: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestRemoteCommandsIgnoreTheHome") {
		t.Fatal("the child run did not pass TestRemoteCommandsIgnoreTheHome")
	}
}

// TestRemoteCommandsIgnoreTheHome: remote commands run promptly with an
// empty home, whatever the invoking user's dotfiles.
func TestRemoteCommandsIgnoreTheHome(t *testing.T) {
	s := sshd.Start(t, sshd.Options{})
	c, err := sshconn.Dial(context.Background(), sshconn.Target{Host: s.Host, Port: s.Port,
		User: s.User, PrivateKeyFile: s.ClientKeyFile, HostKey: s.HostKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	out, err := transport.Output(ctx, c, "ls -A ~", nil)
	if err != nil {
		t.Fatalf("remote command (after %v): %v", time.Since(start).Round(time.Millisecond), err)
	}
	if strings.TrimSpace(string(out)) != "" {
		t.Errorf("the login home is not empty: %q", out)
	}
	if os.Getenv(slowHomeEnv) != "" {
		t.Logf("remote command with the invoking user's slow ~/.bashrc hidden: %v", time.Since(start).Round(time.Millisecond))
	}
}

// TestNoSessionOutlivesSshd: a login shell whose client hung up while it
// was still starting (a ~/.bashrc that hangs) does not run on, orphaned,
// once sshd is stopped.
func TestNoSessionOutlivesSshd(t *testing.T) {
	s := sshd.Start(t, sshd.Options{})
	const marker = "61.2345" // a sleep no other process runs
	if err := os.WriteFile(filepath.Join(s.Home, ".bashrc"), []byte("exec sleep "+marker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := sshconn.Dial(context.Background(), sshconn.Target{Host: s.Host, Port: s.Port,
		User: s.User, PrivateKeyFile: s.ClientKeyFile, HostKey: s.HostKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err = transport.Output(ctx, c, "true", nil)
	cancel()
	if err == nil {
		t.Fatal("the login shell did not hang")
	}
	running := func() []string {
		var found []string
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err == nil && strings.Contains(string(b), marker) {
				found = append(found, p)
			}
		}
		return found
	}
	// Wait for the shell to be running, then hang up and stop sshd.
	deadline := time.Now().Add(10 * time.Second)
	for len(running()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(running()) == 0 {
		t.Fatal("the hanging login shell never ran")
	}
	c.Close()
	s.Stop()
	deadline = time.Now().Add(10 * time.Second)
	for len(running()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if p := running(); len(p) > 0 {
		t.Errorf("processes of a session outlived sshd: %v", p)
	}
}
