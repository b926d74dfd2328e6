package testenv

import (
	"os"
	"os/exec"
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
