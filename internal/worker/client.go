package worker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
)

// Protocol constants (see the package documentation for where Guix
// defines them).
const (
	Magic1 = 0x6e697863 // the client's greeting
	Magic2 = 0x6478696f // the daemon's answer

	// Version is the protocol version this package speaks, Guix's
	// PROTOCOL_VERSION when it was written.
	Version = 0x161
	// MinVersion is the oldest daemon version this package talks to:
	// from minor 0x61 on, SetOptions carries max-silent-time and the
	// timeout only as name/value pairs, which is what we send.
	MinVersion = 0x161

	// DefaultSocket is where guix-daemon listens.
	DefaultSocket = "/var/guix/daemon-socket/socket"
)

// Op is an operation number (wop… in worker-protocol.hh).
type Op uint64

// The operations used here.
const (
	OpIsValidPath     Op = 1
	OpQueryReferences Op = 5
	OpAddTextToStore  Op = 8
	OpBuildPaths      Op = 9
	OpAddTempRoot     Op = 11
	OpExportPath      Op = 16
	OpSetOptions      Op = 19
	OpQueryPathInfo   Op = 26
	OpImportPaths     Op = 27
	OpQueryValidPaths Op = 31
)

// Frame tags the daemon sends while it works (STDERR_… in
// worker-protocol.hh).
const (
	StderrNext  = 0x6f6c6d67
	StderrRead  = 0x64617461
	StderrWrite = 0x64617416
	StderrLast  = 0x616c7473
	StderrError = 0x63787470
)

// Major and Minor split a protocol version.
func Major(v uint64) uint64 { return v & 0xff00 }

// Minor is the low byte of a protocol version.
func Minor(v uint64) uint64 { return v & 0x00ff }

// Error is a failure the daemon reported (STDERR_ERROR): its message and
// status (for a build: 100 permanent failure, 101 timeout, 1 other).
type Error struct {
	Message string
	Status  int
}

func (e *Error) Error() string {
	return fmt.Sprintf("guix-daemon: %s (status %d)", e.Message, e.Status)
}

// ErrTooOld: the daemon speaks an older protocol than [MinVersion] (or
// another major version).
var ErrTooOld = errors.New("the daemon's store protocol is too old")

// Conn is a handshaken connection to a daemon. It is not safe for
// concurrent use: one operation at a time.
type Conn struct {
	// DaemonVersion is the protocol version the daemon announced.
	DaemonVersion uint64
	// Log receives the daemon's log frames (STDERR_NEXT): build logs and
	// its messages. Nil discards them.
	Log io.Writer

	r  *Reader
	bw *bufio.Writer
	w  *Writer
}

// Handshake greets the daemon on rw (a connection to its socket) and
// returns the connection. It fails with [ErrTooOld] for a daemon older
// than [MinVersion], and with an [*Error] when the daemon cannot open its
// store. Closing rw is the caller's business (it also interrupts a
// blocked operation).
func Handshake(rw io.ReadWriter) (*Conn, error) {
	c := &Conn{r: NewReader(bufio.NewReaderSize(rw, 64<<10)), bw: bufio.NewWriterSize(rw, 64<<10)}
	c.w = NewWriter(c.bw)
	c.w.Int(Magic1)
	if err := c.flush(); err != nil {
		return nil, fmt.Errorf("store protocol greeting: %w", err)
	}
	magic, err := c.r.Int()
	if err != nil {
		return nil, fmt.Errorf("store protocol greeting: %w", err)
	}
	if magic != Magic2 {
		return nil, fmt.Errorf("%w: the greeting is %#x, not guix-daemon's %#x", ErrProtocol, magic, Magic2)
	}
	v, err := c.r.Int()
	if err != nil {
		return nil, fmt.Errorf("store protocol greeting: %w", err)
	}
	c.DaemonVersion = v
	if Major(v) != Major(Version) || Minor(v) < Minor(MinVersion) {
		return nil, fmt.Errorf("%w: it speaks %#x, we need %#x or later", ErrTooOld, v, MinVersion)
	}
	c.w.Int(Version)
	c.w.Int(0)      // no CPU affinity (minor ≥ 14)
	c.w.Bool(false) // do not reserve space (minor ≥ 11)
	if err := c.flush(); err != nil {
		return nil, fmt.Errorf("store protocol greeting: %w", err)
	}
	if err := c.process(nil, nil); err != nil {
		return nil, fmt.Errorf("store protocol greeting: %w", err)
	}
	return c, nil
}

func (c *Conn) flush() error {
	if err := c.w.Err(); err != nil {
		return err
	}
	return c.bw.Flush()
}

