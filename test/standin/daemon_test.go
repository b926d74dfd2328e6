package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/worker"
)

// dial serves one connection of e's stand-in daemon over an in-memory
// pipe and returns the client's end, not yet greeted.
func (e *env) dial(t *testing.T, version uint64) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		_ = e.g.serve(ctx, server, version, true)
	}()
	t.Cleanup(func() {
		cancel()
		client.Close()
		<-done
	})
	return client
}

func (e *env) connect(t *testing.T) *worker.Conn {
	t.Helper()
	c, err := worker.Handshake(e.dial(t, worker.Version))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDaemonBuildExportImport(t *testing.T) {
	e := newEnv(t)
	c := e.connect(t)
	var log bytes.Buffer
	c.Log = &log
	drv, out := e.drv(t, "hello", `echo "log line"; echo hello > "$out"`)
	if err := c.SetOptions(worker.Options{MaxSilent: 5 * time.Second, Timeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(e.g.store.Dir, strings.Repeat("z", 32)+"-absent")
	valid, err := c.ValidPaths([]string{drv, out, absent})
	if err != nil || len(valid) != 1 || valid[0] != drv {
		t.Fatalf("ValidPaths = %v, %v", valid, err)
	}
	if err := c.Build([]string{drv}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "log line") {
		t.Errorf("the build log did not come as log frames: %q", log.String())
	}
	// The export of the output, signed, verifies against the ACL, and
	// the stand-in imports it back (in another store).
	var stream bytes.Buffer
	if err := c.ExportStream([]string{out}, true, &stream); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	imported, err := c.Import(bytes.NewReader(stream.Bytes()))
	if err != nil || len(imported) != 1 || imported[0] != out {
		t.Fatalf("Import = %v, %v", imported, err)
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != "hello\n" {
		t.Fatalf("imported %q, %v", got, err)
	}
	// The same stream, to a daemon whose ACL authorizes no one: refused,
	// nothing imported, and the connection still serves.
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(other, pki.NewACL().MarshalSexp(), 0o644); err != nil {
		t.Fatal(err)
	}
	e.g.aclFile = other
	c3 := e.connect(t)
	_, err = c3.Import(bytes.NewReader(stream.Bytes()))
	var de *worker.Error
	if !errors.As(err, &de) || !strings.Contains(de.Message, "lacks a valid signature") {
		t.Fatalf("unauthorized import: %v", err)
	}
	if ents, _ := os.ReadDir(e.g.store.Dir); len(ents) != 1 { // the .drv
		t.Errorf("store after refused import: %v", ents)
	}
	if _, err := c3.ValidPaths([]string{out}); err != nil {
		t.Errorf("the connection does not serve after a refused import: %v", err)
	}
	// A cut-short stream is refused too.
	if _, err := c.Import(bytes.NewReader(stream.Bytes()[:len(stream.Bytes())/2])); err == nil {
		t.Error("a truncated import succeeded")
	}

	p, err := c.AddText("guix-offload-test", "hello", nil)
	if err != nil || filepath.Dir(p) != e.g.store.Dir {
		t.Fatalf("AddText = %q, %v", p, err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "hello" {
		t.Fatalf("%s holds %q, %v", p, b, err)
	}
}

func TestDaemonBuildStatus(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		opts         worker.Options
		status       int
	}{
		{"exit code", `exit 3`, worker.Options{}, 100},
		{"no output", `true`, worker.Options{}, 100},
		{"silence", `sleep 5`, worker.Options{MaxSilent: time.Second}, 101},
		{"timeout", `while :; do echo .; sleep 0.1; done`, worker.Options{Timeout: time.Second}, 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.connect(t)
			drv, out := e.drv(t, "x", tc.script)
			if err := c.SetOptions(tc.opts); err != nil {
				t.Fatal(err)
			}
			err := c.Build([]string{drv})
			var de *worker.Error
			if !errors.As(err, &de) || de.Status != tc.status || de.Message != "build of `"+drv+"' failed" {
				t.Fatalf("Build: %v, want status %d", err, tc.status)
			}
			if _, err := os.Lstat(out); err == nil {
				t.Errorf("failed build left %s", out)
			}
			// The connection goes on.
			if _, err := c.ValidPaths([]string{drv}); err != nil {
				t.Errorf("after a failed build: %v", err)
			}
		})
	}
}

// TestDaemonRefuses: what the real daemon refuses, the stand-in refuses.
func TestDaemonRefuses(t *testing.T) {
	e := newEnv(t)
	t.Run("bad magic", func(t *testing.T) {
		conn := e.dial(t, worker.Version)
		w := worker.NewWriter(conn)
		w.Int(0x12345678)
		r := worker.NewReader(conn)
		if _, err := r.Int(); err == nil {
			t.Error("the daemon answered a bad greeting")
		}
	})
	t.Run("unknown op", func(t *testing.T) {
		conn := e.dial(t, worker.Version)
		c, err := worker.Handshake(conn)
		if err != nil {
			t.Fatal(err)
		}
		_ = c
		w := worker.NewWriter(conn)
		w.Int(77)
		r := worker.NewReader(conn)
		if tag, _ := r.Int(); tag != worker.StderrError {
			t.Fatalf("frame %#x, want STDERR_ERROR", tag)
		}
		if msg, _ := r.String(1024, "message"); msg != "invalid operation 77" {
			t.Errorf("message %q", msg)
		}
		_, _ = r.Int() // status
		if _, err := r.Int(); err == nil {
			t.Error("the connection stays open after an invalid operation")
		}
	})
	t.Run("pipelined requests", func(t *testing.T) {
		conn := e.dial(t, worker.Version)
		if _, err := worker.Handshake(conn); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		w := worker.NewWriter(&b)
		for i := 0; i < 2; i++ {
			w.Int(uint64(worker.OpQueryValidPaths))
			w.Strings(nil)
		}
		go func() { _, _ = conn.Write(b.Bytes()) }()
		r := worker.NewReader(conn)
		if tag, _ := r.Int(); tag != worker.StderrError {
			t.Fatalf("frame %#x, want STDERR_ERROR", tag)
		}
		if msg, _ := r.String(1024, "message"); !strings.Contains(msg, "EOF expected") {
			t.Errorf("message %q", msg)
		}
	})
	t.Run("path outside the store", func(t *testing.T) {
		c := e.connect(t)
		_, err := c.ValidPaths([]string{"/etc/passwd"})
		var de *worker.Error
		if !errors.As(err, &de) || !strings.Contains(de.Message, "is not in the Nix store") {
			t.Fatalf("ValidPaths(/etc/passwd) = %v", err)
		}
	})
	t.Run("old client", func(t *testing.T) {
		conn := e.dial(t, worker.Version)
		w := worker.NewWriter(conn)
		r := worker.NewReader(conn)
		w.Int(worker.Magic1)
		_, _ = r.Int()
		_, _ = r.Int()
		w.Int(0x160)
		w.Int(0)
		w.Int(0)
		if tag, _ := r.Int(); tag != worker.StderrError {
			t.Fatalf("frame %#x, want STDERR_ERROR", tag)
		}
		if msg, _ := r.String(1024, "message"); !strings.Contains(msg, "protocol version too old") {
			t.Errorf("message %q", msg)
		}
	})
	t.Run("old daemon", func(t *testing.T) {
		_, err := worker.Handshake(e.dial(t, 0x160))
		if !errors.Is(err, worker.ErrTooOld) {
			t.Fatalf("Handshake with a 0x160 daemon: %v", err)
		}
	})
}
