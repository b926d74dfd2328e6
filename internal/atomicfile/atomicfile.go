package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Private is the mode of files only their owner may read, such as the
// offload hook's state.
const Private fs.FileMode = 0o600

// Write replaces the file at path with data and permission bits perm: it
// writes a temporary file in the same directory (created, mode 0755, when
// missing), syncs it to disk and renames it over path. The temporary file
// is removed when anything fails.
func Write(path string, data []byte, perm fs.FileMode) error {
	return WriteOwned(path, data, perm, -1, -1)
}

// WriteOwned is [Write] that also gives the file the owner uid and group
// gid; -1 leaves either unchanged.
func WriteOwned(path string, data []byte, perm fs.FileMode, uid, gid int) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
