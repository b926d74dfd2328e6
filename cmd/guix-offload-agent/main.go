// Command guix-offload-agent runs on a build machine and advertises what it
// offers on the LAN with DNS-SD over multicast DNS.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/internal/cli"
)

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
space) and advertises it with DNS-SD over multicast DNS.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newStreamCommand())
	addRunFlags(root)
	return root
}

func run(ctx context.Context, args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	return cli.Exit(os.Stderr, "guix-offload-agent", root.ExecuteContext(ctx))
}
