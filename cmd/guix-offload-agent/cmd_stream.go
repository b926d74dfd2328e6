package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/internal/transport"
)

type streamOptions struct {
	guix string
}

// newStreamCommand is the build machine's end of the compressed archive
// pipe that `guix-offload hook` opens over SSH.
func newStreamCommand() *cobra.Command {
	var opts streamOptions
	cmd := &cobra.Command{
		Use:   "stream import | stream export ITEM...",
		Short: "Compressed end of the offload archive pipe (run by the master over SSH)",
		Long: `stream is what the master's offload hook runs on this machine over SSH
so that archives cross the network zstd-compressed:

  stream import          decompress stdin into 'guix archive --import'
  stream export ITEM...  compress the output of 'guix archive --export ITEM...'

Its exit status is guix's.`,
		Example: `  guix-offload-agent stream export /gnu/store/…-hello-2.12 > hello.zst`,
		Args: cobra.MatchAll(cobra.MinimumNArgs(1), func(_ *cobra.Command, args []string) error {
			switch {
			case args[0] != "import" && args[0] != "export":
				return fmt.Errorf("unknown stream direction %q (want import or export)", args[0])
			case args[0] == "import" && len(args) > 1:
				return fmt.Errorf("stream import takes no argument, got %d", len(args)-1)
			}
			return nil
		}),
		ValidArgs: []string{"import", "export"},
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := transport.StreamCommand(cmd.Context(), opts.guix, args[0], args[1:],
				cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return cli.ExitError{Code: 1, Err: err}
			}
			if code != 0 {
				return cli.ExitError{Code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.guix, "guix", "guix", "the guix program to run")
	return cmd
}
