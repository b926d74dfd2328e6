package hook

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Down returns every machine remembered as down at now, by key, with why
// (the hook reads only the records it needs, with [State.DownOf]).
func (s State) Down(now time.Time) map[string]string {
	dir := filepath.Join(s.Dir, "down")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if why, ok := s.readDown(filepath.Join(dir, e.Name()), now); ok {
			out[e.Name()] = why
		}
	}
	return out
}

// SlotHeld reports whether some process holds the lock file at path with
// a POSIX or OFD lock (for tests).
func SlotHeld(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}
