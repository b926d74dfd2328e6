package main

// Man pages and completions in dist/guix-offload, from the commands.
//go:generate go test -run ^TestGeneratedDocs$ -update .

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if filepath.Base(os.Args[0]) == "guix" {
		// Invoked through the shim (install-shim): guix-daemon's GUIX.
		code = runShim(ctx, os.Args)
	} else {
		code = run(ctx, os.Args[1:])
	}
	stop()
	os.Exit(code)
}
