package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/test/standin/internal/derivation"
	"github.com/guix-offload/guix-offload/test/standin/internal/store"
)

// fixture is a key pair or ACL made by real Guix (kept by package pki).
func fixture(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "internal", "pki", "testdata", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

type env struct {
	g              *guix
	stdout, stderr bytes.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{}
	e.g = &guix{
		store:          &store.Store{Dir: filepath.Join(dir, "store"), State: filepath.Join(dir, "state")},
		signingKeyFile: fixture(t, "signing-key.sec"),
		aclFile:        fixture(t, "acl"),
		stdout:         &e.stdout,
		stderr:         &e.stderr,
		stdin:          strings.NewReader(""),
	}
	if err := os.MkdirAll(e.g.store.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GUIX_STANDIN_SYSTEMS", "x86_64-linux")
	return e
}

func (e *env) run(args ...string) int {
	e.stdout.Reset()
	e.stderr.Reset()
	return e.g.run(context.Background(), args)
}

func (e *env) drv(t *testing.T, name, script string) (drvPath, out string) {
	t.Helper()
	out = filepath.Join(e.g.store.Dir, strings.Repeat("a", 31)+string(rune('a'+len(name)%26))+"-"+name)
	d := &derivation.Derivation{
		Outputs: []derivation.Output{{Name: "out", Path: out}},
		System:  "x86_64-linux", Builder: "/bin/sh", Args: []string{"-c", script},
		Env: [][2]string{{"out", out}, {"PATH", "/usr/bin:/bin"}},
	}
	drvPath = filepath.Join(e.g.store.Dir, strings.Repeat("d", 32)+"-"+name+".drv")
	if err := os.WriteFile(drvPath, []byte(d.String()), 0o444); err != nil {
		t.Fatal(err)
	}
	return drvPath, out
}

func TestBuildAndArchiveRoundTrip(t *testing.T) {
	e := newEnv(t)
	drv, out := e.drv(t, "hello", `echo "log line"; echo hello > "$out"`)
	if code := e.run("build", "--max-silent-time=5", "--timeout", "10", drv); code != 0 {
		t.Fatalf("build exit %d: %s", code, e.stderr.String())
	}
	if strings.TrimSpace(e.stdout.String()) != out || !strings.Contains(e.stderr.String(), "log line") {
		t.Fatalf("stdout %q stderr %q", e.stdout.String(), e.stderr.String())
	}
	// --missing prints only what is absent.
	absent := filepath.Join(e.g.store.Dir, strings.Repeat("z", 32)+"-absent")
	e.g.stdin = strings.NewReader(out + "\n" + absent + "\n")
	if code := e.run("archive", "--missing"); code != 0 || strings.TrimSpace(e.stdout.String()) != absent {
		t.Fatalf("--missing: exit %d, %q", code, e.stdout.String())
	}
	// Export, remove, import back: same contents, same deriver.
	if code := e.run("archive", "--export", out); code != 0 {
		t.Fatalf("export: %s", e.stderr.String())
	}
	exported := append([]byte(nil), e.stdout.Bytes()...)
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	e.g.stdin = bytes.NewReader(exported)
	if code := e.run("archive", "--import"); code != 0 {
		t.Fatalf("import: %s", e.stderr.String())
	}
	if got, err := os.ReadFile(out); err != nil || string(got) != "hello\n" {
		t.Fatalf("imported %q, %v", got, err)
	}
	info, err := e.g.store.Query(out)
	if err != nil || info.Deriver != drv {
		t.Fatalf("Query = %+v, %v", info, err)
	}

	// An unauthorized signer: refused, nothing imported.
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(other, pki.NewACL().MarshalSexp(), 0o644); err != nil {
		t.Fatal(err)
	}
	e.g.aclFile = other
	e.g.stdin = bytes.NewReader(exported)
	if code := e.run("archive", "--import"); code != 1 || !strings.Contains(e.stderr.String(), "lacks a valid signature") {
		t.Fatalf("unauthorized import: exit %d, %s", code, e.stderr.String())
	}
	if ents, _ := os.ReadDir(e.g.store.Dir); len(ents) != 1 { // only the .drv
		t.Errorf("store after refused import: %v", ents)
	}
}

func TestBuildFailures(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		args         []string
		says         string
	}{
		{"exit code", `exit 3`, nil, "failed with exit code 3"},
		{"no output", `true`, nil, "failed to produce output path"},
		{"silence", `sleep 5`, []string{"--max-silent-time=1"}, "timed out after 1 seconds of silence"},
		{"timeout", `while :; do echo .; sleep 0.1; done`, []string{"--timeout=1"}, "timed out after 1 seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			drv, out := e.drv(t, "x", tc.script)
			code := e.run(append(append([]string{"build"}, tc.args...), drv)...)
			if code != 1 {
				t.Fatalf("exit %d, want 1 as guix build", code)
			}
			for _, want := range []string{tc.says, "guix build: error: build of `" + drv + "' failed"} {
				if !strings.Contains(e.stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, e.stderr.String())
				}
			}
			if _, err := os.Lstat(out); err == nil {
				t.Errorf("failed build left %s", out)
			}
		})
	}
}

