package standintest

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// markerName is the file that says a directory is a mount point the
// tests made on this machine (and which of its parents they made too).
// On the machine it is visible; inside the tests' mount namespaces the
// bind mount hides it.
const markerName = ".guix-offload-test-mount-point"

// MountPoint makes sure dir exists to bind-mount over in a private mount
// namespace, and that, when the tests had to create it (and its missing
// parents: /gnu/store on a machine without Guix), it goes once no test
// uses it any more. Each user holds a shared lock on the marker file in
// dir until t's cleanup; the last one out, finding no mount at dir in
// any namespace either, removes what was made. A directory that existed
// without the marker (a real Guix store) is never touched. A run killed
// before its cleanup leaves the marker, and the next run removes the
// directory.
func MountPoint(t testing.TB, dir string) {
	t.Helper()
	dir = filepath.Clean(dir)
	marker := filepath.Join(dir, markerName)
	var made []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		made = append(made, d) // deepest first
	}
	if len(made) > 0 {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(marker, []byte(strings.Join(made, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(marker)
	if err != nil {
		return // not ours: leave it alone
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", marker, err)
	}
	t.Cleanup(func() {
		defer f.Close()
		// Anyone else still using it holds a shared lock.
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			return
		}
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 1 || ents[0].Name() != markerName || mounted(dir) {
			return
		}
		data, err := os.ReadFile(marker)
		if err != nil {
			return
		}
		if err := os.Remove(marker); err != nil {
			return
		}
		for _, d := range strings.Fields(string(data)) {
			// Only dir and its parents, deepest first; stop at the
			// first that is not empty.
			if d != dir && !strings.HasPrefix(dir, d+"/") {
				break
			}
			if os.Remove(d) != nil {
				break
			}
		}
	})
}

// mounted reports whether some process on this machine, in any mount
// namespace, has a mount at dir (a test run of code that takes no lock).
func mounted(dir string) bool {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	seen := map[string]bool{}
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		ns, err := os.Readlink(filepath.Join("/proc", p.Name(), "ns", "mnt"))
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		if hasMount(filepath.Join("/proc", p.Name(), "mountinfo"), dir) {
			return true
		}
	}
	return false
}

func hasMount(mountinfo, dir string) bool {
	f, err := os.Open(mountinfo)
	if err != nil {
		return errors.Is(err, os.ErrPermission)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNT-POINT …
		if f := strings.Fields(sc.Text()); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}
