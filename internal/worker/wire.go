package worker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits on what the other side may send.
const (
	// MaxPath bounds a store path.
	MaxPath = 4096
	// MaxPaths bounds a list of paths.
	MaxPaths = 1 << 20
	// MaxMessage bounds a log string or an error message.
	MaxMessage = 1 << 20
	// MaxChunk bounds one chunk of data in STDERR_WRITE or STDERR_READ.
	MaxChunk = 8 << 20
	// MaxText bounds the content of add-text-to-store.
	MaxText = 64 << 20
)

// ErrProtocol is wrapped by every error about bytes that do not follow
// the protocol.
var ErrProtocol = errors.New("store protocol error")

// Reader reads the protocol's encoding: little-endian u64 integers;
// strings as their length, the bytes, and zero padding to a multiple of
// 8. It counts what it read, for messages.
type Reader struct {
	r   io.Reader
	off int64
	buf [8]byte
}

// NewReader returns a Reader of r (buffer r yourself).
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

func (r *Reader) errf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrProtocol, r.off, fmt.Sprintf(format, args...))
}

func (r *Reader) full(p []byte) error {
	n, err := io.ReadFull(r.r, p)
	r.off += int64(n)
	if errors.Is(err, io.ErrUnexpectedEOF) || (errors.Is(err, io.EOF) && r.off > 0) {
		return r.errf("the stream ends early")
	}
	return err
}

// Int reads a u64.
func (r *Reader) Int() (uint64, error) {
	if err := r.full(r.buf[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(r.buf[:]), nil
}

// Bool reads a u64 that must be 0 or 1... or anything: like the daemon,
// any non-zero value is true.
func (r *Reader) Bool() (bool, error) {
	n, err := r.Int()
	return n != 0, err
}

// Bytes reads a string of at most max bytes into a fresh slice; what
// names it in errors.
func (r *Reader) Bytes(max int, what string) ([]byte, error) {
	n, err := r.Int()
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, r.errf("%s is %d bytes long, more than %d", what, n, max)
	}
	b := make([]byte, n)
	if err := r.full(b); err != nil {
		return nil, err
	}
	return b, r.padding(n)
}

// String reads a string of at most max bytes.
func (r *Reader) String(max int, what string) (string, error) {
	b, err := r.Bytes(max, what)
	return string(b), err
}

func (r *Reader) padding(n uint64) error {
	p := (8 - n%8) % 8
	if p == 0 {
		return nil
	}
	if err := r.full(r.buf[:p]); err != nil {
		return err
	}
	for _, c := range r.buf[:p] {
		if c != 0 {
			return r.errf("non-zero padding")
		}
	}
	return nil
}

// Strings reads a list of at most MaxPaths strings of at most max bytes
// each.
func (r *Reader) Strings(max int, what string) ([]string, error) {
	n, err := r.Int()
	if err != nil {
		return nil, err
	}
	if n > MaxPaths {
		return nil, r.errf("a list of %d %ss, more than %d", n, what, MaxPaths)
	}
	out := make([]string, 0, min(n, 1024))
	for i := uint64(0); i < n; i++ {
		s, err := r.String(max, what)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Writer writes the protocol's encoding; it remembers the first error,
// which [Writer.Err] returns.
type Writer struct {
	w   io.Writer
	err error
	buf [8]byte
}

// NewWriter returns a Writer to w (buffer and flush w yourself).
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (w *Writer) write(p []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(p)
	}
}

// Int writes a u64.
func (w *Writer) Int(n uint64) {
	binary.LittleEndian.PutUint64(w.buf[:], n)
	w.write(w.buf[:])
}

// Bool writes 1 or 0.
func (w *Writer) Bool(b bool) {
	if b {
		w.Int(1)
	} else {
		w.Int(0)
	}
}

// Bytes writes a string.
func (w *Writer) Bytes(b []byte) {
	w.Int(uint64(len(b)))
	w.write(b)
	var zero [8]byte
	if p := (8 - len(b)%8) % 8; p > 0 {
		w.write(zero[:p])
	}
}

// String writes a string.
func (w *Writer) String(s string) { w.Bytes([]byte(s)) }

// Strings writes a list of strings.
func (w *Writer) Strings(l []string) {
	w.Int(uint64(len(l)))
	for _, s := range l {
		w.String(s)
	}
}

// Err is the first write error.
func (w *Writer) Err() error { return w.err }
