package transport

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Test items are made the way Guix's own `guix offload test` makes them
// (guix/scripts/offload.scm, assert-node-has-guix and friends): the
// daemon's add-text-to-store, evaluated by `guix repl -t machine`, the
// machine-readable REPL Guix's inferiors speak (guix/repl.scm). Not with
// `guix build -e '(plain-file …)'`: real Guix adds that item, then fails
// printing it (a match-error in show-derivation-outputs), with nothing on
// stdout and exit status 1.

// replCommand is the argv tail that starts the machine REPL.
var replCommand = []string{"repl", "-t", "machine"}

// addTextExpr is the expression that adds a text item named name holding
// content to the store and returns its path.
func addTextExpr(name, content string) string {
	return fmt.Sprintf("(begin (use-modules (guix)) (with-store store (add-text-to-store store %s %s)))\n",
		schemeString(name), schemeString(content))
}

// schemeString writes s as a Scheme string literal.
func schemeString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// replValueRE is the REPL's answer when the expression returned one
// string: (values (value "…")).
var replValueRE = regexp.MustCompile(`^\(values \(value "((?:[^"\\]|\\.)*)"\)\)$`)

// maxReplAnswer bounds what is read of the REPL's output.
const maxReplAnswer = 64 << 10

// parseReplString reads the machine REPL's output for one expression:
// the greeting "(repl-version …)", then one line, which must be a single
// string value. An exception or anything else is an error quoting the
// REPL (its first 200 bytes).
func parseReplString(out []byte) (string, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "(repl-version ") {
		return "", fmt.Errorf("not Guix's machine REPL: it said %q", abbrevBytes(lines[0]))
	}
	if len(lines) < 2 {
		return "", errors.New("the REPL answered nothing")
	}
	ans := strings.TrimRight(lines[1], "\r")
	if strings.HasPrefix(ans, "(exception ") {
		return "", fmt.Errorf("the REPL raised %s", abbrevBytes(ans))
	}
	m := replValueRE.FindStringSubmatch(ans)
	if m == nil {
		return "", fmt.Errorf("unexpected answer from the REPL: %s", abbrevBytes(ans))
	}
	var b strings.Builder
	for i := 0; i < len(m[1]); i++ {
		c := m[1][i]
		if c == '\\' && i+1 < len(m[1]) {
			i++
			switch c = m[1][i]; c {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'r':
				c = '\r'
			}
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func abbrevBytes(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%q…", s[:200])
	}
	return fmt.Sprintf("%q", s)
}

// nixBase32 is the alphabet of store path hash parts.
const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

// textItem checks that the REPL's answer p is an item named name
// directly in store.
func textItem(p, store, name string) (string, error) {
	base := filepath.Base(p)
	if p != filepath.Clean(p) || filepath.Dir(p) != filepath.Clean(store) || len(base) != 33+len(name) || base[32] != '-' || base[33:] != name {
		return "", fmt.Errorf("add-text-to-store returned %q, not an item %s/…-%s", p, store, name)
	}
	if strings.Trim(base[:32], nixBase32) != "" {
		return "", fmt.Errorf("add-text-to-store returned %q, whose hash part is not base 32", p)
	}
	return p, nil
}

// localTextItem adds a text item to the local store with the local
// `guix repl -t machine`.
func localTextItem(ctx context.Context, guix, store, name, content string) (string, error) {
	cmd := exec.CommandContext(ctx, lookGuix(guix), replCommand...)
	cmd.Stdin = strings.NewReader(addTextExpr(name, content))
	errBuf := &tail{max: 1024}
	out := &tail{max: maxReplAnswer}
	cmd.Stdout, cmd.Stderr = out, errBuf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", cmd.Path, strings.Join(replCommand, " "), err, lastLine(errBuf.String()))
	}
	p, err := parseReplString([]byte(out.String()))
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", cmd.Path, strings.Join(replCommand, " "), err)
	}
	return textItem(p, store, name)
}

// remoteTextItem adds a text item to the machine's store with its
// `guix repl -t machine`.
func remoteTextItem(ctx context.Context, client *ssh.Client, guix, store, name, content string) (string, error) {
	cmd := Command(append([]string{guix}, replCommand...)...)
	out := &tail{max: maxReplAnswer}
	errBuf := &tail{max: 2048}
	code, err := Exec(ctx, client, cmd, strings.NewReader(addTextExpr(name, content)), out, errBuf)
	switch {
	case err != nil:
		return "", err
	case code != 0:
		return "", &RemoteError{Command: cmd, Status: code, Stderr: errBuf.String()}
	}
	p, err := parseReplString([]byte(out.String()))
	if err != nil {
		return "", fmt.Errorf("%s: %w", firstWord(cmd), err)
	}
	return textItem(p, store, name)
}
