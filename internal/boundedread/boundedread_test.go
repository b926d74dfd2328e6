package boundedread

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Issue 12, item 6: /dev/zero, a FIFO with no writer and a directory are
// refused at once; a file over its cap is refused; a missing file is
// fs.ErrNotExist as before.
func TestReadFileRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/dev/zero", fifo, dir} {
		if _, err := ReadFile(path, Config); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", path, err)
		}
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, Key+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(big, Key); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "64 KiB") {
		t.Errorf("big: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "none"), Key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(ok, link); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(link, Key); err != nil || string(data) != "hello" {
		t.Errorf("through a symlink: %q, %v", data, err)
	}
}
