package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestStaticBuild builds both programs the way docs/install.md says
// (`make build`) and checks that they are static: no program interpreter
// (the dynamic loader a foreign binary would look for in /lib, which Guix
// System does not have) and no dynamic section.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both programs")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed (test.sh installs it)")
	}
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
