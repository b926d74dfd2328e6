package store

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestTextPath(t *testing.T) {
	p := TextPath("/gnu/store", "hello", "Hello, world!\n", nil)
	base := filepath.Base(p)
	if filepath.Dir(p) != "/gnu/store" || len(base) != 32+len("-hello") || !strings.HasSuffix(base, "-hello") {
		t.Fatalf("TextPath = %q", p)
	}
	if strings.Trim(base[:32], base32Chars) != "" {
		t.Errorf("hash part %q is not Nix base 32", base[:32])
	}
	if p != TextPath("/gnu/store", "hello", "Hello, world!\n", nil) {
		t.Error("TextPath is not deterministic")
	}
	for _, other := range []string{
		TextPath("/gnu/store", "hello", "Hello, world?\n", nil),
		TextPath("/gnu/store", "hello", "Hello, world!\n", []string{"/gnu/store/x"}),
		TextPath("/other/store", "hello", "Hello, world!\n", nil),
	} {
		if filepath.Base(other)[:32] == base[:32] {
			t.Errorf("%s and %s share a hash part", p, other)
		}
	}
}

func TestBase32(t *testing.T) {
	// Nix prints the all-zero 20-byte hash as 32 zeros, and 0x01 as a
	// final "1" (the lowest bits go last).
	if got := base32(make([]byte, 20)); got != strings.Repeat("0", 32) {
		t.Errorf("base32(zeros) = %q", got)
	}
	h := make([]byte, 20)
	h[0] = 1
	if got := base32(h); got != strings.Repeat("0", 31)+"1" {
		t.Errorf("base32(1) = %q", got)
	}
}

func TestClosureOrder(t *testing.T) {
	dir := t.TempDir()
	s := &Store{Dir: filepath.Join(dir, "store"), State: filepath.Join(dir, "state")}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := func(n string) string { return filepath.Join(s.Dir, strings.Repeat(n, 32)+"-"+n) }
	for _, n := range []string{"a", "b", "c"} {
		if err := os.WriteFile(p(n), []byte(n), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	// c → b → a, and c → c (self-reference).
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Register(Info{Path: p("b"), References: []string{p("a")}}))
	must(s.Register(Info{Path: p("c"), References: []string{p("b"), p("c")}, Deriver: "/gnu/store/x.drv"}))
	got, err := s.Closure([]string{p("c")})
	must(err)
	if want := []string{p("a"), p("b"), p("c")}; !reflect.DeepEqual(got, want) {
		t.Errorf("Closure = %v, want %v", got, want)
	}
	got, err = s.TopoSort([]string{p("c"), p("a")})
	must(err)
	if want := []string{p("a"), p("c")}; !reflect.DeepEqual(got, want) {
		t.Errorf("TopoSort = %v, want %v", got, want)
	}
	info, err := s.Query(p("c"))
	must(err)
	if info.Deriver != "/gnu/store/x.drv" || len(info.References) != 2 {
		t.Errorf("Query = %+v", info)
	}
	if s.Valid(filepath.Join(s.Dir, "..", "x")) || s.Valid(p("d")) {
		t.Error("Valid accepts what is not an item")
	}
}
