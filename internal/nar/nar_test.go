package nar

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// narBuilder writes NAR tokens by hand, to make broken archives.
type narBuilder struct {
	buf bytes.Buffer
	w   *writer
}

func newNAR() *narBuilder {
	b := &narBuilder{}
	b.w = &writer{w: &b.buf}
	return b
}

func (b *narBuilder) s(ss ...string) *narBuilder {
	for _, s := range ss {
		b.w.str(s)
	}
	return b
}

func (b *narBuilder) bytes() []byte { return b.buf.Bytes() }

// makeTree builds a tree with every kind of file a NAR holds.
func makeTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "share", "empty"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin", "hello"), []byte("#!/bin/sh\necho hello\n"), 0o755))
	must(os.WriteFile(filepath.Join(root, "share", "README"), []byte("read me"), 0o644))
	must(os.WriteFile(filepath.Join(root, "share", "zero"), nil, 0o644))
	must(os.WriteFile(filepath.Join(root, "share", "eight888"), []byte("12345678"), 0o644))
	must(os.Symlink("../bin/hello", filepath.Join(root, "share", "link")))
	must(os.Symlink("/nonexistent/absolute", filepath.Join(root, "abs")))
	must(os.WriteFile(filepath.Join(root, "B-upper"), []byte("sorted before a"), 0o644))
	return root
}

func TestDumpRestoreRoundTrip(t *testing.T) {
	root := makeTree(t)
	var first bytes.Buffer
	if err := Dump(&first, root); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := Restore(bytes.NewReader(first.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	var second bytes.Buffer
	if err := Dump(&second, dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Errorf("NAR of the restored tree differs")
	}
	for name, want := range map[string]os.FileMode{
		"bin/hello": 0o755, "share/README": 0o644, "share": 0o755 | os.ModeDir,
	} {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dst, "share/link")); err != nil || target != "../bin/hello" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	if err := Check(bytes.NewReader(first.Bytes())); err != nil {
		t.Errorf("Check: %v", err)
	}
	// A single regular file and a single symlink as the whole NAR.
	for _, name := range []string{"bin/hello", "share/link"} {
		var b bytes.Buffer
		if err := Dump(&b, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "single")
		if err := Restore(&b, out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestRestoreRejects(t *testing.T) {
	file := func(b *narBuilder) *narBuilder { return b.s("(", "type", "regular", "contents", "x", ")") }
	entry := func(b *narBuilder, name string) *narBuilder {
		return file(b.s("entry", "(", "name", name, "node")).s(")")
	}
	dir := func(names ...string) []byte {
		b := newNAR().s(magic, "(", "type", "directory")
		for _, n := range names {
			entry(b, n)
		}
		return b.s(")").bytes()
	}
	valid := dir("a", "b")
	tests := map[string][]byte{
		"dot-dot":         dir(".."),
		"dot":             dir("."),
		"slash":           dir("a/b"),
		"absolute":        dir("/etc"),
		"empty name":      dir(""),
		"NUL":             dir("a\x00b"),
		"unsorted":        dir("b", "a"),
		"duplicate":       dir("a", "a"),
		"long name":       dir(strings.Repeat("n", 256)),
		"bad magic":       newNAR().s("nix-archive-2").bytes(),
		"unknown type":    newNAR().s(magic, "(", "type", "fifo", ")").bytes(),
		"empty target":    newNAR().s(magic, "(", "type", "symlink", "target", "", ")").bytes(),
		"truncated":       valid[:len(valid)-9],
		"empty":           nil,
		"no contents":     newNAR().s(magic, "(", "type", "regular", ")").bytes(),
		"executable junk": newNAR().s(magic, "(", "type", "regular", "executable", "x", "contents", "", ")").bytes(),
		"huge size":       append(newNAR().s(magic, "(", "type", "regular", "contents").bytes(), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
	}
	bad := bytes.Clone(newNAR().s(magic, "(", "type", "regular", "contents", "x", ")").bytes())
	bad[97] = 1 // a padding byte after "x": magic 24, 4 keywords 64, length 8, "x"
	tests["padding"] = bad
	if err := Check(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "padding") {
		t.Errorf("Check with bad padding: %v", err)
	}
	if err := Restore(bytes.NewReader(valid), filepath.Join(t.TempDir(), "ok")); err != nil {
		t.Fatalf("valid NAR: %v", err)
	}
	for name, nar := range tests {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "out")
			err := Restore(bytes.NewReader(nar), dst)
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("Restore: %v, want ErrFormat", err)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("left %v behind", ents)
			}
			if err := Check(bytes.NewReader(nar)); !errors.Is(err, ErrFormat) {
				t.Errorf("Check: %v, want ErrFormat", err)
			}
		})
	}
}

// TestRestoreNeverFollowsSymlinks: an existing name at dst — a symbolic
// link to a directory elsewhere included — is an error, and nothing is
// written through it.
func TestRestoreNeverFollowsSymlinks(t *testing.T) {
	elsewhere := t.TempDir()
	parent := t.TempDir()
	dst := filepath.Join(parent, "out")
	if err := os.Symlink(elsewhere, dst); err != nil {
		t.Fatal(err)
	}
	for _, nar := range [][]byte{
		newNAR().s(magic, "(", "type", "directory", "entry", "(", "name", "x", "node", "(", "type", "regular", "contents", "pwned", ")", ")", ")").bytes(),
		newNAR().s(magic, "(", "type", "regular", "contents", "pwned", ")").bytes(),
	} {
		if err := Restore(bytes.NewReader(nar), dst); err == nil {
			t.Errorf("Restore over a symlink succeeded")
		}
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("wrote through the symlink: %v", ents)
	}
	if fi, err := os.Lstat(dst); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the existing symlink was removed: %v", err)
	}
}

