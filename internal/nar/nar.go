package nar

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const magic = "nix-archive-1"

// Dump writes the NAR of the file tree at path to w: regular files (with
// their executable bit), symbolic links and directories, entries sorted by
// name. Other file types (devices, sockets, FIFOs) are an error, as in
// Guix.
func Dump(w io.Writer, path string) error {
	wr := &writer{w: w}
	if err := dump(wr, path); err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	return nil
}

func dump(w *writer, path string) error {
	w.str(magic)
	if err := dumpNode(w, path, 0); err != nil {
		return err
	}
	return w.err
}

func dumpNode(w *writer, path string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%s: directories nested more than %d deep", path, maxDepth)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	w.str("(")
	w.str("type")
	switch mode := fi.Mode(); {
	case mode.IsRegular():
		w.str("regular")
		if mode&0o100 != 0 {
			w.str("executable")
			w.str("")
		}
		w.str("contents")
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		size := uint64(fi.Size())
		w.u64(size)
		n, err := io.CopyN(w, f, int64(size))
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: file shrank while being archived (%d of %d bytes)", path, n, size)
			}
			return err
		}
		w.pad(size)
	case mode&os.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return err
		}
		w.str("symlink")
		w.str("target")
		w.str(target)
	case mode.IsDir():
		w.str("directory")
		entries, err := os.ReadDir(path) // sorted by name, byte order
		if err != nil {
			return err
		}
		for _, e := range entries {
			w.str("entry")
			w.str("(")
			w.str("name")
			w.str(e.Name())
			w.str("node")
			if err := dumpNode(w, filepath.Join(path, e.Name()), depth+1); err != nil {
				return err
			}
			w.str(")")
		}
	default:
		return fmt.Errorf("%s: cannot archive a file of type %v", path, mode.Type())
	}
	w.str(")")
	return w.err
}

// restore reads one NAR from w and recreates it at dst, which must not
// exist and whose parent directory must, or only validates it when dst is
// "". It never writes outside dst: it rejects entry names that are empty,
// ".", "..", or hold "/" or NUL, entries out of order or repeated, and
// creates every file relative to directory descriptors it made itself,
// with O_EXCL and O_NOFOLLOW, so no symbolic link (in the archive or
// raced in) is ever followed. Regular files get mode 0644 or, when
// executable, 0755; directories 0755. On error nothing is left at dst.
// restore stops reading at the end of the NAR, so it works on a stream
// that continues.
func restore(w *wire, dst string) error {
	rs := &restorer{w: w, discard: dst == ""}
	parent := -1
	if !rs.discard {
		fd, err := unix.Open(filepath.Dir(dst), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("restore %s: open parent directory: %w", dst, err)
		}
		defer unix.Close(fd)
		parent = fd
	}
	err := w.expect(magic)
	if err == nil {
		err = rs.node(parent, filepath.Base(dst), 0)
	}
	if err != nil {
		if !rs.discard && rs.created {
			os.RemoveAll(dst)
		}
		if dst != "" {
			return fmt.Errorf("restore %s: %w", dst, err)
		}
		return fmt.Errorf("check archive: %w", err)
	}
	return nil
}

type restorer struct {
	w       *wire
	discard bool
	created bool // the top-level file exists and must go on error
}

// node restores one (type …) node as name in directory dirfd.
func (rs *restorer) node(dirfd int, name string, depth int) error {
	w := rs.w
	if depth > maxDepth {
		return formatErr(w.off, "directories nested more than %d deep", maxDepth)
	}
	if err := w.expect("("); err != nil {
		return err
	}
	if err := w.expect("type"); err != nil {
		return err
	}
	typ, err := w.str(maxKeyword, "type")
	if err != nil {
		return err
	}
	switch typ {
	case "regular":
		err = rs.regular(dirfd, name)
	case "symlink":
		err = rs.symlink(dirfd, name)
	case "directory":
		return rs.directory(dirfd, name, depth) // reads the closing ")"
	default:
		return formatErr(w.off, "unknown file type %q", typ)
	}
	if err != nil {
		return err
	}
	return w.expect(")")
}

