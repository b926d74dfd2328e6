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

	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/scm"
)

type machinesOptions struct {
	file   string
	format string
	eval   string
	guile  string
}

func newMachinesCommand() *cobra.Command {
	var opts machinesOptions
	cmd := &cobra.Command{
		Use:   "machines",
		Short: "Print the static build machines of machines.scm",
		Long: `machines evaluates /etc/guix/machines.scm (or --file) the way Guix's
offload hook does and prints its build machines with Guix's defaults
applied. A missing file means no static machines, as in Guix.

By default a built-in evaluator reads the file; it knows the part of Guile
that machines.scm files use (build-machine with inherit, define, lambda,
let, map, string-append, getenv, quasiquote…) and reports mistakes as
FILE:LINE:COLUMN. --eval=guile runs the real Guile instead, for files that
need more of it.`,
		Example: `  guix-offload machines
  guix-offload machines --file examples/machines.scm --format json
  guix-offload machines --eval guile --format scm`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMachines(cmd.Context(), opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.file, "file", scm.DefaultMachinesFile, "the machines.scm file to read")
	f.StringVar(&opts.format, "format", "table", "output format: "+strings.Join(scm.Formats, ", "))
	f.StringVar(&opts.eval, "eval", "builtin", "evaluator: builtin, or guile for the real Guile")
	f.StringVar(&opts.guile, "guile", "guile", "the Guile program for --eval=guile")
	return cmd
}

func runMachines(ctx context.Context, opts machinesOptions, stdout, stderr io.Writer) error {
	if !slices.Contains(scm.Formats, opts.format) {
		return cli.WithHint(fmt.Errorf("unknown format %q", opts.format),
			"use one of "+strings.Join(scm.Formats, ", "))
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
		return cli.WithHint(fmt.Errorf("unknown evaluator %q", opts.eval), "use --eval=builtin or --eval=guile")
	}
	if err != nil {
		return err
	}
	if _, statErr := os.Stat(opts.file); errors.Is(statErr, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "guix-offload: note: %s does not exist: no static machines\n", opts.file)
	}
	return scm.WriteFormat(stdout, opts.format, ms)
}
