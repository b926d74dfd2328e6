package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/internal/cli"
)

type installShimOptions struct {
	force  bool
	remove bool
}

func newInstallShimCommand() *cobra.Command {
	var opts installShimOptions
	cmd := &cobra.Command{
		Use:   "install-shim DIR",
		Short: "Make DIR/guix, the shim guix-daemon runs as its GUIX",
		Long: `install-shim makes DIR/guix a symbolic link to this program. Set the
environment variable GUIX=DIR/guix for guix-daemon (see the README): the
daemon then runs 'DIR/guix offload …', which is our offload hook, and every
other subcommand (substitute, authenticate, perform-download, …) is passed
to the real guix unchanged — the one named by real-guix in
/etc/guix-offload/hook.toml, else the first other guix on PATH.

With --remove, DIR/guix is removed (only when it is such a link).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInstallShim(opts, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&opts.force, "force", false, "replace an existing DIR/guix")
	cmd.Flags().BoolVar(&opts.remove, "remove", false, "remove the shim instead")
	return cmd
}

func runInstallShim(opts installShimOptions, dir string, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program: %w", err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return fmt.Errorf("find this program: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	link := filepath.Join(dir, "guix")
	target, lerr := os.Readlink(link)
	ours := lerr == nil && sameFile(target, self)
	if opts.remove {
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(out, "%s does not exist; nothing to remove\n", link)
			return nil
		}
		if !ours {
			return cli.WithHint(fmt.Errorf("%s is not a link to %s; leaving it", link, self), "remove it by hand if it is an old shim")
		}
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("remove shim: %w", err)
		}
		fmt.Fprintf(out, "removed %s; remove GUIX=%s from guix-daemon's environment and restart it\n", link, link)
		return nil
	}
	if _, err := os.Lstat(link); err == nil {
		switch {
		case ours:
			fmt.Fprintf(out, "%s already links to %s\n", link, self)
			return nil
		case !opts.force:
			return cli.WithHint(fmt.Errorf("%s exists", link), "use --force to replace it, or choose another directory")
		}
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("replace %s: %w", link, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Symlink(self, link); err != nil {
		return fmt.Errorf("install shim: %w", err)
	}
	fmt.Fprintf(out, "installed %s -> %s\nnow set GUIX=%s in guix-daemon's environment and restart it (see the README)\n", link, self, link)
	return nil
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
