package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/guix-offload/guix-offload/hook"
	"github.com/guix-offload/guix-offload/internal/cli"
)

func newHookCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "hook SYSTEM MAX-SILENT-TIME PRINT-BUILD-TRACE BUILD-TIMEOUT",
		Short: "Run the offload hook, as guix-daemon does",
		Long: `hook is guix-daemon's offload hook. The daemon runs it as
'$GUIX offload SYSTEM MAX-SILENT-TIME PRINT-BUILD-TRACE BUILD-TIMEOUT' (point
GUIX at the shim made by 'guix-offload install-shim'); this command is the
same hook under its own name, for testing by hand.

It reads requests "WILLING SYSTEM DRV FEATURES" on standard input and
answers "# accept", "# decline" or "# postpone"; after accepting it reads
the inputs and outputs lines and builds on the chosen machine, writing the
build log to file descriptor 4. Configuration: /etc/guix-offload/hook.toml,
or the file named by $GUIX_OFFLOAD_CONFIG.`,
		Example: `  echo '1 x86_64-linux /gnu/store/…-hello-2.12.drv' | guix-offload hook x86_64-linux 3600 1 7200`,
		// The daemon's arguments are passed as they are: the hook must answer
		// even when they are wrong, never fail before replying.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && (args[0] == "--help" || args[0] == "-h") {
				return cmd.Help()
			}
			code := runHook(cmd.Context(), args)
			if code != 0 {
				return cli.ExitError{Code: code}
			}
			return nil
		},
	}
}

// runHook runs the hook on this process's standard streams and fd 4.
func runHook(ctx context.Context, args []string) int {
	return hook.Main(ctx, args, os.Stdin, os.Stdout, buildLog(), os.Getenv)
}

// buildLog is file descriptor 4 when the daemon opened it, else nothing.
func buildLog() io.Writer {
	if _, err := unix.FcntlInt(4, unix.F_GETFD, 0); err != nil {
		return io.Discard
	}
	return os.NewFile(4, "build-log")
}

// runShim is main when this program is invoked through a link named guix
// (see install-shim): `guix offload …` runs the hook, anything else execs
// the real guix with the same arguments, environment and descriptors.
func runShim(ctx context.Context, argv []string) int {
	if len(argv) >= 2 && argv[1] == "offload" {
		// Guix's own `guix offload test|status [FILE [REGEXP]]`, typed by
		// someone whose PATH has the shim, map to our commands of the same
		// names and arguments; the daemon's first argument is a system type,
		// never one of these words.
		if len(argv) >= 3 && (argv[2] == "test" || argv[2] == "status") {
			return run(ctx, argv[2:])
		}
		return runHook(ctx, argv[2:])
	}
	realGuix := ""
	// A broken configuration must not break `guix substitute` and friends:
	// only real-guix is read here, and a file that cannot be read is
	// ignored (the hook reports it when asked to offload).
	configPath := hook.ConfigPath(os.Getenv)
	if cfg, err := hook.LoadConfig(configPath, true); err == nil {
		realGuix = cfg.RealGuix
	}
	_, _, target, err := hook.ShimTarget(argv, realGuix, os.Getenv("PATH"), "")
	if err == nil {
		err = notSelf(target)
	}
	if err != nil {
		cli.PrintError(os.Stderr, "guix-offload (as guix)", cli.WithHint(err,
			fmt.Sprintf("set real-guix in %s, or put the real guix on PATH after the shim", configPath)))
		return 1
	}
	args := append([]string{target}, argv[1:]...)
	err = syscall.Exec(target, args, os.Environ())
	cli.PrintError(os.Stderr, "guix-offload (as guix)", fmt.Errorf("exec %s: %w", target, err))
	return 1
}

// notSelf refuses a real guix that is this very program (a loop).
func notSelf(target string) error {
	self, err := os.Executable()
	if err != nil {
		return nil
	}
	a, err1 := os.Stat(self)
	b, err2 := os.Stat(target)
	if err1 == nil && err2 == nil && os.SameFile(a, b) {
		return fmt.Errorf("real guix %s is this shim itself", target)
	}
	return nil
}
