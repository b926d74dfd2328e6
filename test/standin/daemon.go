package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guix-offload/guix-offload/internal/nar"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/worker"
	"github.com/guix-offload/guix-offload/test/standin/internal/store"
)

// cmdDaemon is `guix daemon [--protocol-version=V] --listen=SOCKET`, the
// stand-in's guix-daemon: it serves the store protocol (package worker
// documents it and where Guix defines it) on a Unix socket, one goroutine
// per connection, with the stand-in's store, keys and ACL. It follows
// nix/nix-daemon/nix-daemon.cc (processConnection, performOp) in what it
// reads, writes and refuses:
//
//   - a greeting other than WORKER_MAGIC_1: "protocol mismatch", and the
//     connection closes without an answer;
//   - an unknown operation: "invalid operation N" (STDERR_ERROR), then the
//     connection closes;
//   - a malformed store path in a request: "path `P' is not in the Nix
//     store" (STDERR_ERROR), then the connection closes (the daemon reads
//     paths before startWork); an invalid one in wopIsValidPath, or a
//     failed operation, is an error after which the connection goes on;
//   - an import whose signer is not in the ACL, or whose signature does
//     not match: the error local-store.cc's importPath gives, nothing
//     imported;
//   - a failed build: "build of `DRV' failed" with the status of
//     build.cc's Worker::exitStatus (100, or 101 for a timeout);
//   - repair mode from a client that is not root: refused.
//
// One difference, on purpose: a client speaking a protocol older than
// worker.MinVersion (0x161) gets "protocol version too old" at the
// greeting. The real daemon would parse such a client's wopSetOptions
// the old way (max-silent-time as a field); the stand-in only implements
// what our client speaks, and refusing keeps a test from passing on a
// misparsed request. --protocol-version makes it announce another
// version, to play an older Guix.
func (g *guix) cmdDaemon(ctx context.Context, args []string) int {
	socket := worker.DefaultSocket
	version := uint64(worker.Version)
	for _, a := range args {
		name, val, _ := strings.Cut(a, "=")
		switch name {
		case "--listen":
			socket = val
		case "--protocol-version":
			v, err := strconv.ParseUint(val, 0, 16)
			if err != nil {
				return g.fail("daemon", fmt.Errorf("%s: not a protocol version", a))
			}
			version = v
		default:
			return g.fail("daemon", fmt.Errorf("%s: unrecognized option", a))
		}
	}
	_ = os.Remove(socket)
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return g.fail("daemon", err)
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return g.fail("daemon", err)
	}
	// guix-daemon's socket is writable by all; it trusts root only.
	if err := os.Chmod(socket, 0o666); err != nil {
		return g.fail("daemon", err)
	}
	fmt.Fprintf(g.stderr, "stand-in guix-daemon listening on %s (protocol %#x)\n", socket, version)
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			return g.fail("daemon", err)
		}
		trusted := false
		if uc, ok := conn.(*net.UnixConn); ok {
			if raw, err := uc.SyscallConn(); err == nil {
				_ = raw.Control(func(fd uintptr) {
					cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
					trusted = err == nil && cred.Uid == 0
				})
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			if err := g.serve(ctx, conn, version, trusted); err != nil {
				fmt.Fprintf(g.stderr, "error processing connection: %v\n", err)
			}
		}()
	}
}

// session is one client connection of the stand-in daemon.
type session struct {
	g       *guix // with stdin, stdout, stderr tunnelled to the client
	br      *bufio.Reader
	r       *worker.Reader
	bw      *bufio.Writer
	mu      sync.Mutex // the frame writer: log frames come from the builder's goroutine
	w       *worker.Writer
	client  uint64
	trusted bool
	opts    buildOptions
	working bool // between startWork and stopWork: log frames may be sent
	authed  bool // the `guix authenticate` helper was started
}

// authenticate plays guix-daemon starting its signing helper, `guix
// authenticate` (a Guile process), the first time a connection's worker
// signs or checks a signature: it costs the stand-in's startup time once.
func (s *session) authenticate() {
	if !s.authed {
		s.authed = true
		time.Sleep(s.g.startup)
	}
}

// daemonError is a failure reported to the client with a status.
type daemonError struct {
	msg    string
	status int
}

func (e *daemonError) Error() string { return e.msg }