func TestPlainFile(t *testing.T) {
	e := newEnv(t)
	// It exits 1 after adding the item, as real Guix does (see
	// TestBuildExpressionCrashes).
	if code := e.run("build", "-e", `(plain-file "guix-offload-test" "a \"quoted\" text")`); code != 1 {
		t.Fatalf("exit %d: %s", code, e.stderr.String())
	}
	p := store.TextPath(e.g.store.Dir, "guix-offload-test", `a "quoted" text`, nil)
	if got, err := os.ReadFile(p); err != nil || string(got) != `a "quoted" text` {
		t.Fatalf("%s: %q, %v", p, got, err)
	}
	if code := e.run("build", "-e", `(computed-file "x" #~1)`); code != 1 {
		t.Errorf("unsupported expression: exit %d", code)
	}
}

// FuzzPlainFile feeds `guix build -e` arbitrary expressions: it must never
// panic, never write outside the store, and what it accepts must be a
// valid store item holding the string it was given.
func FuzzPlainFile(f *testing.F) {
	f.Add(`(plain-file "guix-offload-test" "hello")`)
	f.Add(`(plain-file "a" "with \"quotes\" and \\ and \n")`)
	f.Add(`(plain-file "../../etc/passwd" "x")`)
	f.Add(`(plain-file ".hidden" "x")`)
	f.Add(`(computed-file "x" #~1)`)
	dir := f.TempDir()
	g := &guix{store: &store.Store{Dir: filepath.Join(dir, "store"), State: filepath.Join(dir, "state")}}
	if err := os.MkdirAll(g.store.Dir, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		p, err := g.plainFile(expr)
		if err != nil {
			return
		}
		if filepath.Dir(p) != g.store.Dir || !g.store.Valid(p) {
			t.Fatalf("%q made %q, not an item of %s", expr, p, g.store.Dir)
		}
		if _, err := os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	})
}

// `guix build -e '(plain-file …)'` behaves as on real Guix: the item is
// added, then printing it fails (match-error), nothing on stdout, exit 1.
func TestBuildExpressionCrashes(t *testing.T) {
	e := newEnv(t)
	if code := e.run("build", "-e", `(plain-file "x" "y")`); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if e.stdout.Len() != 0 || !strings.Contains(e.stderr.String(), "Throw to key `match-error' with args `(\"match\" \"no matching pattern\" \""+e.g.store.Dir+"/") {
		t.Fatalf("stdout %q, stderr %q", e.stdout.String(), e.stderr.String())
	}
	p := store.TextPath(e.g.store.Dir, "x", "y", nil)
	if !e.g.store.Valid(p) {
		t.Errorf("%s not added", p)
	}
}

// `guix repl -t machine` evaluates add-text-to-store as Guix's own
// `guix offload test` sends it, and answers in the REPL's protocol.
func TestReplAddText(t *testing.T) {
	e := newEnv(t)
	e.g.stdin = strings.NewReader(`(begin (use-modules (guix)) (with-store store (add-text-to-store store "test" "Hello, build machine!")))` + "\n" +
		"(+ 1 2)\n")
	if code := e.run("repl", "-t", "machine"); code != 0 {
		t.Fatalf("exit %d: %s", code, e.stderr.String())
	}
	p := store.TextPath(e.g.store.Dir, "test", "Hello, build machine!", nil)
	want := "(repl-version 0 1 1)\n(values (value \"" + p + "\"))\n(exception misc-error (value "
	if !strings.HasPrefix(e.stdout.String(), want) {
		t.Fatalf("stdout %q, want it to start with %q", e.stdout.String(), want)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "Hello, build machine!" {
		t.Fatalf("%s holds %q, %v", p, got, err)
	}
}