func (rs *restorer) regular(dirfd int, name string) error {
	w := rs.w
	kw, err := w.str(maxKeyword, "keyword")
	if err != nil {
		return err
	}
	executable := false
	if kw == "executable" {
		executable = true
		if err := w.expect(""); err != nil {
			return err
		}
		if kw, err = w.str(maxKeyword, "keyword"); err != nil {
			return err
		}
	}
	if kw != "contents" {
		return formatErr(w.off, "expected \"contents\", found %q", kw)
	}
	size, err := w.u64()
	if err != nil {
		return err
	}
	if size > 1<<62 {
		return formatErr(w.off, "file size %d is not plausible", size)
	}
	var dst io.Writer = io.Discard
	if !rs.discard {
		mode := uint32(0o644)
		if executable {
			mode = 0o755
		}
		fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		rs.created = true
		if err := unix.Fchmod(fd, mode); err != nil { // not subject to umask
			unix.Close(fd)
			return fmt.Errorf("chmod %s: %w", name, err)
		}
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		dst = f
	}
	if _, err := io.CopyN(dst, w, int64(size)); err != nil {
		if errors.Is(err, io.EOF) {
			return formatErr(w.off, "stream ends inside the contents of %q", name)
		}
		return err
	}
	if f, ok := dst.(*os.File); ok {
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return w.padding(size)
}

func (rs *restorer) symlink(dirfd int, name string) error {
	w := rs.w
	if err := w.expect("target"); err != nil {
		return err
	}
	target, err := w.str(maxTarget, "symbolic link target")
	if err != nil {
		return err
	}
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return formatErr(w.off, "symbolic link %q has an empty target or one holding NUL", name)
	}
	if rs.discard {
		return nil
	}
	if err := unix.Symlinkat(target, dirfd, name); err != nil {
		return fmt.Errorf("create symbolic link %s: %w", name, err)
	}
	rs.created = true
	return nil
}

func (rs *restorer) directory(dirfd int, name string, depth int) error {
	w := rs.w
	fd := -1
	if !rs.discard {
		if err := unix.Mkdirat(dirfd, name, 0o700); err != nil {
			return fmt.Errorf("create directory %s: %w", name, err)
		}
		rs.created = true
		var err error
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open directory %s: %w", name, err)
		}
		defer unix.Close(fd)
	}
	prev := ""
	for first := true; ; first = false {
		kw, err := w.str(maxKeyword, "keyword")
		if err != nil {
			return err
		}
		if kw == ")" {
			break
		}
		if kw != "entry" {
			return formatErr(w.off, "expected \"entry\" or \")\", found %q", kw)
		}
		if err := w.expect("("); err != nil {
			return err
		}
		if err := w.expect("name"); err != nil {
			return err
		}
		entry, err := w.str(maxName, "entry name")
		if err != nil {
			return err
		}
		if entry == "" || entry == "." || entry == ".." || strings.ContainsAny(entry, "/\x00") {
			return formatErr(w.off, "unsafe entry name %q", entry)
		}
		if !first && entry <= prev {
			if entry == prev {
				return formatErr(w.off, "entry %q appears twice", entry)
			}
			return formatErr(w.off, "entry %q comes after %q: entries must be sorted", entry, prev)
		}
		prev = entry
		if err := w.expect("node"); err != nil {
			return err
		}
		if err := rs.node(fd, entry, depth+1); err != nil {
			return err
		}
		if err := w.expect(")"); err != nil {
			return err
		}
	}
	// The ")" that ended the entries also closed this node.
	if fd >= 0 {
		if err := unix.Fchmod(fd, 0o755); err != nil {
			return fmt.Errorf("chmod %s: %w", name, err)
		}
	}
	return nil
}

func removeAll(p string) { os.RemoveAll(p) }