// serve runs the protocol on conn until the client hangs up or a request
// it cannot recover from.
func (g *guix) serve(ctx context.Context, conn io.ReadWriter, version uint64, trusted bool) error {
	br := bufio.NewReader(conn)
	s := &session{br: br, r: worker.NewReader(br), bw: bufio.NewWriter(conn), trusted: trusted}
	s.w = worker.NewWriter(s.bw)
	gc := *g
	gc.stderr = logSink{s}
	gc.stdin = &tunnelSource{s: s}
	s.g = &gc

	magic, err := s.r.Int()
	if err != nil {
		return err
	}
	if magic != worker.Magic1 {
		return errors.New("protocol mismatch")
	}
	s.w.Int(worker.Magic2)
	s.w.Int(version)
	if err := s.flush(); err != nil {
		return err
	}
	if s.client, err = s.r.Int(); err != nil {
		return err
	}
	if worker.Minor(s.client) >= 14 {
		affinity, err := s.r.Bool()
		if err != nil {
			return err
		}
		if affinity {
			if _, err := s.r.Int(); err != nil {
				return err
			}
		}
	}
	if worker.Minor(s.client) >= 11 {
		if _, err := s.r.Int(); err != nil {
			return err
		}
	}
	if err := s.startWork(); err != nil {
		return err
	}
	if worker.Major(s.client) != worker.Major(worker.Version) || worker.Minor(s.client) < worker.Minor(worker.MinVersion) {
		s.stopWork(&daemonError{fmt.Sprintf("protocol version too old: the stand-in daemon speaks %#x and later, the client %#x", worker.MinVersion, s.client), 1})
		return s.flush()
	}
	s.stopWork(nil)
	if err := s.flush(); err != nil {
		return err
	}
	for {
		op, err := s.r.Int()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		err = s.perform(ctx, worker.Op(op))
		if err != nil {
			// As processConnection: report the error; when it came
			// before the operation started its work (reading the
			// request), the connection is beyond recovery.
			allowed := s.working
			var de *daemonError
			if !errors.As(err, &de) {
				de = &daemonError{err.Error(), 1}
			}
			s.stopWork(de)
			if ferr := s.flush(); ferr != nil {
				return ferr
			}
			if !allowed {
				return err
			}
			continue
		}
		if err := s.flush(); err != nil {
			return err
		}
	}
}

func (s *session) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.w.Err(); err != nil {
		return err
	}
	return s.bw.Flush()
}

// startWork starts an operation's work, when log frames may be sent.
// Like nix-daemon.cc's startWork (isFarSideClosed), it refuses a client
// that already sent more: while the daemon works the client must be
// silent, so bytes waiting are a protocol error (the real daemon reads
// one of them and throws "EOF expected (protocol error?)", which leaves
// the stream out of step; the stand-in closes the connection).
func (s *session) startWork() error {
	if s.br.Buffered() > 0 {
		return errors.New("EOF expected (protocol error?)")
	}
	s.mu.Lock()
	s.working = true
	s.mu.Unlock()
	return nil
}

// stopWork ends the frames of an operation: STDERR_LAST, or STDERR_ERROR
// with the message and status.
func (s *session) stopWork(err *daemonError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.working = false
	if err == nil {
		s.w.Int(worker.StderrLast)
		return
	}
	s.w.Int(worker.StderrError)
	s.w.String(err.msg)
	s.w.Int(uint64(err.status))
}

// logSink sends what the stand-in writes to stderr as STDERR_NEXT
// frames while an operation works, as tunnelStderr does.
type logSink struct{ s *session }

func (l logSink) Write(p []byte) (int, error) {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.working {
		return os.Stderr.Write(p)
	}
	s.w.Int(worker.StderrNext)
	s.w.Bytes(p)
	if err := s.w.Err(); err != nil {
		return 0, err
	}
	return len(p), s.bw.Flush()
}

// tunnelSource reads the client's data with STDERR_READ, as
// TunnelSource does.
type tunnelSource struct{ s *session }

func (t *tunnelSource) Read(p []byte) (int, error) {
	s := t.s
	n := min(len(p), 32<<10)
	s.mu.Lock()
	s.w.Int(worker.StderrRead)
	s.w.Int(uint64(n))
	err := s.w.Err()
	if err == nil {
		err = s.bw.Flush()
	}
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	b, err := s.r.Bytes(n, "data chunk")
	if err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, errors.New("unexpected end-of-file")
	}
	if s.br.Buffered() > 0 {
		// More than the chunk asked for: the daemon's TunnelSource
		// starts work again and refuses it.
		return 0, errors.New("EOF expected (protocol error?)")
	}
	return copy(p, b), nil
}

