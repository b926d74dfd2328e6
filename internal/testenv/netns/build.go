package netns

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// binaries caches what BuildBinary built, for the life of the test
// process: building and linking a command costs seconds, and every
// namespace test wants the same few programs. It is the package's only
// process-wide state; it is only ever added to, under its mutex.
var binaries = struct {
	sync.Mutex
	dir   string
	built map[string]string
}{built: map[string]string{}}

const binPrefix = "guix-offload-netns-bin-"

// BuildBinary builds the main package pkg (an import path such as
// "github.com/guix-offload/guix-offload/cmd/guix-offload-agent") with `go
// build` and returns the program's path. It builds each package once per
// test process, into a directory of its own under os.TempDir that
// [CleanupBinaries] removes (and that the next test process removes when
// this one ended without it). It stops t with Fatal when the build fails.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	binaries.Lock()
	defer binaries.Unlock()
	if p, ok := binaries.built[pkg]; ok {
		return p
	}
	if binaries.dir == "" {
		removeStaleBinaryDirs()
		dir, err := os.MkdirTemp("", binPrefix+strconv.Itoa(os.Getpid())+"-")
		if err != nil {
			t.Fatalf("netns: build %s: %v", pkg, err)
		}
		binaries.dir = dir
	}
	// go test puts the go command that runs it first on PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("netns: build %s: %v", pkg, err)
	}
	out := filepath.Join(binaries.dir, path.Base(pkg))
	cmd := exec.Command(goTool, "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("netns: go build %s: %v\n%s", pkg, err, bytes.TrimSpace(b))
	}
	binaries.built[pkg] = out
	return out
}

// CleanupBinaries removes what [BuildBinary] built. Call it from TestMain
// after m.Run:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		netns.CleanupBinaries()
//		os.Exit(code)
//	}
func CleanupBinaries() {
	binaries.Lock()
	defer binaries.Unlock()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
		binaries.dir = ""
		clear(binaries.built)
	}
}

// removeStaleBinaryDirs removes the binary directories of test processes
// that no longer exist.
func removeStaleBinaryDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), binPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), binPrefix)
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}
