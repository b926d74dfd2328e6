package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRealGuix writes a hook.toml whose real-guix is an executable file
// and returns the configuration's name.
func fakeRealGuix(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	realGuix := filepath.Join(dir, "guix")
	if err := os.WriteFile(realGuix, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "hook.toml")
	if err := os.WriteFile(config, []byte(`real-guix = "`+realGuix+`"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return config
}

// runCLI runs guix-offload with args and returns its exit status and
// output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runWith(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// A shim that cannot find the real guix breaks the daemon's own
// substitute and authenticate calls: install-shim refuses to make one,
// saying what to set.
func TestInstallShimRefusesWithoutRealGuix(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", filepath.Join(dir, "empty")) // no guix there
	t.Setenv("GUIX_OFFLOAD_CONFIG", "")
	config := filepath.Join(dir, "hook.toml")
	shimDir := filepath.Join(dir, "bin")
	for _, tc := range []struct{ name, toml, want string }{
		{"unset", "", "real-guix in " + config + " is not set and there is no guix"},
		{"missing", `real-guix = "/nonexistent/bin/guix"`, `real-guix in ` + config + `: "/nonexistent/bin/guix": no such file`},
		{"directory", `real-guix = "` + dir + `"`, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(config, []byte(tc.toml+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runCLI(t, "install-shim", "--config", config, shimDir)
			if code != 1 {
				t.Errorf("exit status %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, want := range []string{tc.want, "hint: set real-guix in " + config, "/run/current-system/profile/bin/guix"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if _, err := os.Lstat(filepath.Join(shimDir, "guix")); err == nil {
				t.Errorf("a shim was installed anyway")
			}
		})
	}
}

func TestInstallShimRealGuix(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", filepath.Join(dir, "empty"))
	t.Setenv("GUIX_OFFLOAD_CONFIG", "")
	realGuix := filepath.Join(dir, "real", "guix")
	if err := os.MkdirAll(filepath.Dir(realGuix), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(realGuix, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "hook.toml")
	if err := os.WriteFile(config, []byte(`real-guix = "`+realGuix+`"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	shimDir := filepath.Join(dir, "bin")
	code, stdout, stderr := runCLI(t, "install-shim", "--config", config, shimDir)
	if code != 0 || !strings.Contains(stdout, "now set GUIX="+filepath.Join(shimDir, "guix")) {
		t.Fatalf("install-shim: status %d\n%s%s", code, stdout, stderr)
	}
	// A real-guix that is the shim itself would loop.
	if err := os.WriteFile(config, []byte(`real-guix = "`+filepath.Join(shimDir, "guix")+`"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "install-shim", "--config", config, shimDir); code != 1 || !strings.Contains(stderr, "is guix-offload itself") {
		t.Errorf("real-guix = the shim: status %d\n%s", code, stderr)
	}
	if code, stdout, stderr := runCLI(t, "install-shim", "--remove", shimDir); code != 0 || !strings.Contains(stdout, "removed") {
		t.Errorf("--remove: status %d\n%s%s", code, stdout, stderr)
	}
}
