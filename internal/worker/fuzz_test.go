package worker

import (
	"bytes"
	"io"
	"testing"
)

// FuzzHandshake feeds arbitrary bytes as the daemon's side of the
// greeting: never a panic, never a connection from garbage.
func FuzzHandshake(f *testing.F) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Int(Magic2)
	w.Int(Version)
	w.Int(StderrLast)
	f.Add(b.Bytes())
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Handshake(&script{in: bytes.NewReader(data)})
		if err == nil && c.DaemonVersion < MinVersion {
			t.Fatalf("accepted version %#x", c.DaemonVersion)
		}
	})
}

// FuzzReplies feeds arbitrary bytes as the daemon's answers to every
// operation the client uses: never a panic, and what comes back is
// bounded.
func FuzzReplies(f *testing.F) {
	seed := func(fn func(w *Writer)) {
		var b bytes.Buffer
		fn(NewWriter(&b))
		f.Add(b.Bytes())
	}
	seed(func(w *Writer) {
		w.Int(StderrNext)
		w.String("log\n")
		w.Int(StderrLast)
		w.Strings([]string{"/gnu/store/a"})
	})
	seed(func(w *Writer) {
		w.Int(StderrWrite)
		w.String("data")
		w.Int(StderrLast)
		w.Int(1)
	})
	seed(func(w *Writer) {
		w.Int(StderrRead)
		w.Int(8)
		w.Int(StderrError)
		w.String("failed")
		w.Int(100)
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		var hs bytes.Buffer
		w := NewWriter(&hs)
		w.Int(Magic2)
		w.Int(Version)
		w.Int(StderrLast)
		for op := 0; op < 8; op++ {
			c, err := Handshake(&script{in: bytes.NewReader(append(hs.Bytes(), data...))})
			if err != nil {
				t.Fatal(err)
			}
			c.Log = io.Discard
			switch op {
			case 0:
				l, err := c.ValidPaths([]string{"/gnu/store/a"})
				if err == nil && len(l) > MaxPaths {
					t.Fatal("unbounded list")
				}
			case 1:
				_, _ = c.Import(bytes.NewReader([]byte("stream")))
			case 2:
				_ = c.Build([]string{"/gnu/store/a.drv"})
			case 3:
				_ = c.Export("/gnu/store/a", true, io.Discard)
			case 4:
				_, _ = c.AddText("a", "b", nil)
			case 5:
				_ = c.SetOptions(Options{})
			case 6:
				_, _ = c.SortByReferences([]string{"/gnu/store/a", "/gnu/store/b"})
			case 7:
				_, _ = c.PathInfo("/gnu/store/a")
			}
		}
	})
}
