package worker

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// script is a fake daemon connection: reads come from what the test
// wrote as the daemon's side, writes are kept.
type script struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (s *script) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *script) Write(p []byte) (int, error) { return s.out.Write(p) }

func daemonSays(f func(w *Writer)) *script {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Int(Magic2)
	w.Int(Version)
	w.Int(StderrLast)
	f(w)
	return &script{in: bytes.NewReader(b.Bytes())}
}

func TestHandshakeAndOptions(t *testing.T) {
	s := daemonSays(func(w *Writer) { w.Int(StderrLast) })
	c, err := Handshake(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetOptions(Options{MaxSilent: 1500 * time.Millisecond, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(s.out.Bytes()))
	want := []uint64{Magic1, Version, 0, 0, uint64(OpSetOptions), 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}
	for i, w := range want {
		if n, err := r.Int(); err != nil || n != w {
			t.Fatalf("word %d = %#x, %v; want %#x", i, n, err, w)
		}
	}
	var pairs []string
	for i := 0; i < 4; i++ {
		s, err := r.String(100, "option")
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, s)
	}
	// Rounded up: 1.5 s must not become 0, which means no limit.
	if got := strings.Join(pairs, " "); got != "build-max-silent-time 2 build-timeout 0" {
		t.Errorf("options %q", got)
	}
}

func TestBuildStatusAndLog(t *testing.T) {
	s := daemonSays(func(w *Writer) {
		w.Int(StderrNext)
		w.String("building…\n")
		w.Int(StderrError)
		w.String("build of `/gnu/store/x.drv' failed")
		w.Int(101)
	})
	c, err := Handshake(s)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	c.Log = &log
	err = c.Build([]string{"/gnu/store/x.drv"})
	var de *Error
	if !errors.As(err, &de) || de.Status != 101 {
		t.Fatalf("Build = %v", err)
	}
	if log.String() != "building…\n" {
		t.Errorf("log %q", log.String())
	}
}

func TestHandshakeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		words []uint64
		want  error
	}{
		{"not a daemon", []uint64{0x1234}, ErrProtocol},
		{"old", []uint64{Magic2, 0x160}, ErrTooOld},
		{"other major", []uint64{Magic2, 0x261}, ErrTooOld},
		{"silent", nil, io.EOF},
	} {
		var b bytes.Buffer
		w := NewWriter(&b)
		for _, n := range tc.words {
			w.Int(n)
		}
		_, err := Handshake(&script{in: bytes.NewReader(b.Bytes())})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestImportAnswersReads(t *testing.T) {
	s := daemonSays(func(w *Writer) {
		w.Int(StderrRead)
		w.Int(4)
		w.Int(StderrRead)
		w.Int(100)
		w.Int(StderrRead)
		w.Int(100)
		w.Int(StderrLast)
		w.Strings([]string{"/gnu/store/a"})
	})
	c, err := Handshake(s)
	if err != nil {
		t.Fatal(err)
	}
	n := s.out.Len()
	paths, err := c.Import(strings.NewReader("abcdefg"))
	if err != nil || len(paths) != 1 {
		t.Fatalf("Import = %v, %v", paths, err)
	}
	r := NewReader(bytes.NewReader(s.out.Bytes()[n:]))
	if op, _ := r.Int(); op != uint64(OpImportPaths) {
		t.Fatalf("op %d", op)
	}
	for _, want := range []string{"abcd", "efg", ""} {
		if got, err := r.String(100, "chunk"); err != nil || got != want {
			t.Errorf("chunk %q, %v; want %q", got, err, want)
		}
	}
}

func TestBounds(t *testing.T) {
	s := daemonSays(func(w *Writer) {
		w.Int(StderrLast)
		w.Int(MaxPaths + 1)
	})
	c, err := Handshake(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ValidPaths(nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("a list longer than MaxPaths: %v", err)
	}
	s = daemonSays(func(w *Writer) {
		w.Int(StderrNext)
		w.Int(MaxMessage + 1)
	})
	c, _ = Handshake(s)
	if _, err := c.ValidPaths(nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("a log string longer than MaxMessage: %v", err)
	}
}
