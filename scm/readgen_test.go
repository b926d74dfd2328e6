package scm

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// genDatum writes a random datum in Guile syntax, with random atmosphere.
func genDatum(r *rand.Rand, b *strings.Builder, depth int) {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	if r.IntN(6) == 0 {
		b.WriteString(pick(" ", "\n", "\t", " ; c\n", " #| b #| n |# |# ", " #;x ", " #;(a b) "))
	}
	n := r.IntN(14)
	if depth > 4 && n < 4 {
		n += 4
	}
	switch n {
	case 0, 1:
		open, closer := "(", ")"
		if r.IntN(4) == 0 {
			open, closer = "[", "]"
		}
		b.WriteString(open)
		for i, k := 0, r.IntN(4); i < k; i++ {
			if i > 0 {
				b.WriteString(" ")
			}
			genDatum(r, b, depth+1)
		}
		if r.IntN(4) == 0 {
			b.WriteString(" x . ")
			genDatum(r, b, depth+1)
		}
		b.WriteString(closer)
	case 2:
		b.WriteString(pick("'", "`", ",", ",@", "#;x "))
		genDatum(r, b, depth+1)
	case 3:
		b.WriteString("#(")
		genDatum(r, b, depth+1)
		b.WriteString(" ")
		genDatum(r, b, depth+1)
		b.WriteString(")")
	case 4, 5:
		sign := pick("", "-", "+")
		digits := fmt.Sprint(r.IntN(100000))
		switch r.IntN(6) {
		case 0:
			b.WriteString(sign + digits)
		case 1:
			b.WriteString(sign + digits + "/" + fmt.Sprint(1+r.IntN(999)))
		case 2:
			b.WriteString(sign + digits + "." + fmt.Sprint(r.IntN(1000)))
		case 3:
			b.WriteString(sign + "." + digits)
		case 4:
			b.WriteString(sign + digits + pick("e", "E") + pick("", "-", "+") + fmt.Sprint(r.IntN(300)))
		case 5:
			b.WriteString(pick("#x"+sign+"1f", "#b"+sign+"101", "#o"+sign+"17", "#e"+sign+"1.5", "#i"+sign+"3/2", "#d"+sign+"10", "#x#e"+sign+"ff"))
		}
	case 6, 7:
		b.WriteString(`"`)
		for i, k := 0, r.IntN(8); i < k; i++ {
			switch r.IntN(5) {
			case 0:
				b.WriteString(pick(`\n`, `\t`, `\\`, `\"`, `\a`, `\x41`, `\x7e`, `\u00e9`, `\U01F600`, `\0`, `\|`, "\\\n"))
			case 1:
				b.WriteString(pick("é", "λ", "😀", "\n", "\t", ";", "(", "#|"))
			default:
				c := byte(' ' + r.IntN(95))
				if c == '\\' || c == '"' {
					c = 'z'
				}
				b.WriteByte(c)
			}
		}
		b.WriteString(`"`)
	case 8:
		b.WriteString(pick(`#\a`, `#\space`, `#\newline`, `#\x41`, `#\(`, `#\)`, `#\;`, `#\λ`, `#\nul`, `#\tab`, `#\101`, `#\x3bb`))
	case 9:
		b.WriteString(pick("#t", "#f", "#true", "#false", "#T", "#FALSE", "#\\SPACE", "#\\Newline", "#X1F", "#E1.5", "1E3", "#\\xa", "#{}#"))
	case 10:
		b.WriteString(pick("#:", "") + pick("foo", "a.b", "x->y", "<=?", "!$%&*/:<=>?^_~", "1+", "-", "...", "é", "a'b", "a,b", "a#b", "+.", "1/0", "1.2.3", "e1"))
	default:
		b.WriteString(pick("foo", "bar-baz", "#{a b}#", "λ", "|x", "x|"))
	}
}

// TestReadMatchesGuileGenerated compares the two readers on a few thousand
// random data (fixed seed, so failures reproduce).
func TestReadMatchesGuileGenerated(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0")
	r := rand.New(rand.NewPCG(2, 5))
	var b strings.Builder
	for i := 0; i < 3000; i++ {
		genDatum(r, &b, 0)
		b.WriteString("\n")
	}
	file := filepath.Join(t.TempDir(), "gen.scm")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(guile, "--no-auto-compile", "testdata/reader/dump.scm", file).CombinedOutput()
	if err != nil {
		t.Fatalf("guile: %v\n%s", err, out)
	}
	vs, err := Read([]byte(b.String()), file)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(vs) != len(want) {
		t.Fatalf("read %d data, guile read %d", len(vs), len(want))
	}
	bad := 0
	for i := range vs {
		if got := dump(vs[i]); got != want[i] && bad < 10 {
			bad++
			t.Errorf("datum %d at %v:\n got %s\nwant %s", i, vs[i].Pos(), got, want[i])
		}
	}
}
