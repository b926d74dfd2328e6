package nar

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRestore: whatever Restore accepts, Dump writes back byte for byte,
// and Check agrees with Restore.
func FuzzRestore(f *testing.F) {
	for _, name := range []string{"export-hello.txt.bin", "export-r-ref.txt.bin"} {
		f.Add(testdata(f, name)[8:]) // the first NAR
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := filepath.Join(t.TempDir(), "out")
		w := newWire(bytes.NewReader(data))
		err := restore(w, dst)
		if cerr := Check(bytes.NewReader(data)); (cerr == nil) != (err == nil) {
			t.Fatalf("Restore: %v, Check: %v", err, cerr)
		}
		if err != nil {
			if _, serr := os.Lstat(dst); serr == nil {
				t.Fatalf("failed Restore left %s behind", dst)
			}
			return
		}
		var out bytes.Buffer
		if err := Dump(&out, dst); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data[:w.off]) {
			t.Fatalf("Dump of the restored tree differs from the NAR read")
		}
	})
}

func FuzzExportReader(f *testing.F) {
	for _, name := range []string{"export-hello.txt.bin", "export-r-ref.txt.bin"} {
		f.Add(testdata(f, name))
	}
	acl := fixtureACL(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		x := NewExportReader(bytes.NewReader(data))
		for i := 0; i < len(data)/8+1; i++ { // every item takes more than 8 bytes
			it, err := x.Next("")
			if err != nil {
				return
			}
			if _, err := it.Verify(acl); err == nil && it.Signature == nil {
				t.Fatalf("unsigned item verified")
			}
		}
		t.Fatalf("reader did not end")
	})
}
