package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/cmd/internal/cmdutil"
	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/scm"
)

type machinesOptions struct {
	file     string
	explicit bool // file was named on the command line: it must exist
	format   string
	eval     string
	guile    string
}

func newMachinesCommand() *cobra.Command {
	var opts machinesOptions
	cmd := &cobra.Command{
		Use:   "machines [FILE]",
		Short: "Print the static build machines of machines.scm",
		Long: `machines evaluates FILE (default /etc/guix/machines.scm) the way Guix's
offload hook does and prints its build machines with Guix's defaults
applied, to check a machines.scm before the daemon reads it. A missing
/etc/guix/machines.scm means no static machines, as in Guix; a FILE named
on the command line must exist.

By default a built-in evaluator reads the file; it knows the part of Guile
that machines.scm files use (build-machine with inherit, define, lambda,
let, map, string-append, getenv, quasiquote…) and reports mistakes as
FILE:LINE:COLUMN. --eval=guile runs the real Guile instead, for files that
need more of it.`,
		Example: `  guix-offload machines
  guix-offload machines examples/machines.scm --format json
  guix-offload machines --eval guile --format scm`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.explicit = cmd.Flags().Changed("file")
			if len(args) == 1 {
				if opts.explicit {
					return cmdutil.Usage(errors.New("FILE given twice, as an argument and with --file"))
				}
				opts.file, opts.explicit = args[0], true
			}
			return runMachines(cmd.Context(), opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.file, "file", scm.DefaultMachinesFile, "the machines.scm file to read (same as FILE)")
	_ = f.MarkHidden("file") // FILE is the argument, as for test and status
	f.StringVar(&opts.format, "format", "table", "output format: "+strings.Join(scm.Formats, ", "))
	f.StringVar(&opts.eval, "eval", "builtin", "evaluator: builtin, or guile for the real Guile")
	f.StringVar(&opts.guile, "guile", "guile", "the Guile program for --eval=guile")
	cmdutil.Choices(cmd, "format", scm.Formats...)
	cmdutil.Choices(cmd, "eval", "builtin", "guile")
	return cmd
}

func runMachines(ctx context.Context, opts machinesOptions, stdout, stderr io.Writer) error {
	if !slices.Contains(scm.Formats, opts.format) {
		return cmdutil.Usage(cli.WithHint(fmt.Errorf("unknown format %q", opts.format),
			"use one of "+strings.Join(scm.Formats, ", ")))
	}
	if _, err := os.Stat(opts.file); opts.explicit && err != nil {
		return cli.WithHint(fmt.Errorf("read machines.scm: %w", err),
			"name an existing file; only the default "+scm.DefaultMachinesFile+" may be missing (no static machines)")
	}
	var ms []scm.Machine
	var err error
	switch opts.eval {
	case "builtin":
		ms, err = scm.LoadMachines(opts.file)
	case "guile":
		ms, err = scm.EvalWithGuile(ctx, opts.guile, opts.file)
		if errors.Is(err, exec.ErrNotFound) {
			err = cli.WithHint(err, "install Guile (Debian: guile-3.0) or name it with --guile PROGRAM")
		}
	default:
		return cmdutil.Usage(cli.WithHint(fmt.Errorf("unknown evaluator %q", opts.eval), "use --eval=builtin or --eval=guile"))
	}
	if err != nil {
		return err
	}
	if _, statErr := os.Stat(opts.file); errors.Is(statErr, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "guix-offload: note: %s does not exist: no static machines\n", opts.file)
	}
	return scm.WriteFormat(stdout, opts.format, ms)
}
