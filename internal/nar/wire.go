package nar

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Limits on what a NAR or an export stream may hold, so a hostile stream
// cannot make us allocate without bound.
const (
	maxName      = 255      // a directory entry name (NAME_MAX)
	maxTarget    = 4095     // a symbolic link target (PATH_MAX - 1)
	maxPath      = 4096     // a store path in export metadata
	maxKeyword   = 16       // "nix-archive-1", "type", "executable", …
	maxRefs      = 1 << 16  // references of one store item
	maxSignature = 64 << 10 // a signature S-expression
	maxDepth     = 512      // directory nesting
)

// ErrFormat is wrapped by every error about a stream that is not a valid
// NAR or export stream.
var ErrFormat = errors.New("invalid archive")

func formatErr(off int64, format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrFormat, off, fmt.Sprintf(format, args...))
}

// wire reads the NAR/daemon wire format (little-endian u64 integers;
// strings as a length, the bytes and zero padding to 8) and feeds what it
// reads to the active hashes.
type wire struct {
	r      *bufio.Reader
	off    int64
	hashes []hash.Hash
	buf    [8]byte
}

func newWire(r io.Reader) *wire { return &wire{r: bufio.NewReaderSize(r, 64<<10)} }

func (w *wire) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.off += int64(n)
		for _, h := range w.hashes {
			h.Write(p[:n])
		}
	}
	return n, err
}

func (w *wire) full(p []byte) error {
	if _, err := io.ReadFull(w, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return formatErr(w.off, "stream ends early")
		}
		return err
	}
	return nil
}

func (w *wire) u64() (uint64, error) {
	if err := w.full(w.buf[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(w.buf[:]), nil
}

// padding reads the zero padding after n bytes of string data.
func (w *wire) padding(n uint64) error {
	if p := (8 - n%8) % 8; p > 0 {
		if err := w.full(w.buf[:p]); err != nil {
			return err
		}
		for _, c := range w.buf[:p] {
			if c != 0 {
				return formatErr(w.off, "non-zero padding")
			}
		}
	}
	return nil
}

// str reads a string of at most max bytes; what names it in errors.
func (w *wire) str(max int, what string) (string, error) {
	n, err := w.u64()
	if err != nil {
		return "", err
	}
	if n > uint64(max) {
		return "", formatErr(w.off, "%s is %d bytes long, more than %d", what, n, max)
	}
	b := make([]byte, n)
	if err := w.full(b); err != nil {
		return "", err
	}
	return string(b), w.padding(n)
}

// expect reads a string that must be want.
func (w *wire) expect(want string) error {
	s, err := w.str(maxKeyword, "keyword")
	if err != nil {
		return err
	}
	if s != want {
		return formatErr(w.off, "expected %q, found %q", want, s)
	}
	return nil
}

// writer writes the wire format and feeds it to the active hashes.
type writer struct {
	w      io.Writer
	hashes []hash.Hash
	buf    [8]byte
	err    error
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.Write(p)
	for _, h := range w.hashes {
		h.Write(p[:n])
	}
	w.err = err
	return n, err
}

func (w *writer) u64(n uint64) {
	binary.LittleEndian.PutUint64(w.buf[:], n)
	w.Write(w.buf[:])
}

func (w *writer) pad(n uint64) {
	var zero [8]byte
	if p := (8 - n%8) % 8; p > 0 {
		w.Write(zero[:p])
	}
}

func (w *writer) str(s string) {
	w.u64(uint64(len(s)))
	io.WriteString(w, s)
	w.pad(uint64(len(s)))
}
