package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/internal/nar"
	"github.com/guix-offload/guix-offload/internal/pki"
)

type archiveCheckOptions struct {
	acl string
}

func newArchiveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Inspect 'guix archive --export' streams",
		Long: `archive checks the archives that cross the network during offloading
('guix archive --export' streams) as guix-daemon would before importing
them, to find out why an import is refused.`,
		Example: `  guix archive --export -r hello | guix-offload archive check`,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(newArchiveCheckCommand())
	return cmd
}

func newArchiveCheckCommand() *cobra.Command {
	var opts archiveCheckOptions
	cmd := &cobra.Command{
		Use:   "check [EXPORT-FILE|-]",
		Short: "Check every item of an export stream against the ACL",
		Long: `check reads a stream made by 'guix archive --export' (standard input when
EXPORT-FILE is "-" or missing) and prints, per item, its store path,
references, deriver, signer and verdict: the archive must be well formed
and each item signed, for its exact content, by a key in the ACL — what
guix-daemon requires before it imports anything. Nothing is written.

The exit status is 1 when any item fails, 2 when it cannot check at all.`,
		Example: `  guix archive --export -r hello | guix-offload archive check
  guix-offload archive check --acl /etc/guix/acl hello.nar`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := "-"
			if len(args) == 1 {
				file = args[0]
			}
			return runArchiveCheck(cmd.Context(), opts, file, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.acl, "acl", pki.DefaultACLFile, "the ACL of authorized signing keys")
	return cmd
}

func runArchiveCheck(ctx context.Context, opts archiveCheckOptions, file string, stdin io.Reader, stdout io.Writer) error {
	acl, err := pki.ReadACL(opts.acl)
	if errors.Is(err, fs.ErrNotExist) {
		return cli.ExitError{Code: 2, Err: cli.WithHint(err,
			"pass --acl FILE, or authorize a key with 'guix archive --authorize < KEY.pub'")}
	}
	if err != nil {
		return cli.ExitError{Code: 2, Err: err}
	}
	in := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return cli.ExitError{Code: 2, Err: err}
		}
		defer f.Close()
		in = f
	}
	x := nar.NewExportReader(ctxReader{ctx, in})
	items, failed := 0, 0
	unknownSigner := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		it, err := x.Next("")
		if err == io.EOF {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return cli.ExitError{Code: 1, Err: cli.WithHint(
				fmt.Errorf("after %d items: %w", items, err),
				"the stream is damaged or is not from 'guix archive --export'")}
		}
		items++
		fmt.Fprintln(stdout, it.Path)
		fmt.Fprintf(stdout, "  references: %s\n", orNone(strings.Join(it.References, " ")))
		fmt.Fprintf(stdout, "  deriver: %s\n", orNone(it.Deriver))
		signer, err := it.Verify(acl)
		if signer != nil {
			fmt.Fprintf(stdout, "  signer: %s\n", signer)
		} else {
			fmt.Fprintln(stdout, "  signer: none")
		}
		if err != nil {
			failed++
			unknownSigner = unknownSigner || errors.Is(err, pki.ErrUnknownSigner)
			fmt.Fprintf(stdout, "  verdict: FAIL: %s\n", strings.TrimPrefix(err.Error(), it.Path+": "))
			continue
		}
		fmt.Fprintln(stdout, "  verdict: ok")
	}
	if items == 0 {
		fmt.Fprintln(stdout, "no items")
	}
	if failed > 0 {
		err := fmt.Errorf("%d of %d items failed", failed, items)
		if unknownSigner {
			err = cli.WithHint(err, "if you trust the signer, authorize its key: 'guix archive --authorize < KEY.pub' (or pass --acl)")
		}
		return cli.ExitError{Code: 1, Err: err}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// ctxReader stops reading once ctx is done, so an interrupt ends a check
// in the middle of a large item.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
