package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CI reports whether the tests run under continuous integration, where
// every real-peer test must run.
func CI() bool { return os.Getenv("CI") == "true" }

// Skip skips t with reason, or fails it under CI.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if CI() {
		t.Fatalf("cannot run under CI=true: %s", reason)
	}
	t.Skip(reason)
}

// NeedRoot skips (or under CI fails) t unless it runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (network namespaces, bind mounts)")
	}
}

// LookPath returns the path of the named program or skips (under CI
// fails) t, naming the Debian package that provides it.
func LookPath(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, name+" not found; install Debian's "+debianPackage+" (./test.sh does)")
	}
	return p
}

// PrivateCache points $XDG_CACHE_HOME, for this test binary and the
// programs it runs, at a new temporary directory, so that nothing they
// cache (such as `guix-offload discover`'s good signatures) lands in, or
// is read from, the invoking user's home. Call it from TestMain; the
// returned function removes the directory.
func PrivateCache() (cleanup func()) {
	dir, err := os.MkdirTemp("", "guix-offload-test-cache-")
	if err != nil {
		panic("testenv: " + err.Error())
	}
	// The go command keeps its build cache there too: tests that build
	// binaries keep using the invoking user's.
	if os.Getenv("GOCACHE") == "" {
		if user, err := os.UserCacheDir(); err == nil {
			os.Setenv("GOCACHE", filepath.Join(user, "go-build"))
		}
	}
	old, had := os.LookupEnv("XDG_CACHE_HOME")
	os.Setenv("XDG_CACHE_HOME", dir)
	return func() {
		if had {
			os.Setenv("XDG_CACHE_HOME", old)
		} else {
			os.Unsetenv("XDG_CACHE_HOME")
		}
		os.RemoveAll(dir)
	}
}
