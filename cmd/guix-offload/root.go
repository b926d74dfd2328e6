package main

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/cmd/internal/cmdutil"
)

// version is set at link time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "guix-offload",
		Short: "Zero-config build offloading for GNU Guix",
		Long: `guix-offload makes GNU Guix build offloading zero-config: build machines
running guix-offload-agent advertise themselves on the LAN, and the offload
hook merges them with /etc/guix/machines.scm.

On the master, 'install-shim' makes guix-daemon run the hook, 'discover
--watch --cache' (a service) keeps the list of build machines current, and
'test' checks that each one can really be offloaded to. See the README.`,
		Example: `  guix-offload discover                 # the build machines on the LAN
  sudo guix-offload test                # can each one be offloaded to?
  guix-offload machines --format scm    # /etc/guix/machines.scm as Guix reads it`,
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
		newPairCommand(),
	)
	cmdutil.Setup(root, version)
	return root
}

// run executes the command line and maps its error to an exit status.
func run(ctx context.Context, args []string) int {
	return runWith(ctx, args, os.Stdout, os.Stderr)
}

// runWith is run with the output streams given, for tests.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cmdutil.Execute(ctx, newRootCommand(), "guix-offload", args, stdout, stderr)
}
