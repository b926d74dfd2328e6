package scm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// A machines.scm that loops, or starts a child that keeps our pipes open,
// costs at most the bound, and says so; Guile's own words ("Throw to
// key") stay out of every message.
func TestEvalWithGuileBounded(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0")
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, text string
		timeout    bool
		want       string
	}{
		{"loop", "(let loop () (loop))\n", true, "gave up waiting for Guile after 1s (does the file loop"},
		{"child holds the pipe", "(use-modules (ice-9 popen))\n(open-pipe* OPEN_READ \"sleep\" \"60\")\n(let loop () (loop))\n", true, "gave up waiting for Guile"},
		{"exit", "(exit 3)\n", false, "the file exits (status 3) instead of returning a list of build machines"},
		{"throw", "(throw 'oops 1 2)\n", false, "uncaught exception oops with (1 2)"},
		{"bad field", "(list (build-machine (name \"a\") (nosuch 1)))\n", false, "build-machine: unknown field nosuch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The bound is short where it is what the case checks;
			// elsewhere it is generous, so that a slow Guile start on a
			// loaded machine does not turn a refusal into a timeout.
			bound := time.Minute
			if tc.timeout {
				bound = time.Second
			}
			start := time.Now()
			_, err := evalWithGuile(context.Background(), guile, write(tc.name+".scm", tc.text), bound)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %v", took)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrGuileTimeout) != tc.timeout {
				t.Errorf("error %v, want %q (timeout %v)", err, tc.want, tc.timeout)
			}
			if err != nil && strings.Contains(err.Error(), "Throw to key") {
				t.Errorf("Guile's internals in %q", err)
			}
		})
	}
	// Cancelling is the caller's business, not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, err := evalWithGuile(ctx, guile, write("loop2.scm", "(let loop () (loop))\n"), time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
