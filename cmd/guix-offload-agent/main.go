package main

// Man pages and completions in dist/guix-offload-agent, from the commands.
//go:generate go test -run ^TestGeneratedDocs$ -update .

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/cmd/internal/cmdutil"
)

// version is set at link time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "guix-offload-agent",
		Short: "Advertise this Guix build machine on the LAN",
		Long: `guix-offload-agent works out what this build machine offers (systems,
parallel builds, speed, features, SSH user and host key, load, free store
space) and advertises it with DNS-SD over multicast DNS, signed with the
machine's Guix signing key, so that masters running guix-offload offload
builds to it without a hand-written machines.scm entry. Run it as a
service on each build machine (docs/services.md).`,
	}
	root.AddCommand(newStreamCommand(), newRelayCommand(), newPairCommand())
	addRunFlags(root)
	cmdutil.Setup(root, version)
	return root
}

func run(ctx context.Context, args []string) int {
	return runWith(ctx, args, os.Stdout, os.Stderr)
}

// runWith is run with the output streams given, for tests.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cmdutil.Execute(ctx, newRootCommand(), "guix-offload-agent", args, stdout, stderr)
}
