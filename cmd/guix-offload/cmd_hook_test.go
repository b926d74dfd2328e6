package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
)

// The test binary runs main() when asked, so that a link named guix to
// it behaves as the installed shim.
func TestMain(m *testing.M) {
	if os.Getenv("GUIX_OFFLOAD_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	uncache := testenv.PrivateCache()
	code := m.Run()
	uncache()
	os.Exit(code)
}

// fakeGuix prints its argv and stdin and an environment variable, and
// exits 7: a stand-in for the real guix.
const fakeGuix = `#!/bin/sh
echo "argv0=$0"
for a in "$@"; do echo "arg=[$a]"; done
echo "foo=$FOO"
cat
exit 7
`

func shimSetup(t *testing.T) (shimDir, realDir, config string) {
	base := t.TempDir()
	shimDir, realDir = filepath.Join(base, "shim"), filepath.Join(base, "real")
	os.MkdirAll(realDir, 0o755)
	if err := os.WriteFile(filepath.Join(realDir, "guix"), []byte(fakeGuix), 0o755); err != nil {
		t.Fatal(err)
	}
	config = filepath.Join(base, "hook.toml")
	cfg := "machines-file = \"" + filepath.Join(base, "machines.scm") + "\"\nstate-directory = \"" + filepath.Join(base, "state") +
		"\"\ndiscovery = false\n"
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The shim finds the real guix on PATH, after itself, as install-shim
	// checks.
	t.Setenv("PATH", shimDir+string(filepath.ListSeparator)+realDir)
	var out bytes.Buffer
	if err := runInstallShim(installShimOptions{config: config}, shimDir, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "GUIX="+filepath.Join(shimDir, "guix")) {
		t.Errorf("install-shim says %q", out.String())
	}
	return shimDir, realDir, config
}

func TestShimPassesThrough(t *testing.T) {
	shimDir, realDir, config := shimSetup(t)
	shim := filepath.Join(shimDir, "guix")
	for _, tc := range []struct {
		name string
		path string
		env  []string
	}{
		{"real guix on PATH after the shim", shimDir + ":" + realDir + ":/usr/bin:/bin", nil},
		{"real-guix from the configuration", shimDir + ":/usr/bin:/bin", []string{"REAL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config
			if tc.env != nil {
				cfg = filepath.Join(t.TempDir(), "hook.toml")
				data, _ := os.ReadFile(config)
				os.WriteFile(cfg, append(data, []byte("real-guix = \""+filepath.Join(realDir, "guix")+"\"\n")...), 0o644)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, shim, "substitute", "--query", "two words", "")
			cmd.Env = append(os.Environ(), "GUIX_OFFLOAD_TEST_AS_MAIN=1", "PATH="+tc.path, "FOO=bar", "GUIX_OFFLOAD_CONFIG="+cfg)
			cmd.Stdin = strings.NewReader("from stdin\n")
			out, err := cmd.Output()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 7 {
				t.Fatalf("exit: %v; output %q", err, out)
			}
			want := "argv0=" + filepath.Join(realDir, "guix") + "\narg=[substitute]\narg=[--query]\narg=[two words]\narg=[]\nfoo=bar\nfrom stdin\n"
			if string(out) != want {
				t.Errorf("output\n%s\nwant\n%s", out, want)
			}
		})
	}
	t.Run("no real guix", func(t *testing.T) {
		cmd := exec.Command(shim, "gc")
		cmd.Env = append(os.Environ(), "GUIX_OFFLOAD_TEST_AS_MAIN=1", "PATH="+shimDir, "GUIX_OFFLOAD_CONFIG="+config)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "no guix other than") {
			t.Fatalf("%v: %s", err, out)
		}
		// The hint names the configuration file in use.
		if !strings.Contains(string(out), "set real-guix in "+config) || strings.Contains(string(out), "/etc/guix-offload") {
			t.Errorf("hint does not name %s: %s", config, out)
		}
	})
}

func TestShimRunsHook(t *testing.T) {
	shimDir, realDir, config := shimSetup(t)
	h := daemon.Start(t, daemon.Options{Program: filepath.Join(shimDir, "guix"), System: "x86_64-linux", MaxSilentTime: 3600,
		BuildTimeout: 7200, Env: append(os.Environ(), "GUIX_OFFLOAD_TEST_AS_MAIN=1", "PATH="+shimDir+":"+realDir, "GUIX_OFFLOAD_CONFIG="+config)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := h.Request(ctx, daemon.Req{Willing: true, System: "x86_64-linux", Drv: "/gnu/store/aaaa-x.drv"})
	if err != nil || rep.Answer != daemon.Decline || !strings.Contains(strings.Join(rep.Chatter, "\n"), "no machine builds x86_64-linux") {
		t.Fatalf("%+v %v", rep, err)
	}
	h.CloseStdin()
	if ws, err := h.Wait(ctx); err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("exit %v %v", ws, err)
	}
}

func TestInstallShim(t *testing.T) {
	dir := t.TempDir()
	config := fakeRealGuix(t)
	var out bytes.Buffer
	if err := runInstallShim(installShimOptions{config: config}, dir, &out); err != nil {
		t.Fatal(err)
	}
	if err := runInstallShim(installShimOptions{config: config}, dir, &out); err != nil || !strings.Contains(out.String(), "already links") {
		t.Fatalf("second install: %v %q", err, out.String())
	}
	if err := runInstallShim(installShimOptions{remove: true}, dir, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "guix")); !os.IsNotExist(err) {
		t.Fatalf("shim not removed: %v", err)
	}
	// Someone else's guix is left alone unless --force.
	os.WriteFile(filepath.Join(dir, "guix"), []byte("#!/bin/sh\n"), 0o755)
	if err := runInstallShim(installShimOptions{config: config}, dir, &out); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("err %v", err)
	}
	if err := runInstallShim(installShimOptions{remove: true}, dir, &out); err == nil {
		t.Fatal("removed a file that is not the shim")
	}
	if err := runInstallShim(installShimOptions{force: true, config: config}, dir, &out); err != nil {
		t.Fatal(err)
	}
}

// `guix offload status` through the shim is our status command, not the
// hook waiting for requests.
func TestShimOffloadStatus(t *testing.T) {
	shimDir, realDir, config := shimSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(shimDir, "guix"), "offload", "status", "--help")
	cmd.Env = append(os.Environ(), "GUIX_OFFLOAD_TEST_AS_MAIN=1", "PATH="+shimDir+":"+realDir, "GUIX_OFFLOAD_CONFIG="+config)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "status") || strings.Contains(string(out), "# decline") {
		t.Fatalf("%v: %s", err, out)
	}
}
