package main

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/internal/cli"
)

// version is set at link time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "guix-offload",
		Short: "Zero-config build offloading for GNU Guix",
		Long: `guix-offload makes GNU Guix build offloading zero-config: build machines
running guix-offload-agent advertise themselves on the LAN, and the offload
hook merges them with /etc/guix/machines.scm.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		// Subcommands, one per cmd_<name>.go file.
		newTestCommand(),
		newStatusCommand(),
		newMachinesCommand(),
		newDiscoverCommand(),
		newKeysCommand(),
		newArchiveCommand(),
		newHookCommand(),
		newInstallShimCommand(),
	)
	return root
}

// run executes the command line and maps its error to an exit status.
func run(ctx context.Context, args []string) int {
	return runWith(ctx, args, os.Stdout, os.Stderr)
}

// runWith is run with the output streams given, for tests.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return cli.Exit(stderr, "guix-offload", root.ExecuteContext(ctx))
}
