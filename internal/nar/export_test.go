package nar

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/pki"
)

const (
	helloPath = "/gnu/store/3qfa38x5ns7r5wn2mjnd2vnrsj1wircv-hello.txt"
	refPath   = "/gnu/store/8q6kwaijra99ckjgmgb9kdlli3b7g8dw-ref.txt"
)

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureACL(t testing.TB) *pki.ACL {
	t.Helper()
	acl, err := pki.ParseACL(testdata(t, "acl"), "acl")
	if err != nil {
		t.Fatal(err)
	}
	return acl
}

// readAll restores every item of an export stream into dir, named by
// their base names, and verifies them.
func readAll(t *testing.T, stream []byte, dir string, acl *pki.ACL) []*Item {
	t.Helper()
	x := NewExportReader(bytes.NewReader(stream))
	var out []*Item
	for {
		tmp := filepath.Join(dir, "tmp")
		it, err := x.Next(tmp)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := it.Verify(acl); err != nil {
			t.Fatalf("Verify %s: %v", it.Path, err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, filepath.Base(it.Path))); err != nil {
			t.Fatal(err)
		}
		out = append(out, it)
	}
}

func TestExportFixtures(t *testing.T) {
	acl := fixtureACL(t)
	dir := t.TempDir()
	items := readAll(t, testdata(t, "export-hello.txt.bin"), dir, acl)
	if len(items) != 1 || items[0].Path != helloPath || len(items[0].References) != 0 || items[0].Deriver != "" {
		t.Fatalf("items %+v", items)
	}
	if b, err := os.ReadFile(filepath.Join(dir, filepath.Base(helloPath))); err != nil || string(b) != "hello world\n" {
		t.Errorf("restored hello.txt: %q, %v", b, err)
	}
	if items[0].NarSize != 128 { // from "nix-archive-1" to the final ")"
		t.Errorf("NarSize %d, want 128", items[0].NarSize)
	}

	dir2 := t.TempDir()
	items = readAll(t, testdata(t, "export-r-ref.txt.bin"), dir2, acl)
	if len(items) != 2 || items[0].Path != helloPath || items[1].Path != refPath {
		t.Fatalf("items %+v", items)
	}
	if len(items[1].References) != 1 || items[1].References[0] != helloPath {
		t.Errorf("references of ref.txt: %v", items[1].References)
	}
}

// TestExportWriterReproducesGuix re-exports the restored fixture items
// with the fixture key: the stream must equal Guix's byte for byte.
func TestExportWriterReproducesGuix(t *testing.T) {
	acl := fixtureACL(t)
	sec, err := pki.ParsePrivateKey(testdata(t, "signing-key.sec"), "signing-key.sec")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"export-hello.txt.bin", "export-r-ref.txt.bin"} {
		t.Run(name, func(t *testing.T) {
			want := testdata(t, name)
			dir := t.TempDir()
			items := readAll(t, want, dir, acl)
			var got bytes.Buffer
			x := NewExportWriter(&got)
			for _, it := range items {
				if err := x.WriteItem(it.Path, it.References, it.Deriver, filepath.Join(dir, filepath.Base(it.Path)), sec.Sign); err != nil {
					t.Fatal(err)
				}
			}
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("ExportWriter output differs from Guix's (%d vs %d bytes)", got.Len(), len(want))
			}
		})
	}
}

