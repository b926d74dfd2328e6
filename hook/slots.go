package hook

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Slot is a build slot on a machine: the lock file STATE/HOST:PORT/N, in
// Guix's own layout, held with an open-file-description write lock. OFD
// locks conflict with the fcntl(F_SETLK) locks Guix's hook takes on the
// same files, so our hook and Guix's never overbook a machine together;
// the kernel releases the lock when the process dies, even by SIGKILL.
type Slot struct {
	Path string
	f    *os.File
}

// AcquireSlot takes the first free slot of the n slots of the machine
// with key (HOST:PORT) under stateDir, without waiting. It returns nil
// and no error when every slot is taken. A busy machine costs three
// system calls per slot (open, lock, close); the directory is created
// only when missing.
func AcquireSlot(stateDir, key string, n int) (*Slot, error) {
	dir := filepath.Join(stateDir, key)
	made := false
	for i := 0; i < n; i++ {
		p := dir + "/" + strconv.Itoa(i)
		fd, err := openLock(p)
		if errors.Is(err, unix.ENOENT) && !made {
			made = true
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create slot directory: %w", err)
			}
			fd, err = openLock(p)
		}
		if err != nil {
			return nil, fmt.Errorf("open slot lock %s: %w", p, err)
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
		err = unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		if err == nil {
			return &Slot{Path: p, f: os.NewFile(uintptr(fd), p)}, nil
		}
		unix.Close(fd)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			continue
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return nil, nil
}

// openLock opens (creating) a lock file, without the bookkeeping of an
// os.File: most are closed again at once.
func openLock(p string) (int, error) {
	for {
		fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// Release frees the slot. Safe on nil and twice.
func (s *Slot) Release() {
	if s == nil || s.f == nil {
		return
	}
	s.f.Close() // closing the only descriptor of the description drops the lock
	s.f = nil
}
