package boundedread

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Size caps for the kinds of files read, far above any real one.
const (
	// Config is a TOML configuration file.
	Config = 1 << 20
	// Machines is a machines.scm file.
	Machines = 4 << 20
	// ACL is an ACL file such as /etc/guix/acl.
	ACL = 4 << 20
	// Key is a key file: a Guix signing key, an OpenSSH host or private
	// key.
	Key = 64 << 10
	// Snapshot is a discovery snapshot (1,024 machines of a few KB).
	Snapshot = 32 << 20
)

// ErrNotRegular is wrapped by the error for a path that names something
// other than a regular file (a FIFO, a device, a directory).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by the error for a file over its cap.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads the regular file at path (following symbolic links),
// at most limit bytes. A missing file is an error wrapping
// fs.ErrNotExist, as from os.ReadFile.
func ReadFile(path string, limit int64) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO without a writer returns at once
	// instead of waiting for one; it is then refused as not regular.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(fi.Mode()))}
	}
	if fi.Size() > limit {
		return nil, tooLarge(path, limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(path, limit) // it grew meanwhile
	}
	return data, nil
}

func tooLarge(path string, limit int64) error {
	return &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: more than %d KiB, more than such a file ever holds", ErrTooLarge, limit>>10)}
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a file"
}
