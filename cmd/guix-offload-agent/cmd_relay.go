package main

import (
	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/internal/transport"
	"github.com/guix-offload/guix-offload/internal/worker"
)

// newRelayCommand is the build machine's end of the master's connection
// to this machine's guix-daemon, run by `guix-offload hook` over SSH.
func newRelayCommand() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "relay [--socket PATH]",
		Short: "Relay stdin and stdout to guix-daemon's socket (run by the master over SSH)",
		Long: `relay is what the master's offload hook runs on this machine over SSH to
talk to this machine's guix-daemon: it connects to the daemon's Unix
socket and copies stdin to it and its answers to stdout until either side
ends. So the master's key needs no forwarding of any kind
(authorized_keys "restrict").

It exits 0 when either side ends, 1 with one line on stderr when the
socket cannot be reached.`,
		Example: `  guix-offload-agent relay --socket /var/guix/daemon-socket/socket`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := transport.Relay(cmd.Context(), socket, cmd.InOrStdin(), cmd.OutOrStdout())
			if err != nil {
				return cli.ExitError{Code: 1, Err: err}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", worker.DefaultSocket, "guix-daemon's socket")
	return cmd
}
