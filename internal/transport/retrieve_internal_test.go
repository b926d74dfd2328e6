package transport

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestSweepStale(t *testing.T) {
	store := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	mk := func(name string, mtime time.Time) string {
		p := filepath.Join(store, name)
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A pid that cannot exist (beyond pid_max's ceiling).
	dead := mk(tempPrefix+"4194305-aaaa", old)
	alive := mk(tempPrefix+strconv.Itoa(os.Getpid())+"-bbbb", old)
	fresh := mk(tempPrefix+"4194305-cccc", time.Now())
	item := mk("0123456789abcdfghijklmnpqrsvwxyz-hello", old)
	other := mk(".links", old)
	sweepStale(store)
	for p, want := range map[string]bool{dead: false, alive: true, fresh: true, item: true, other: true} {
		_, err := os.Stat(p)
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(p), got, want)
		}
	}
}
