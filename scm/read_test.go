package scm

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// dump renders v in the tagged form testdata/reader/dump.scm prints from
// Guile's own reader, so the two readers can be compared datum by datum.
func dump(v Value) string {
	codes := func(tag, s string) string {
		var b strings.Builder
		b.WriteString("(" + tag)
		for _, c := range s {
			fmt.Fprintf(&b, " %d", c)
		}
		return b.String() + ")"
	}
	switch x := v.(type) {
	case *Pair:
		return "(P " + dump(x.Car) + " " + dump(x.Cdr) + ")"
	case Nil:
		return "N"
	case Symbol:
		return codes("S", x.Name)
	case Keyword:
		return codes("K", x.Name)
	case String:
		return codes("T", x.S)
	case Bool:
		if x.V {
			return "(B 1)"
		}
		return "(B 0)"
	case Char:
		return fmt.Sprintf("(C %d)", x.V)
	case Vector:
		s := "(V"
		for _, it := range x.Items {
			s += " " + dump(it)
		}
		return s + ")"
	case Int:
		return "(I " + x.V.String() + ")"
	case Rational:
		return "(Q " + x.V.RatString() + ")"
	case Real:
		switch {
		case math.IsInf(x.V, 1):
			return "(R inf)"
		case math.IsInf(x.V, -1):
			return "(R -inf)"
		case math.IsNaN(x.V):
			return "(R nan)"
		}
		return "(R " + new(big.Rat).SetFloat64(x.V).RatString() + ")"
	}
	return fmt.Sprintf("(? %T)", v)
}

func TestReadMatchesGuile(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0")
	files, _ := filepath.Glob("testdata/reader/*.scm")
	if len(files) == 0 {
		t.Fatal("no reader corpus")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := exec.Command(guile, "--no-auto-compile", "testdata/reader/dump.scm", f).CombinedOutput()
			if err != nil {
				t.Fatalf("guile: %v\n%s", err, out)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			vs, err := Read(data, f)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			want := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if len(vs) != len(want) {
				t.Errorf("read %d data, guile read %d", len(vs), len(want))
			}
			for i := 0; i < len(vs) && i < len(want); i++ {
				if got := dump(vs[i]); got != want[i] {
					t.Errorf("datum %d at %v:\n got %s\nwant %s", i, vs[i].Pos(), got, want[i])
				}
			}
		})
	}
}

func TestReadPositions(t *testing.T) {
	src := "; comment\n(a\n  \"é\" #\\x  (b . c))\n  'q #| x\n|# ü"
	vs, err := Read([]byte(src), "f.scm")
	if err != nil {
		t.Fatal(err)
	}
	items, ok := List(vs[0])
	if !ok || len(items) != 4 {
		t.Fatalf("first datum: %v", dump(vs[0]))
	}
	inner := items[3].(*Pair)
	checks := []struct {
		name string
		v    Value
		want string
	}{
		{"list", vs[0], "f.scm:2:1"},
		{"symbol", items[0], "f.scm:2:2"},
		{"string", items[1], "f.scm:3:3"},
		{"char after multibyte string", items[2], "f.scm:3:7"},
		{"inner list", items[3], "f.scm:3:12"},
		{"dotted cdr", inner.Cdr, "f.scm:3:17"},
		{"quote", vs[1], "f.scm:4:3"},
		{"after block comment", vs[2], "f.scm:5:4"},
	}
	for _, c := range checks {
		if got := c.v.Pos().String(); got != c.want {
			t.Errorf("%s: position %s, want %s", c.name, got, c.want)
		}
	}
}

func TestReadByteOrderMark(t *testing.T) {
	vs, err := Read([]byte("\xef\xbb\xbf(a)"), "f")
	if err != nil || len(vs) != 1 || vs[0].Pos().String() != "f:1:1" {
		t.Fatalf("Read with BOM = %v, %v", vs, err)
	}
}

func TestReadErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{`(a "unterminated`, `f:1:4: unterminated string`},
		{"(a\n (b c)", `f:1:1: unbalanced '(': end of input before its ')'`},
		{"(a))", `f:1:4: unexpected ')'`},
		{"(a]", `f:1:3: ']' closes '(' opened at 1:1`},
		{"\n  #y", `f:2:3: unknown # syntax #y`},
		{`"\q"`, `f:1:2: invalid escape \q in string`},
		{`"\x4"`, `f:1:2: \x in a string needs 2 hexadecimal digits`},
		{`#\bogus`, `f:1:1: unknown character name #\bogus`},
		{"#| never closed", `f:1:1: unterminated #| … |# comment`},
		{"(a . b c)", `f:1:8: more than one datum after "." in a dotted list`},
		{"(. a)", `f:1:2: nothing before "." in a dotted list`},
		{"#:", `f:1:1: keyword prefix #: is not followed by a symbol`},
		{"1e400", `f:1:1: number 1e400 is out of range`},
		{"(a #e1e-330)", `f:1:4: number #e1e-330 is out of range`},
		{"1e99999999999999999999", `f:1:1: number 1e99999999999999999999 is out of range`},
		{"'", `f:1:1: end of input after '`},
		{"#;", `f:1:1: datum comment #; is not followed by a datum`},
		{"#xZZ", `f:1:1: bad number #xZZ`},
		{"a \xff", `f:1:3: invalid UTF-8 in input`},
		{strings.Repeat("(", maxDepth+1), `f:1:1001: nesting deeper than 1000 levels`},
	}
	for _, c := range cases {
		_, err := Read([]byte(c.src), "f")
		if err == nil || err.Error() != c.want {
			t.Errorf("Read(%q): error %v, want %s", c.src, err, c.want)
		}
	}
}

func TestReadGcryptFixtures(t *testing.T) {
	for _, name := range []string{"signing-key.pub", "signing-key.sec", "acl", "signature-hello.txt.sexp"} {
		data, err := os.ReadFile(filepath.Join("testdata/gcrypt", name))
		if err != nil {
			t.Fatal(err)
		}
		v, err := ReadGcrypt(data, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := List(v); !ok {
			t.Errorf("%s: not a list", name)
		}
	}
	data, _ := os.ReadFile("testdata/gcrypt/signing-key.pub")
	v, _ := ReadGcrypt(data, "k")
	items, _ := List(v)
	ecc, _ := List(items[1])
	curve, _ := List(ecc[1])
	q, _ := List(ecc[2])
	if s, _ := AtomBytes(items[0]); string(s) != "public-key" {
		t.Errorf("head %q", s)
	}
	if s, _ := AtomBytes(curve[1]); string(s) != "Ed25519" || curve[1].Pos().String() != "k:3:10" {
		t.Errorf("curve %q at %v", s, curve[1].Pos())
	}
	qb, ok := q[1].(Bytes)
	if !ok || len(qb.B) != 32 || qb.B[0] != 0xf7 || qb.B[31] != 0x09 || q[1].Pos().String() != "k:4:6" {
		t.Errorf("q = %#v", q[1])
	}
}

func TestReadGcryptForms(t *testing.T) {
	cases := []struct {
		src  string
		want string // items rendered as TYPE:VALUE, space-separated
	}{
		{"(3:foo5:hello)", "B:foo B:hello"},
		{"(3:a)b)", "B:a)b"},
		{"(data (flags rfc6979) (hash sha256 #0102 03#))", "S:data L L"},
		{`(a "x\n\t\"\\\x41\101\
y" z)`, "S:a T:x\n\t\"\\AAy S:z"},
		{"(k |aGVsbG8=|)", "S:k B:hello"},
		{"(n 42 3des -x.y_z:*+=)", "S:n S:42 S:3des S:-x.y_z:*+="},
		{"()", ""},
		// Octets 0xA1-0xFF unescaped in a quoted string, as libgcrypt
		// prints them (Guile writing ISO-8859-1)…
		{"(d \"j\xba\xfd\xc3\xa9\")", "S:d T:j\xba\xfd\xc3\xa9"},
		// …and as Guile writes them in a UTF-8 locale: one octet each.
		{"(d \"j\xc2\xba\xc3\xbd\xc3\x83\xc2\xa9\")", "S:d T:j\xba\xfd\xc3\xa9"},
		// A byte that no such UTF-8 sequence explains: all taken raw.
		{"(d \"\xc2\xba\" \"\xff\")", "S:d T:\xc2\xba T:\xff"},
		// The same sequences outside quoted strings are not touched.
		{"(d 2:\xc2\xba \"\xc3\xa9\")", "S:d B:\xc2\xba T:\xe9"},
	}
	for _, c := range cases {
		v, err := ReadGcrypt([]byte(c.src), "g")
		if err != nil {
			t.Errorf("ReadGcrypt(%q): %v", c.src, err)
			continue
		}
		items, _ := List(v)
		var got []string
		for _, it := range items {
			switch x := it.(type) {
			case Symbol:
				got = append(got, "S:"+x.Name)
			case String:
				got = append(got, "T:"+x.S)
			case Bytes:
				got = append(got, "B:"+string(x.B))
			default:
				got = append(got, "L")
			}
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("ReadGcrypt(%q) = %q, want %q", c.src, g, c.want)
		}
	}
	v, _ := ReadGcrypt([]byte("(a #0102 03#)"), "g")
	items, _ := List(v)
	if b := items[1].(Bytes).B; !bytes.Equal(b, []byte{1, 2, 3}) {
		t.Errorf("hex with space = %x", b)
	}
}

func TestReadGcryptErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"", "g:1:1: no S-expression in input"},
		{"(a", `g:1:1: unbalanced "(": end of input before its ")"`},
		{"(a) b", `g:1:5: unexpected 'b' after the S-expression`},
		{"(a #123#)", "g:1:4: odd number of hexadecimal digits in #…#"},
		{"(a #12", "g:1:4: unterminated hexadecimal string #…#"},
		{"(9:abc)", "g:1:2: canonical length 9 runs past the end of the input"},
		{"(a \"x\\q\")", `g:1:6: invalid escape \q in string`},
		{"(a |!!|)", "g:1:4: bad base64 string: illegal base64 data at input byte 0"},
		{"(a {b})", "g:1:4: unexpected '{' in S-expression"},
		{"(a\n )\n)", `g:3:1: unexpected ')' after the S-expression`},
	}
	for _, c := range cases {
		_, err := ReadGcrypt([]byte(c.src), "g")
		if err == nil || err.Error() != c.want {
			t.Errorf("ReadGcrypt(%q): error %v, want %s", c.src, err, c.want)
		}
	}
}