// process reads frames until STDERR_LAST (nil) or STDERR_ERROR (an
// [*Error]). Log strings go to c.Log; STDERR_WRITE data to sink;
// STDERR_READ is answered from source (an operation that expects
// neither fails on them).
func (c *Conn) process(sink io.Writer, source io.Reader) error {
	var buf []byte
	for {
		tag, err := c.r.Int()
		if err != nil {
			return err
		}
		switch tag {
		case StderrLast:
			return nil
		case StderrNext:
			s, err := c.r.Bytes(MaxMessage, "log string")
			if err != nil {
				return err
			}
			if c.Log != nil {
				_, _ = c.Log.Write(s)
			}
		case StderrError:
			msg, err := c.r.String(MaxMessage, "error message")
			if err != nil {
				return err
			}
			status, err := c.r.Int()
			if err != nil {
				return err
			}
			return &Error{Message: msg, Status: int(min(status, 255))}
		case StderrWrite:
			if sink == nil {
				return c.r.errf("the daemon sent data where none was expected")
			}
			b, err := c.r.Bytes(MaxChunk, "data chunk")
			if err != nil {
				return err
			}
			if _, err := sink.Write(b); err != nil {
				return &sinkError{err}
			}
		case StderrRead:
			if source == nil {
				return c.r.errf("the daemon asked for data where none was expected")
			}
			n, err := c.r.Int()
			if err != nil {
				return err
			}
			n = min(n, 64<<10)
			if uint64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			k, err := io.ReadFull(source, buf[:n])
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return &sourceError{err}
			}
			// At the end of source, an empty string: the daemon then
			// fails with "unexpected end-of-file", as it should for a
			// stream cut short.
			c.w.Bytes(buf[:k])
			if err := c.flush(); err != nil {
				return err
			}
		default:
			return c.r.errf("unknown frame %#x", tag)
		}
	}
}

// sinkError and sourceError are the caller's own writer and reader
// failing, told apart from the daemon's connection failing.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return "write the exported data: " + e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read the data to import: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

func (c *Conn) op(op Op, args func(w *Writer)) error {
	c.w.Int(uint64(op))
	if args != nil {
		args(c.w)
	}
	return c.flush()
}

// Options are the daemon's build options (wopSetOptions).
type Options struct {
	// MaxSilent and Timeout are max-silent-time and the build timeout;
	// 0 means none.
	MaxSilent, Timeout time.Duration
	// Verbosity and BuildVerbosity are the daemon's message and build
	// log verbosities (Guix's lvlError 0 … lvlVomit 5).
	Verbosity, BuildVerbosity int
	// Offload lets the daemon offload (use its build hook).
	Offload bool
	// Substitutes lets the daemon use substitutes.
	Substitutes bool
	// PrintBuildTrace makes the daemon print "@ build-started" and such.
	PrintBuildTrace bool
}

// seconds rounds d up to whole seconds, so that a limit below one second
// does not become 0 (no limit).
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// SetOptions sets the build options of this connection.
func (c *Conn) SetOptions(o Options) error {
	err := c.op(OpSetOptions, func(w *Writer) {
		w.Bool(false) // keep-failed
		w.Bool(false) // keep-going
		w.Bool(false) // fallback
		w.Int(uint64(o.Verbosity))
		w.Bool(o.Offload) // use-build-hook (minor ≥ 2)
		w.Int(uint64(o.BuildVerbosity))
		w.Int(0) // log-type (minor ≥ 4)
		w.Bool(o.PrintBuildTrace)
		w.Bool(o.Substitutes) // minor ≥ 10
		// Name/value pairs (minor ≥ 12); the daemon takes these two
		// from any client. 0 means no limit, as for the daemon.
		w.Int(2)
		w.String("build-max-silent-time")
		w.String(seconds(o.MaxSilent))
		w.String("build-timeout")
		w.String(seconds(o.Timeout))
	})
	if err != nil {
		return err
	}
	return c.process(nil, nil)
}

// ValidPaths returns those of paths that are valid in the daemon's store
// (wopQueryValidPaths).
func (c *Conn) ValidPaths(paths []string) ([]string, error) {
	if err := c.op(OpQueryValidPaths, func(w *Writer) { w.Strings(paths) }); err != nil {
		return nil, err
	}
	if err := c.process(nil, nil); err != nil {
		return nil, err
	}
	return c.r.Strings(MaxPath, "store path")
}

// References returns the references of path (wopQueryReferences).
func (c *Conn) References(path string) ([]string, error) {
	if err := c.op(OpQueryReferences, func(w *Writer) { w.String(path) }); err != nil {
		return nil, err
	}
	if err := c.process(nil, nil); err != nil {
		return nil, err
	}
	return c.r.Strings(MaxPath, "store path")
}

// ack reads the frames and the 1 that ends an operation without result.
func (c *Conn) ack() error {
	if err := c.process(nil, nil); err != nil {
		return err
	}
	_, err := c.r.Int()
	return err
}

