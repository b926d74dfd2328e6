package scm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// progGen writes random, valid machines.scm programs from the constructs
// the built-in evaluator supports.
type progGen struct {
	r        *rand.Rand
	strs     []string // defined string variables
	lists    []string // defined list-of-strings variables
	machines []string // defined machine variables
	n        int
}

func (g *progGen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *progGen) str(d int) string {
	if d > 3 {
		return g.pick(`"a"`, `"x86_64-linux"`, `"é\n"`)
	}
	switch g.r.IntN(9) {
	case 0:
		if len(g.strs) > 0 {
			return g.strs[g.r.IntN(len(g.strs))]
		}
		return `"v"`
	case 1:
		return "(string-append " + g.str(d+1) + " " + g.str(d+1) + ")"
	case 2:
		return "(if " + g.boolean(d+1) + " " + g.str(d+1) + " " + g.str(d+1) + ")"
	case 3:
		return "(let ((v " + g.str(d+1) + ")) (string-append v v))"
	case 4:
		return "(number->string " + g.num(d+1) + ")"
	case 5:
		return "(car (list " + g.str(d+1) + "))"
	case 6:
		return "((lambda (a . rest) (string-append a (car (append rest (list \"!\"))))) " + g.str(d+1) + ")"
	case 7:
		return `(if (getenv "GUIX_OFFLOAD_TEST_NEVER_SET") "set" "unset")`
	}
	return g.pick(`"host"`, `"ssh-ed25519 AAAA"`, `"a\\\"b"`, `"λ"`, `"with space"`, `""`, `"\x41"`)
}

func (g *progGen) boolean(d int) string {
	if d > 3 {
		return g.pick("#t", "#f")
	}
	switch g.r.IntN(6) {
	case 0:
		return "(string=? " + g.str(d+1) + " " + g.str(d+1) + ")"
	case 1:
		return "(equal? " + g.list(d+1) + " " + g.list(d+1) + ")"
	case 2:
		return "(not " + g.boolean(d+1) + ")"
	case 3:
		return "(null? " + g.list(d+1) + ")"
	case 4:
		return "(equal? " + g.num(d+1) + " " + g.num(d+1) + ")"
	}
	return g.pick("#t", "#f", "#true", "#false")
}

func (g *progGen) num(d int) string {
	if d < 3 && g.r.IntN(4) == 0 {
		return "(if " + g.boolean(d+1) + " " + g.num(d+1) + " " + g.num(d+1) + ")"
	}
	return g.pick("1", "2", "3/2", "2.", ".5", "1e1", "#e1.5", "0.25", "7", "12345000.", "1.5e-4", "1e7")
}

func (g *progGen) list(d int) string {
	if d > 3 {
		return g.pick(`'()`, `'("i686-linux")`)
	}
	switch g.r.IntN(8) {
	case 0:
		if len(g.lists) > 0 {
			return g.lists[g.r.IntN(len(g.lists))]
		}
	case 1:
		return "(list " + g.str(d+1) + " " + g.str(d+1) + ")"
	case 2:
		return "(append " + g.list(d+1) + " " + g.list(d+1) + ")"
	case 3:
		return "(cons " + g.str(d+1) + " " + g.list(d+1) + ")"
	case 4:
		return "`(\"lit\" ," + g.str(d+1) + " ,(string-append \"q\" " + g.str(d+1) + ") ,@" + g.list(d+1) + ")"
	case 5:
		return "(map (lambda (s) (string-append s \"-x\")) " + g.list(d+1) + ")"
	case 6:
		return "(let* ((a " + g.list(d+1) + ") (b (append a a))) b)"
	}
	return g.pick(`'()`, `'("x86_64-linux" "i686-linux")`, `(list "aarch64-linux")`)
}

