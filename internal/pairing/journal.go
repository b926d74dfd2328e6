package pairing

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// journal remembers the state of everything a pairing step touches, so
// that a step that cannot finish (the other side refused at the last
// moment, went away, or a later file failed) puts every byte back: files
// and their backups as they were, created directories and accounts gone.
type journal struct {
	seen  map[string]bool
	steps []func() error // undo, in order of doing
	made  []string       // directories created by mkdirAll, parents first
}

func newJournal() *journal { return &journal{seen: map[string]bool{}} }

// save records path's current state the first time it is touched.
func (j *journal) save(path string) error {
	if j == nil || j.seen[path] {
		return nil
	}
	j.seen[path] = true
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		j.steps = append(j.steps, func() error {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		})
		return nil
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	perm := st.Mode().Perm()
	uid, gid := -1, -1
	if o, ok := statOwner(st); ok {
		uid, gid = o[0], o[1]
	}
	j.steps = append(j.steps, func() error { return writeAtomic(path, data, perm, uid, gid) })
	return nil
}

// do records undo for something just done.
func (j *journal) do(undo func() error) {
	if j != nil {
		j.steps = append(j.steps, undo)
	}
}

// mkdir creates dir owned by uid:gid and records it.
func (j *journal) mkdir(dir string, perm fs.FileMode, uid, gid int) error {
	if err := os.Mkdir(dir, perm); err != nil {
		return err
	}
	j.do(func() error { return os.Remove(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(dir, perm)
}

// mkdirAll creates dir and its missing parents, recording each.
func (j *journal) mkdirAll(dir string, perm fs.FileMode) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := dir[:max(0, lastSlash(dir))]
	if parent != "" && parent != dir {
		if err := j.mkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	j.do(func() error { return os.Remove(dir) })
	if j != nil {
		j.made = append(j.made, dir)
	}
	return nil
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// rollback undoes every recorded step, newest first, and reports every
// failure.
func (j *journal) rollback() error {
	if j == nil {
		return nil
	}
	var errs []error
	for i := len(j.steps) - 1; i >= 0; i-- {
		if err := j.steps[i](); err != nil {
			errs = append(errs, err)
		}
	}
	j.steps = nil
	return errors.Join(errs...)
}

func statOwner(st fs.FileInfo) ([2]int, bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return [2]int{}, false
	}
	return [2]int{int(s.Uid), int(s.Gid)}, true
}