// Import feeds the export stream read from r (`guix archive --export`
// format, signed) to the daemon, which checks every signature against its
// ACL and adds the items (wopImportPaths). It returns the imported paths.
func (c *Conn) Import(r io.Reader) ([]string, error) {
	if err := c.op(OpImportPaths, nil); err != nil {
		return nil, err
	}
	if err := c.process(nil, r); err != nil {
		return nil, err
	}
	return c.r.Strings(MaxPath, "store path")
}

// Build builds drvs (derivation paths) and returns when they are built
// (wopBuildPaths, normal mode). The build log arrives on c.Log; a failed
// build is an [*Error] with the daemon's status.
func (c *Conn) Build(drvs []string) error {
	if err := c.op(OpBuildPaths, func(w *Writer) {
		w.Strings(drvs)
		w.Int(0) // bmNormal (minor ≥ 15)
	}); err != nil {
		return err
	}
	return c.ack()
}

// Export writes the export of one item, signed by the daemon's key when
// sign is set, to w (wopExportPath): what `guix archive --export` writes
// for it, without the stream's leading 1 and final 0 ([ExportStream]
// adds them).
func (c *Conn) Export(path string, sign bool, w io.Writer) error {
	if err := c.op(OpExportPath, func(wr *Writer) {
		wr.String(path)
		wr.Bool(sign)
	}); err != nil {
		return err
	}
	return c.ackWith(w)
}

func (c *Conn) ackWith(sink io.Writer) error {
	if err := c.process(sink, nil); err != nil {
		return err
	}
	_, err := c.r.Int()
	return err
}

// ExportStream writes a whole export stream of paths, in the order given
// (dependencies first, see [Conn.SortByReferences]), to w, as
// guix/store.scm's export-paths does.
func (c *Conn) ExportStream(paths []string, sign bool, w io.Writer) error {
	ww := NewWriter(w)
	for _, p := range paths {
		ww.Int(1)
		if err := ww.Err(); err != nil {
			return &sinkError{err}
		}
		if err := c.Export(p, sign, w); err != nil {
			return err
		}
	}
	ww.Int(0)
	if err := ww.Err(); err != nil {
		return &sinkError{err}
	}
	return nil
}

// SortByReferences orders paths so that each comes after those of paths
// it refers to, asking the daemon for their references.
func (c *Conn) SortByReferences(paths []string) ([]string, error) {
	want := make(map[string]bool, len(paths))
	for _, p := range paths {
		want[p] = true
	}
	refs := make(map[string][]string, len(paths))
	for _, p := range paths {
		r, err := c.References(p)
		if err != nil {
			return nil, fmt.Errorf("references of %s: %w", p, err)
		}
		refs[p] = r
	}
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted)
	state := map[string]int{}
	out := make([]string, 0, len(paths))
	var visit func(p string)
	visit = func(p string) {
		if state[p] != 0 {
			return // done, or a cycle (self-references are common)
		}
		state[p] = 1
		for _, r := range refs[p] {
			if want[r] && r != p {
				visit(r)
			}
		}
		state[p] = 2
		out = append(out, p)
	}
	for _, p := range sorted {
		visit(p)
	}
	return out, nil
}

// AddText adds a text file named name holding text, referring to refs,
// and returns its store path (wopAddTextToStore).
func (c *Conn) AddText(name, text string, refs []string) (string, error) {
	if err := c.op(OpAddTextToStore, func(w *Writer) {
		w.String(name)
		w.String(text)
		w.Strings(refs)
	}); err != nil {
		return "", err
	}
	if err := c.process(nil, nil); err != nil {
		return "", err
	}
	return c.r.String(MaxPath, "store path")
}

// PathInfo is what the daemon records about a valid store item.
type PathInfo struct {
	Deriver    string   // "" when unknown
	Hash       string   // the NAR's SHA-256, base 16 (printHash)
	References []string // store paths it refers to
	// Registered is when it became valid (seconds since the epoch);
	// NarSize the size of its NAR.
	Registered, NarSize uint64
}

// PathInfo returns what the daemon records about path
// (wopQueryPathInfo); an invalid path is an [*Error].
func (c *Conn) PathInfo(path string) (*PathInfo, error) {
	if err := c.op(OpQueryPathInfo, func(w *Writer) { w.String(path) }); err != nil {
		return nil, err
	}
	if err := c.process(nil, nil); err != nil {
		return nil, err
	}
	var info PathInfo
	var err error
	if info.Deriver, err = c.r.String(MaxPath, "deriver"); err != nil {
		return nil, err
	}
	if info.Hash, err = c.r.String(256, "hash"); err != nil {
		return nil, err
	}
	if info.References, err = c.r.Strings(MaxPath, "store path"); err != nil {
		return nil, err
	}
	if info.Registered, err = c.r.Int(); err != nil {
		return nil, err
	}
	if info.NarSize, err = c.r.Int(); err != nil {
		return nil, err
	}
	return &info, nil
}