func (s *session) storePath() (string, error) {
	p, err := s.r.String(worker.MaxPath, "store path")
	if err != nil {
		return "", err
	}
	if err := s.g.store.CheckPath(p); err != nil {
		return "", fmt.Errorf("path `%s' is not in the Nix store", p)
	}
	return p, nil
}

func (s *session) storePaths() ([]string, error) {
	l, err := s.r.Strings(worker.MaxPath, "store path")
	if err != nil {
		return nil, err
	}
	for _, p := range l {
		if err := s.g.store.CheckPath(p); err != nil {
			return nil, fmt.Errorf("path `%s' is not in the Nix store", p)
		}
	}
	return l, nil
}

// perform is performOp: read the request, start the work, do it, stop
// the work, write the reply.
func (s *session) perform(ctx context.Context, op worker.Op) error {
	g := s.g
	switch op {
	case worker.OpIsValidPath:
		p, err := s.r.String(worker.MaxPath, "store path")
		if err != nil {
			return err
		}
		if err := s.startWork(); err != nil {
			return err
		}
		if err := g.store.CheckPath(p); err != nil {
			return fmt.Errorf("path `%s' is not in the Nix store", p)
		}
		s.stopWork(nil)
		s.w.Bool(g.store.Valid(p))
	case worker.OpQueryValidPaths:
		paths, err := s.storePaths()
		if err != nil {
			return err
		}
		if err := s.startWork(); err != nil {
			return err
		}
		var valid []string
		for _, p := range paths {
			if g.store.Valid(p) {
				valid = append(valid, p)
			}
		}
		s.stopWork(nil)
		s.w.Strings(valid)
	case worker.OpQueryReferences:
		p, err := s.storePath()
		if err != nil {
			return err
		}
		if err := s.startWork(); err != nil {
			return err
		}
		info, err := g.store.Query(p)
		if err != nil {
			return err
		}
		s.stopWork(nil)
		s.w.Strings(info.References)
	case worker.OpQueryPathInfo:
		p, err := s.storePath()
		if err != nil {
			return err
		}
		if err := s.startWork(); err != nil {
			return err
		}
		info, err := g.store.Query(p)
		if err != nil {
			return err
		}
		// The stand-in keeps no hashes: the NAR's, computed now, is
		// what the daemon recorded when the item became valid.
		h := sha256.New()
		cw := &countWriter{w: h}
		if err := nar.Dump(cw, p); err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s.stopWork(nil)
		s.w.String(info.Deriver)
		s.w.String(hex.EncodeToString(h.Sum(nil)))
		s.w.Strings(info.References)
		s.w.Int(uint64(fi.ModTime().Unix()))
		s.w.Int(cw.n)
	case worker.OpAddTextToStore:
		name, err := s.r.String(worker.MaxPath, "name")
		if err != nil {
			return err
		}
		text, err := s.r.String(worker.MaxText, "text")
		if err != nil {
			return err
		}
		refs, err := s.storePaths()
		if err != nil {
			return err
		}
		if err := s.startWork(); err != nil {
			return err
		}
		p, err := g.addText(name, text, refs)
		if err != nil {
			return err
		}
		s.stopWork(nil)
		s.w.String(p)
	case worker.OpBuildPaths:
		drvs, err := s.storePaths()
		if err != nil {
			return err
		}
		mode, err := s.r.Int()
		if err != nil {
			return err
		}
		if mode == 2 && !s.trusted {
			return errors.New("repairing is not supported when building through the Nix daemon")
		}
		if err := s.startWork(); err != nil {
			return err
		}
		for _, d := range drvs {
			if _, err := g.build(ctx, d, s.opts); err != nil {
				var eb *errBuild
				if errors.As(err, &eb) {
					return &daemonError{eb.msg, eb.status}
				}
				return err
			}
		}
		s.stopWork(nil)
		s.w.Int(1)
	case worker.OpAddTempRoot:
		if _, err := s.storePath(); err != nil {
			return err
		}
		if err := s.startWork(); err != nil {
			return err
		}
		s.stopWork(nil)
		s.w.Int(1)
	case worker.OpExportPath:
		p, err := s.storePath()
		if err != nil {
			return err
		}
		sign, err := s.r.Bool()
		if err != nil {
			return err
		}
		if err := s.startWork(); err != nil {
			return err
		}
		if sign {
			s.authenticate()
		}
		if err := g.exportItem(p, sign, &tunnelSink{s: s}); err != nil {
			return err
		}
		s.stopWork(nil)
		s.w.Int(1)
	case worker.OpSetOptions:
		if err := s.setOptions(); err != nil {
			return err
		}
		if err := s.startWork(); err != nil {
			return err
		}
		s.stopWork(nil)
	case worker.OpImportPaths:
		if err := s.startWork(); err != nil {
			return err
		}
		s.authenticate()
		paths, err := g.importStream(ctx)
		if err != nil {
			return err
		}
		s.stopWork(nil)
		s.w.Strings(paths)
	default:
		return fmt.Errorf("invalid operation %d", op)
	}
	return nil
}