// TestRestoreStopsAtEnd: Restore reads exactly one NAR and leaves the rest
// of the stream.
func TestRestoreStopsAtEnd(t *testing.T) {
	nar := newNAR().s(magic, "(", "type", "regular", "contents", "abc", ")").bytes()
	r := io.MultiReader(bytes.NewReader(nar), strings.NewReader("TRAILER"))
	w := newWire(r)
	if err := restore(w, filepath.Join(t.TempDir(), "f")); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(w)
	if string(rest) != "TRAILER" {
		t.Errorf("rest of stream %q", rest)
	}
}

func TestRestoreDepthLimit(t *testing.T) {
	nest := func(depth int) []byte {
		b := newNAR().s(magic)
		for i := 0; i < depth; i++ {
			b.s("(", "type", "directory", "entry", "(", "name", "d", "node")
		}
		b.s("(", "type", "regular", "contents", "", ")")
		for i := 0; i < depth; i++ {
			b.s(")", ")")
		}
		return b.bytes()
	}
	if err := Restore(bytes.NewReader(nest(20)), filepath.Join(t.TempDir(), "ok")); err != nil {
		t.Fatalf("20 levels: %v", err)
	}
	if err := Check(bytes.NewReader(nest(maxDepth + 1))); !errors.Is(err, ErrFormat) {
		t.Errorf("%d levels: %v, want ErrFormat", maxDepth+1, err)
	}
}

func TestRestoreExistingTarget(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(dst, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	nar := newNAR().s(magic, "(", "type", "regular", "contents", "theirs", ")").bytes()
	if err := Restore(bytes.NewReader(nar), dst); err == nil {
		t.Fatal("Restore over an existing file succeeded")
	}
	if b, _ := os.ReadFile(dst); string(b) != "mine" {
		t.Errorf("existing file changed or removed: %q", b)
	}
}

// TestExportDirectoryItem writes and reads back an item that is a whole
// tree, with references and a deriver.
func TestExportDirectoryItem(t *testing.T) {
	root := makeTree(t)
	var stream bytes.Buffer
	x := NewExportWriter(&stream)
	refs := []string{"/gnu/store/aaaa-dep", "/gnu/store/bbbb-other"}
	if err := x.WriteItem("/gnu/store/cccc-tree", refs, "/gnu/store/dddd-tree.drv", root, nil); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "tree")
	r := NewExportReader(&stream)
	it, err := r.Next(dst)
	if err != nil {
		t.Fatal(err)
	}
	if it.Path != "/gnu/store/cccc-tree" || strings.Join(it.References, " ") != strings.Join(refs, " ") || it.Deriver != "/gnu/store/dddd-tree.drv" || it.Signature != nil {
		t.Errorf("item %+v", it)
	}
	var a, b bytes.Buffer
	Dump(&a, root)
	Dump(&b, dst)
	if !bytes.Equal(a.Bytes(), b.Bytes()) || uint64(a.Len()) != it.NarSize {
		t.Errorf("restored tree differs (NarSize %d, NAR %d bytes)", it.NarSize, a.Len())
	}
	if _, err := r.Next(""); err != io.EOF {
		t.Errorf("after the last item: %v, want io.EOF", err)
	}
	if _, err := r.Next(""); err != io.EOF {
		t.Errorf("again: %v, want io.EOF", err)
	}
}
