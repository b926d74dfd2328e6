package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/hook"
	"github.com/guix-offload/guix-offload/internal/cli"
)

type installShimOptions struct {
	force  bool
	remove bool
	config string // hook.toml, for real-guix; "" means the hook's own choice
}

func newInstallShimCommand() *cobra.Command {
	var opts installShimOptions
	cmd := &cobra.Command{
		Use:   "install-shim DIR",
		Short: "Make DIR/guix, the shim guix-daemon runs as its GUIX",
		Long: `install-shim makes DIR/guix a symbolic link to this program. Set the
environment variable GUIX=DIR/guix for guix-daemon (docs/hook.md): the
daemon then runs 'DIR/guix offload …', which is our offload hook, and every
other subcommand (substitute, authenticate, perform-download, …) is passed
to the real guix unchanged — the one named by real-guix in
/etc/guix-offload/hook.toml (or $GUIX_OFFLOAD_CONFIG, or --config), else
the first other guix on PATH.

It refuses, with status 1, when that real guix cannot be found: through
such a shim the daemon's own substitute and authenticate calls would fail.

With --remove, DIR/guix is removed (only when it is such a link).`,
		Example: `  sudo guix-offload install-shim /var/lib/guix-offload/bin
  sudo guix-offload install-shim --remove /var/lib/guix-offload/bin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInstallShim(opts, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&opts.force, "force", false, "replace an existing DIR/guix")
	cmd.Flags().BoolVar(&opts.remove, "remove", false, "remove the shim instead")
	cmd.Flags().StringVar(&opts.config, "config", "", "the hook's configuration file, for real-guix (default: $GUIX_OFFLOAD_CONFIG, else "+hook.DefaultConfigFile+")")
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
	guix, err := shimRealGuix(opts.config, self)
	if err != nil {
		return err
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
	fmt.Fprintf(out, "installed %s -> %s\n%snow set GUIX=%s in guix-daemon's environment and restart it (docs/hook.md)\n", link, self, guix.note, link)
	return nil
}

// shimGuix is the real guix a new shim will pass subcommands to, with a
// note for the user when how it was found may not hold for guix-daemon.
type shimGuix struct {
	path, note string
}

// shimRealGuix finds the real guix the shim will exec, as the shim will
// (real-guix in the hook's configuration, else PATH), and refuses when
// there is none: a shim without it breaks every daemon call of guix.
func shimRealGuix(config, self string) (shimGuix, error) {
	missingOK := config == ""
	if config == "" {
		config = hook.ConfigPath(os.Getenv)
	}
	cfg, err := hook.LoadConfig(config, missingOK)
	if err != nil {
		return shimGuix{}, cli.WithHint(err, "fix the configuration first: the hook would decline every build with it")
	}
	guix, err := hook.LocalGuix(cfg.RealGuix, config, os.Getenv("PATH"), self)
	if err != nil {
		return shimGuix{}, cli.WithHint(fmt.Errorf("refusing to install a shim that cannot find the real guix: %w", err),
			fmt.Sprintf("set real-guix in %s to the daemon's guix through a link that survives upgrades: "+
				"real-guix = %q (on Guix System %q); "+
				"without it guix-daemon's own 'guix substitute' and 'guix authenticate' would fail through the shim",
				config, "/var/guix/profiles/per-user/root/current-guix/bin/guix", "/run/current-system/profile/bin/guix"))
	}
	g := shimGuix{path: guix}
	switch {
	case cfg.RealGuix == "":
		g.note = fmt.Sprintf("note: the shim will run %s, found on this PATH; guix-daemon's PATH may differ: set real-guix = %q in %s to be sure\n", guix, guix, config)
	case strings.HasPrefix(guix, cfg.Store+"/"):
		g.note = fmt.Sprintf("note: real-guix %s is in the store and will go stale at the next upgrade: prefer a profile link such as /run/current-system/profile/bin/guix\n", guix)
	}
	return g, nil
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
