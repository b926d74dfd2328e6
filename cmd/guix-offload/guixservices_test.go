package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/hook"
	"github.com/guix-offload/guix-offload/internal/testenv"
)

// guixServices runs dist/guix/testdata/check-services.scm with real
// Guile against the stand-ins of the Guix modules that
// dist/guix/guix-offload/services.scm uses, fails the test for each of its
// failed checks, and returns the command lines the services would run,
// by name.
func guixServices(t *testing.T) map[string][]string {
	t.Helper()
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0")
	dir := filepath.Join("..", "..", "dist", "guix", "testdata")
	cmd := exec.Command(guile, "--no-auto-compile", "-L", "standins", "-L", "..", "check-services.scm")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GUILE_AUTO_COMPILE=0", "GUILE_LOAD_PATH=", "GUILE_LOAD_COMPILED_PATH=")
	out, err := cmd.CombinedOutput()
	argv := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "FAIL "):
			t.Error(line)
		case strings.HasPrefix(line, "argv "):
			f := strings.Split(strings.TrimPrefix(line, "argv "), "\t")
			argv[f[0]] = f[1:]
		}
	}
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	return argv
}

// TestGuixServices checks the Guix System service module with real Guile
// (stand-ins for Guix's modules, see dist/guix/testdata/standins/README),
// then parses the watcher's command lines with discover's own flags.
func TestGuixServices(t *testing.T) {
	argv := guixServices(t)
	for _, name := range []string{"discover", "discover-options"} {
		args, ok := argv[name]
		if !ok {
			t.Fatalf("no command line %q", name)
		}
		root := newRootCommand()
		c, rest, err := root.Find(args[1:])
		if err == nil {
			err = c.ParseFlags(rest)
		}
		if err != nil || c.Name() != "discover" {
			t.Errorf("%s: %v: %v", name, args, err)
			continue
		}
		if cache, _ := c.Flags().GetString("cache"); cache != hook.DefaultConfig().Snapshot {
			t.Errorf("%s: --cache %s, but the hook reads %s", name, cache, hook.DefaultConfig().Snapshot)
		}
	}
}