func (g *progGen) machine(d int) string {
	var b strings.Builder
	b.WriteString("(build-machine")
	inherit := len(g.machines) > 0 && g.r.IntN(3) == 0
	if inherit {
		b.WriteString(" (inherit " + g.machines[g.r.IntN(len(g.machines))] + ")")
	}
	fields := []struct {
		name string
		gen  func() string
	}{
		{"name", func() string { return g.str(d + 1) }},
		{"port", func() string { return g.pick("22", "2222", "#x1f90", "65535") }},
		{"systems", func() string { return g.list(d + 1) }},
		{"system", func() string { return g.str(d + 1) }},
		{"user", func() string { return g.str(d + 1) }},
		{"private-key", func() string { return g.str(d + 1) }},
		{"host-key", func() string { return g.str(d + 1) }},
		{"compression", func() string { return g.str(d + 1) }},
		{"compression-level", func() string { return g.pick("0", "3", "9") }},
		{"daemon-socket", func() string { return g.str(d + 1) }},
		{"overload-threshold", func() string { return g.pick("#f", "0.5", "1", "3/4", g.num(d+1)) }},
		{"parallel-builds", func() string { return g.pick("0", "1", "16") }},
		{"speed", func() string { return g.num(d + 1) }},
		{"features", func() string { return g.list(d + 1) }},
	}
	for _, f := range fields {
		required := !inherit && (f.name == "name" || f.name == "user" || f.name == "host-key" || f.name == "systems")
		if required || g.r.IntN(3) == 0 {
			fmt.Fprintf(&b, "\n  (%s %s)", f.name, f.gen())
		}
	}
	b.WriteString(")")
	return b.String()
}

func (g *progGen) program() string {
	var b strings.Builder
	b.WriteString(";; generated\n")
	for i, k := 0, 1+g.r.IntN(5); i < k; i++ {
		g.n++
		switch g.r.IntN(4) {
		case 0:
			name := fmt.Sprintf("s%d", g.n)
			fmt.Fprintf(&b, "(define %s %s)\n", name, g.str(0))
			g.strs = append(g.strs, name)
		case 1:
			name := fmt.Sprintf("l%d", g.n)
			fmt.Fprintf(&b, "(define %s %s)\n", name, g.list(0))
			g.lists = append(g.lists, name)
		default:
			name := fmt.Sprintf("m%d", g.n)
			fmt.Fprintf(&b, "(define %s\n %s)\n", name, g.machine(0))
			g.machines = append(g.machines, name)
		}
	}
	var items []string
	items = append(items, g.machines...)
	items = append(items, g.machine(0))
	switch g.r.IntN(3) {
	case 0:
		fmt.Fprintf(&b, "(list %s)\n", strings.Join(items, " "))
	case 1:
		base := items[g.r.IntN(len(items))]
		fmt.Fprintf(&b, "(append (list %s)\n (map (lambda (s) (build-machine (inherit %s) (systems (list s)))) %s))\n",
			strings.Join(items, " "), base, g.list(0))
	default:
		fmt.Fprintf(&b, "(let ((ms (list %s))) `(,@ms ,(car ms)))\n", strings.Join(items, " "))
	}
	return b.String()
}

// TestEvalMatchesGuileGenerated evaluates random valid programs with both
// evaluators (fixed seed, so failures reproduce).
func TestEvalMatchesGuileGenerated(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0")
	r := rand.New(rand.NewPCG(3, 8))
	dir := t.TempDir()
	ok, machines := 0, 0
	defer func() { t.Logf("%d of 40 programs evaluated, %d machines", ok, machines) }()
	for i := 0; i < 40; i++ {
		g := &progGen{r: r}
		prog := g.program()
		file := filepath.Join(dir, fmt.Sprintf("gen%02d.scm", i))
		if err := os.WriteFile(file, []byte(prog), 0o644); err != nil {
			t.Fatal(err)
		}
		want, gerr := EvalWithGuile(context.Background(), guile, file)
		got, err := EvalMachines([]byte(prog), file)
		if (gerr == nil) != (err == nil) {
			t.Errorf("program %d: guile error %v, built-in error %v\n%s", i, gerr, err, prog)
			continue
		}
		if err != nil {
			t.Logf("both reject program %d: %v", i, err)
		}
		if err == nil {
			ok++
			machines += len(got)
			sameMachines(t, fmt.Sprintf("program %d:\n%s\nresults", i, prog), got, want)
		}
	}
}
