package main

import (
	"github.com/spf13/cobra"
)

func newStatusCommand() *cobra.Command {
	var opts checkOptions
	cmd := &cobra.Command{
		Use:   "status [FILE [REGEXP]]",
		Short: "Show the load, free space and clock of each build machine",
		Long: `status connects to each build machine the hook would use, all in parallel,
and prints one line per machine: its normalized load, free store space,
clock difference and whether it is usable, like 'guix offload status'.
Unlike test it sends and builds nothing.

FILE is a machines.scm (default: the hook's machines-file); REGEXP keeps
the machines whose name it matches.`,
		Example: `  sudo guix-offload status
  sudo guix-offload status /etc/guix/machines.scm builder1`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd.Context(), opts, args, false, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	opts.addFlags(cmd)
	return cmd
}
