package transport_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/transport"
)

// FuzzQuote checks that whatever a quoted word holds, the shell OpenSSH
// hands the command line to gives it back unchanged: no expansion, no
// splitting, no injection.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{
		"/gnu/store/abc-hello.drv", "", "a b", "it's", `"double"`, "$(touch /tmp/x)", "`id`",
		"*", "~root", "a\nb", "back\\slash", "-n", "ünï", "'", "''", "\t",
	} {
		f.Add(s)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		f.Skip("no sh")
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return // no argument can hold NUL
		}
		out, err := exec.Command(sh, "-c", "printf '%s' "+transport.Quote(s)).Output()
		if err != nil {
			t.Fatalf("sh -c printf %s: %v", transport.Quote(s), err)
		}
		if string(out) != s {
			t.Fatalf("Quote(%q) = %s came back as %q", s, transport.Quote(s), out)
		}
	})
}
