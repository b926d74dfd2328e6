package main

import (
	"bufio"
	"fmt"
	"regexp"
	"strings"
)

// addTextRE is the one expression the stand-in's REPL evaluates: Guix's
// own `guix offload test` makes its test items this way (guix/scripts/
// offload.scm, assert-node-has-guix): (begin (use-modules (guix))
// (with-store s (add-text-to-store s "NAME" "CONTENT"))), any names for
// the store variable, strings with \" and \\ escapes.
var addTextRE = regexp.MustCompile(`^\s*\(begin\s+\(use-modules\s+\(guix\)\)\s+\(with-store\s+([a-z][a-z0-9-]*)\s+\(add-text-to-store\s+([a-z][a-z0-9-]*)\s+"((?:[^"\\]|\\.)*)"\s+"((?:[^"\\]|\\.)*)"\s*\)\s*\)\s*\)\s*$`)

// cmdRepl is `guix repl -t machine` (guix/scripts/repl.scm): the
// machine-readable REPL of guix/repl.scm that Guix's inferiors speak. It
// prints (repl-version 0 1 1), then reads one expression per line on
// stdin and answers each on one line: (values (value "…")) for a string
// result, (exception KEY ARGS…) for an error (protocol (0 0), the one a
// client that sends no version of its own gets).
func (g *guix) cmdRepl(args []string) int {
	machine := false
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-t" && i+1 < len(args):
			i++
			machine = args[i] == "machine"
		case a == "--type=machine":
			machine = true
		default:
			return g.fail("repl", fmt.Errorf("%s: the stand-in only runs `guix repl -t machine`", a))
		}
	}
	if !machine {
		return g.fail("repl", fmt.Errorf("the stand-in only runs `guix repl -t machine`"))
	}
	fmt.Fprintln(g.stdout, "(repl-version 0 1 1)")
	sc := bufio.NewScanner(g.stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		expr := sc.Text()
		if strings.TrimSpace(expr) == "" {
			continue
		}
		p, err := g.evalAddText(expr)
		if err != nil {
			fmt.Fprintf(g.stdout, "(exception misc-error (value %s))\n", schemeString(err.Error()))
			continue
		}
		fmt.Fprintf(g.stdout, "(values (value %s))\n", schemeString(p))
	}
	if err := sc.Err(); err != nil {
		return g.fail("repl", err)
	}
	return 0
}

// evalAddText evaluates the add-text-to-store expression (addTextRE)
// and returns the item's store path.
func (g *guix) evalAddText(expr string) (string, error) {
	m := addTextRE.FindStringSubmatch(expr)
	if m == nil || m[1] != m[2] {
		return "", fmt.Errorf("the stand-in evaluates only (begin (use-modules (guix)) (with-store s (add-text-to-store s \"NAME\" \"CONTENT\"))), not %q", expr)
	}
	return g.addText(unescapeScheme(m[3]), unescapeScheme(m[4]), nil)
}

// unescapeScheme undoes the \" \\ \n \t escapes of a Scheme string body.
func unescapeScheme(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// schemeString writes s as a Scheme string literal, as Guile's `write`
// does for the text the stand-in prints (store paths and messages).
func schemeString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}