func TestExportTampered(t *testing.T) {
	acl := fixtureACL(t)
	genuine := testdata(t, "export-hello.txt.bin")
	flip := func(off int) []byte { // one bit, keeping hex digits hex digits
		b := bytes.Clone(genuine)
		b[off] ^= 0x01
		if b[off] == '@' || b[off] == 'G' {
			b[off] ^= 0x03
		}
		return b
	}
	contents := bytes.Index(genuine, []byte("hello world"))
	path := bytes.Index(genuine, []byte("3qfa38"))
	sigR := bytes.Index(genuine, []byte("(r #")) + 10
	sigQ := bytes.Index(genuine, []byte("(q #")) + 10
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"NAR contents", flip(contents), pki.ErrHashMismatch},
		{"store path", flip(path), pki.ErrHashMismatch},
		{"signature r", flip(sigR), pki.ErrBadSignature},
		{"signer key", flip(sigQ), pki.ErrUnknownSigner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it, err := NewExportReader(bytes.NewReader(tt.data)).Next("")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := it.Verify(acl); !errors.Is(err, tt.want) {
				t.Errorf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
	// Unsigned items are refused.
	var buf bytes.Buffer
	x := NewExportWriter(&buf)
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("x"), 0o644)
	if err := x.WriteItem("/gnu/store/x-f", nil, "", f, nil); err != nil {
		t.Fatal(err)
	}
	x.Close()
	it, err := NewExportReader(&buf).Next("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.Verify(acl); !errors.Is(err, ErrUnsigned) {
		t.Errorf("Verify of an unsigned item: %v, want ErrUnsigned", err)
	}
}

func TestExportReaderErrors(t *testing.T) {
	genuine := testdata(t, "export-hello.txt.bin")
	for _, n := range []int{0, 7, 8, 100, 0x80, 0x90, 0xe0, 0xe8, len(genuine) - 8} {
		dir := t.TempDir()
		x := NewExportReader(bytes.NewReader(genuine[:n]))
		_, err := x.Next(filepath.Join(dir, "out"))
		if n == 0 && err == nil {
			t.Errorf("empty stream: no error")
		}
		if n > 0 && n < len(genuine)-8 && !errors.Is(err, ErrFormat) {
			t.Errorf("stream cut at %d: %v, want ErrFormat", n, err)
		}
		if ents, _ := os.ReadDir(dir); err != nil && len(ents) != 0 {
			t.Errorf("stream cut at %d left %v", n, ents)
		}
	}
	// Cut before the end marker: the item reads, the end does not.
	x := NewExportReader(bytes.NewReader(genuine[:len(genuine)-8]))
	if _, err := x.Next(""); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Next(""); !errors.Is(err, ErrFormat) {
		t.Errorf("missing end marker: %v", err)
	}
	bad := bytes.Clone(genuine)
	bad[0x80] ^= 1 // NIXE marker
	if _, err := NewExportReader(bytes.NewReader(bad)).Next(""); !errors.Is(err, ErrFormat) {
		t.Errorf("bad NIXE marker: %v", err)
	}
}

// TestExportWriterCheckNAR: CheckNAR sees the NAR's digest and size, as a
// reader computes them, and an error from it leaves the item unsigned
// and incomplete.
func TestExportWriterCheckNAR(t *testing.T) {
	dir := t.TempDir()
	item := filepath.Join(dir, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x")
	if err := os.WriteFile(item, []byte("hello\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	xw := NewExportWriter(&buf)
	var seen [32]byte
	var size uint64
	xw.CheckNAR = func(h [32]byte, n uint64) error { seen, size = h, n; return nil }
	if err := xw.WriteItem("/gnu/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x", nil, "", item, nil); err != nil {
		t.Fatal(err)
	}
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	it, err := NewExportReader(bytes.NewReader(buf.Bytes())).Next(filepath.Join(dir, "restored"))
	if err != nil {
		t.Fatal(err)
	}
	if it.NarHash != seen || it.NarSize != size {
		t.Errorf("CheckNAR saw %x (%d bytes), the reader %x (%d bytes)", seen, size, it.NarHash, it.NarSize)
	}

	buf.Reset()
	xw = NewExportWriter(&buf)
	xw.CheckNAR = func([32]byte, uint64) error { return errors.New("changed") }
	if err := xw.WriteItem("/gnu/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x", nil, "", item, nil); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("WriteItem = %v", err)
	}
	if _, err := NewExportReader(bytes.NewReader(buf.Bytes())).Next(filepath.Join(dir, "restored2")); err == nil {
		t.Error("a reader accepted the item cut after its NAR")
	}
}
