package transport

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/nar"
	"github.com/guix-offload/guix-offload/internal/pki"
)

func TestSweepStale(t *testing.T) {
	store := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	mk := func(name string, mtime time.Time) string {
		p := filepath.Join(store, name)
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A pid that cannot exist (beyond pid_max's ceiling).
	dead := mk(tempPrefix+"4194305-aaaa", old)
	alive := mk(tempPrefix+strconv.Itoa(os.Getpid())+"-bbbb", old)
	fresh := mk(tempPrefix+"4194305-cccc", time.Now())
	item := mk("0123456789abcdfghijklmnpqrsvwxyz-hello", old)
	other := mk(".links", old)
	sweepStale(store)
	for p, want := range map[string]bool{dead: false, alive: true, fresh: true, item: true, other: true} {
		_, err := os.Stat(p)
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(p), got, want)
		}
	}
}

func TestReceive(t *testing.T) {
	key, err := pki.ReadPrivateKey("../pki/testdata/signing-key.sec")
	if err != nil {
		t.Fatal(err)
	}
	acl, err := pki.ReadACL("../pki/testdata/acl")
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	content := filepath.Join(src, "content")
	if err := os.WriteFile(content, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type item struct {
		name   string
		signed bool
	}
	for _, tc := range []struct {
		name    string
		outputs []string
		stream  []item
		acl     *pki.ACL
		want    string // "" for success
	}{
		{"one output", []string{"a"}, []item{{"a", true}}, acl, ""},
		{"two outputs", []string{"a", "b"}, []item{{"b", true}, {"a", true}}, acl, ""},
		{"not an output", []string{"a"}, []item{{"x", true}}, acl, "is not an output"},
		{"sent twice", []string{"a", "b"}, []item{{"a", true}, {"a", true}}, acl, "sent twice"},
		{"output missing", []string{"a", "b"}, []item{{"a", true}}, acl, "did not send"},
		{"unsigned", []string{"a"}, []item{{"a", false}}, acl, "not signed"},
		{"unauthorized", []string{"a"}, []item{{"a", true}}, pki.NewACL(), "not authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := t.TempDir()
			path := func(n string) string { return filepath.Join(store, strings.Repeat(n, 32)+"-"+n) }
			var buf bytes.Buffer
			xw := nar.NewExportWriter(&buf)
			for _, it := range tc.stream {
				var sign func([32]byte) ([]byte, error)
				if it.signed {
					sign = key.Sign
				}
				if err := xw.WriteItem(path(it.name), nil, "", content, sign); err != nil {
					t.Fatal(err)
				}
			}
			if err := xw.Close(); err != nil {
				t.Fatal(err)
			}
			b := &Build{Host: "m", Drv: "/x.drv", Store: store, ACL: tc.acl, Msg: io.Discard}
			for _, o := range tc.outputs {
				b.Outputs = append(b.Outputs, path(o))
			}
			temps := map[string]string{}
			err := receive(b, &buf, false, temps)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("receive: %v", err)
				}
				if len(temps) != len(tc.outputs) {
					t.Fatalf("temps %v for outputs %v", temps, b.Outputs)
				}
				for _, o := range b.Outputs {
					if got, err := os.ReadFile(temps[o]); err != nil || string(got) != "hello\n" {
						t.Errorf("%s restored as %q, %v", o, got, err)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("receive = %v, want an error saying %q", err, tc.want)
			}
			// Everything restored so far is known to the caller, who
			// removes it; nothing else was written.
			ents, _ := os.ReadDir(store)
			known := map[string]bool{}
			for _, tmp := range temps {
				known[filepath.Base(tmp)] = true
			}
			for _, e := range ents {
				if !known[e.Name()] {
					t.Errorf("%s left in the store, unknown to the caller", e.Name())
				}
			}
		})
	}
}