func FuzzRead(f *testing.F) {
	for _, s := range []string{"(a . b)", `"x\x41"`, "#\\space", "#|a|#", "#;(a) 1/2 #e1.5"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vs, err := Read(data, "fuzz")
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, v := range vs {
			if p := v.Pos(); p.Line < 1 || p.Col < 1 {
				t.Fatalf("bad position %v", p)
			}
		}
	})
}

func FuzzReadGcrypt(f *testing.F) {
	for _, s := range []string{"(3:foo5:hello)", "(a #0102#)", `(s "x\n")`, "(k |aGk=|)",
		"(d \"j\xba\xfd\\x00\")", "(d \"j\xc2\xba\xc3\xbd\\x00\")"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ReadGcrypt(data, "fuzz")
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if v == nil {
			t.Fatal("nil datum without error")
		}
	})
}

// Issue 12, item 7: a number literal of a million digits (reading it
// took 4 seconds) is an error naming its place, found without
// converting it; a long symbol is still a symbol.
func TestReadRejectsHugeNumbers(t *testing.T) {
	for _, tok := range []string{
		strings.Repeat("7", 1<<20),
		"-" + strings.Repeat("1", 1<<20) + ".5",
		"#e1." + strings.Repeat("3", 1<<20),
		"#x" + strings.Repeat("f", 1<<20),
		"1/" + strings.Repeat("3", 1<<20),
		"#e#d" + strings.Repeat("4", 1<<20),
	} {
		_, err := Read([]byte("(list\n "+tok+")"), "machines.scm")
		if err == nil || !strings.Contains(err.Error(), "machines.scm:2:2") || !strings.Contains(err.Error(), "longer than") {
			t.Errorf("%.12s…: %v", tok, err)
		}
	}
	vs, err := Read([]byte(strings.Repeat("a", 1<<20)+"7"), "machines.scm")
	if err != nil || len(vs) != 1 {
		t.Fatalf("long symbol: %v", err)
	}
	if _, ok := vs[0].(Symbol); !ok {
		t.Errorf("long symbol read as %T", vs[0])
	}
	// Numbers up to the limit are read as before.
	vs, err = Read([]byte(strings.Repeat("9", maxNumberLen)), "machines.scm")
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := vs[0].(Int); !ok || len(n.V.String()) != maxNumberLen {
		t.Errorf("read %v", vs[0])
	}
}
