package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// TestStaticBuild builds both programs the way docs/install.md says
// (`make build`) and checks that they are static: no program interpreter
// (the dynamic loader a foreign binary would look for in /lib, which Guix
// System does not have) and no dynamic section.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both programs")
	}
	testenv.LookPath(t, "make", "make")
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "-C", filepath.Join("..", ".."), "build", "OUT="+out)
	// The environment must not decide: a developer's CGO_ENABLED=1 is
	// what the Makefile overrides.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, b)
	}
	for _, prog := range []string{"guix-offload", "guix-offload-agent"} {
		f, err := elf.Open(filepath.Join(out, prog))
		if err != nil {
			t.Fatalf("%s: %v", prog, err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			switch p.Type {
			case elf.PT_INTERP:
				t.Errorf("%s has a program interpreter: it is dynamically linked", prog)
			case elf.PT_DYNAMIC:
				t.Errorf("%s has a dynamic section", prog)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v", prog, libs)
		}
	}
}

// TestInstallDocNamesGoVersion keeps docs/install.md and the README true
// to the go line of go.mod.
func TestInstallDocNamesGoVersion(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	want := "Go " + string(m[1]) + " or later"
	for _, doc := range []string{"README.md", filepath.Join("docs", "install.md")} {
		b, err := os.ReadFile(filepath.Join("..", "..", doc))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.ReplaceAll(string(b), "\n", " "), want) {
			t.Errorf("%s does not say %q (go.mod: go %s)", doc, want, m[1])
		}
	}
}

// TestMakeInstall stages `make install` under DESTDIR and checks that it
// installs what docs/install.md lists, and that `make uninstall` removes
// it all.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both programs")
	}
	testenv.LookPath(t, "make", "make")
	stage, out := t.TempDir(), t.TempDir()
	make := func(target string) {
		t.Helper()
		cmd := exec.Command("make", "-s", "-C", filepath.Join("..", ".."), target, "DESTDIR="+stage, "PREFIX=/usr", "OUT="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, b)
		}
	}
	make("install")
	pages, _ := filepath.Glob(filepath.Join("..", "..", "dist", "*", "man1", "*.1"))
	if len(pages) < 2 {
		t.Fatalf("only %d man pages in dist/", len(pages))
	}
	want := []string{
		"usr/bin/guix-offload", "usr/bin/guix-offload-agent",
		"usr/lib/systemd/system/guix-offload-agent.service", "usr/lib/systemd/system/guix-offload-discover.service",
		"usr/share/bash-completion/completions/guix-offload", "usr/share/zsh/site-functions/_guix-offload-agent",
		"usr/share/fish/vendor_completions.d/guix-offload.fish",
		"usr/share/doc/guix-offload/examples/hook.toml",
		"usr/share/guile/site/3.0/guix-offload/services.scm",
	}
	for _, p := range pages {
		want = append(want, filepath.Join("usr/share/man/man1", filepath.Base(p)))
	}
	for _, f := range want {
		if _, err := os.Stat(filepath.Join(stage, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(stage, "usr/lib/systemd/system/guix-offload-agent.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=/usr/bin/guix-offload-agent") || strings.Contains(string(unit), "/usr/local/bin") {
		t.Errorf("installed unit does not run BINDIR's program:\n%s", unit)
	}
	make("uninstall")
	var left []string
	filepath.WalkDir(stage, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, path)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("make uninstall left %v", left)
	}
}