// setOptions reads wopSetOptions as the daemon does for a client of
// minor version 0x61 or later; max-silent-time and the timeout come as
// the name/value pairs build-max-silent-time and build-timeout.
func (s *session) setOptions() error {
	for i := 0; i < 4; i++ { // keep-failed, keep-going, fallback, verbosity
		if _, err := s.r.Int(); err != nil {
			return err
		}
	}
	minor := worker.Minor(s.client)
	fields := 0
	if minor >= 2 {
		fields++ // use-build-hook
	}
	if minor >= 4 {
		fields += 3 // build-verbosity, log-type, print-build-trace
	}
	if minor >= 10 {
		fields++ // use-substitutes
	}
	for i := 0; i < fields; i++ {
		if _, err := s.r.Int(); err != nil {
			return err
		}
	}
	if minor < 12 {
		return nil
	}
	n, err := s.r.Int()
	if err != nil {
		return err
	}
	if n > 1024 {
		return fmt.Errorf("%d build options", n)
	}
	for i := uint64(0); i < n; i++ {
		name, err := s.r.String(4096, "option name")
		if err != nil {
			return err
		}
		val, err := s.r.String(64<<10, "option value")
		if err != nil {
			return err
		}
		var d *time.Duration
		switch name {
		case "build-max-silent-time":
			d = &s.opts.maxSilent
		case "build-timeout":
			d = &s.opts.timeout
		default:
			continue
		}
		secs, err := strconv.ParseUint(val, 10, 31)
		if err != nil {
			return fmt.Errorf("configuration setting `%s' should have an integer value", name)
		}
		*d = time.Duration(secs) * time.Second
	}
	return nil
}

// tunnelSink sends data to the client with STDERR_WRITE, as TunnelSink
// does.
type tunnelSink struct{ s *session }

func (t *tunnelSink) Write(p []byte) (int, error) {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w.Int(worker.StderrWrite)
	s.w.Bytes(p)
	return len(p), s.w.Err()
}

// exportItem writes one item as wopExportPath does: the export stream's
// record of it without the stream's leading 1 and final 0.
func (g *guix) exportItem(p string, sign bool, w io.Writer) error {
	if !g.store.Valid(p) {
		return fmt.Errorf("path `%s' is not valid", p)
	}
	info, err := g.store.Query(p)
	if err != nil {
		return err
	}
	var signer func([32]byte) ([]byte, error)
	if sign {
		key, err := pki.ReadPrivateKey(g.signingKeyFile)
		if err != nil {
			return fmt.Errorf("cannot read signing key: %w", err)
		}
		signer = key.Sign
	}
	var buf bytes.Buffer
	if err := nar.NewExportWriter(&buf).WriteItem(p, info.References, info.Deriver, p, signer); err != nil {
		return err
	}
	data := buf.Bytes()[8:] // the leading 1 is the client's
	if g.tamper != "" {
		from, to, ok := strings.Cut(g.tamper, "=")
		if !ok || len(from) != len(to) || from == "" {
			return fmt.Errorf("GUIX_STANDIN_TAMPER=%q: want FROM=TO of equal lengths", g.tamper)
		}
		data = bytes.Replace(data, []byte(from), []byte(to), 1)
	}
	_, err = w.Write(data)
	return err
}

// importStream is wopImportPaths: the archive is read from the client
// and imported all or nothing; it returns the paths imported.
func (g *guix) importStream(ctx context.Context) ([]string, error) {
	var paths []string
	err := g.importArchiveFunc(ctx, func(info store.Info) { paths = append(paths, info.Path) })
	return paths, err
}

// countWriter counts what goes through it.
type countWriter struct {
	w io.Writer
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}
