// Command standin plays Guix's command line (`guix`) on the hosts of the
// end-to-end tests, where Guix itself cannot be installed. It is a
// stand-in for tests only and is never shipped. REAL-GUIX.md lists the
// real Guix behaviours it imitates and where in Guix's sources each
// comes from.
//
// It keeps what the offload transport depends on real: the NAR and
// `guix archive --export` formats, Guix signature S-expressions made and
// checked with the host's keys and ACL, the daemon's refusal to import
// from an unauthorized signer, `Derive(…)` derivation files built by
// running their builder, the daemon's messages, and `guix build`'s exit
// status (1 for every failure, the daemon's message on stderr). It
// understands:
//
//	guix --version
//	guix archive --missing             (store paths on stdin; prints those not in the store)
//	guix archive --export [-r] PATH…   (signed export stream on stdout, dependencies first)
//	guix archive --import              (export stream on stdin; all-or-nothing)
//	guix build [--max-silent-time=N] [--timeout=N] [--no-offload] DRV…
//	guix build -e '(plain-file "NAME" "CONTENT")'   (adds the item, then crashes printing it, as real Guix)
//	guix repl -t machine               (evaluates add-text-to-store only; see repl.go)
//	guix daemon [--listen=SOCKET] [--protocol-version=V]   (guix-daemon's store protocol; see cmdDaemon)
//
// Where things are comes from the environment, with Guix's paths as
// defaults: GUIX_STANDIN_STORE (/gnu/store), GUIX_STANDIN_STATE (its
// references database, /var/guix/standin), GUIX_STANDIN_SIGNING_KEY
// (/etc/guix/signing-key.sec), GUIX_STANDIN_ACL (/etc/guix/acl) and
// GUIX_STANDIN_SYSTEMS (comma-separated; this machine's system). The
// daemon's own limits, applied to a `guix build` that does not set them,
// are GUIX_STANDIN_DAEMON_TIMEOUT and GUIX_STANDIN_DAEMON_MAX_SILENT_TIME
// (seconds; guix-daemon's --timeout and --max-silent-time, 0 when unset).
// For
// fault-injection tests, GUIX_STANDIN_TAMPER=FROM=TO replaces the first
// FROM with TO (same length) in each exported NAR after it was signed.
// For benchmarks, GUIX_STANDIN_STARTUP=DURATION (e.g. 500ms) makes every
// command but `guix daemon` wait that long first, as a real `guix` spends
// starting Guile; `guix archive --export` and `--import` wait that long
// twice, and the stand-in daemon once per connection before its first
// signature or signature check, as guix-daemon starts its `guix
// authenticate` helper (a Guile process) in each connection's worker when
// it first needs it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/guix-offload/guix-offload/test/standin/internal/store"
)

type guix struct {
	store          *store.Store
	signingKeyFile string
	aclFile        string
	tamper         string
	stdin          io.Reader
	stdout, stderr io.Writer
	// events receives what `guix build` (the client, not the daemon)
	// says about builds as it renders the daemon's build traces; nil
	// when the stand-in plays the daemon.
	events io.Writer
	// startup is GUIX_STANDIN_STARTUP: what a Guile start costs.
	startup time.Duration
}

// eventf prints one of the client's build event lines (guix/status.scm,
// print-build-event), when the stand-in plays `guix build`.
func (g *guix) eventf(format string, args ...any) {
	if g.events != nil {
		fmt.Fprintf(g.events, format+"\n", args...)
	}
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	g := &guix{
		store: &store.Store{
			Dir:   getenv("GUIX_STANDIN_STORE", "/gnu/store"),
			State: getenv("GUIX_STANDIN_STATE", "/var/guix/standin"),
		},
		signingKeyFile: getenv("GUIX_STANDIN_SIGNING_KEY", "/etc/guix/signing-key.sec"),
		aclFile:        getenv("GUIX_STANDIN_ACL", "/etc/guix/acl"),
		tamper:         os.Getenv("GUIX_STANDIN_TAMPER"),
		stdin:          os.Stdin,
		stdout:         os.Stdout,
		stderr:         os.Stderr,
	}
	g.startup, _ = time.ParseDuration(os.Getenv("GUIX_STANDIN_STARTUP"))
	if len(os.Args) > 1 && os.Args[1] != "daemon" {
		// What starting Guile and loading Guix's modules costs a real
		// `guix` command, for benchmarks.
		time.Sleep(g.startup)
	}
	code := g.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func (g *guix) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(g.stderr, "guix: missing command name")
		return 1
	}
	switch args[0] {
	case "--version", "-V":
		fmt.Fprintln(g.stdout, "guix (GNU Guix) 0-standin (a stand-in for tests)")
		return 0
	case "archive":
		return g.cmdArchive(ctx, args[1:])
	case "build":
		return g.cmdBuild(ctx, args[1:])
	case "daemon":
		return g.cmdDaemon(ctx, args[1:])
	case "repl":
		return g.cmdRepl(args[1:])
	}
	fmt.Fprintf(g.stderr, "guix: %s: command not found\n", args[0])
	return 1
}

// fail prints err as Guix's `leave` does and returns the exit status 1.
func (g *guix) fail(cmd string, err error) int {
	fmt.Fprintf(g.stderr, "guix %s: error: %v\n", cmd, err)
	return 1
}
