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
