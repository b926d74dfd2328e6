// This is the `test` subcommand; a file named cmd_test.go would be a Go test file.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/cmd/internal/cmdutil"
	"github.com/guix-offload/guix-offload/hook"
	"github.com/guix-offload/guix-offload/internal/candidates"
	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/transport"
)

// checkOptions are shared by `test` and `status`.
type checkOptions struct {
	config     string
	timeout    time.Duration
	discovered bool
}

func (o *checkOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "the hook's configuration file (default $"+hook.ConfigEnv+" or "+hook.DefaultConfigFile+")")
	cmdutil.DurationVar(f, &o.timeout, "timeout", time.Minute, "give up on a machine after this long")
	f.BoolVar(&o.discovered, "discovered", true, "also check the discovered machines the hook would use (from the discovery snapshot)")
}

func newTestCommand() *cobra.Command {
	var opts checkOptions
	cmd := &cobra.Command{
		Use:   "test [FILE [REGEXP]]",
		Short: "Check that the build machines can really be offloaded to",
		Long: `test checks each build machine the hook would use, all in parallel, the way
'guix offload test' does: the SSH connection and pinned host key, that guix
is installed and its daemon answers, an import and an export round trip
(each side must accept the other's signature), then its load, free store
space and clock. It ends with a verdict per machine and exits 1 when one is
unusable.

FILE is a machines.scm (default: the hook's machines-file); REGEXP keeps
the machines whose name it matches. Discovered machines come from the
discovery snapshot, judged by the hook's trust policy (--no-discovered
leaves them out).`,
		Example: `  sudo guix-offload test                        # every machine the hook would use
  sudo guix-offload test /etc/guix/machines.scm 'builder[12]'
  sudo guix-offload test --no-discovered --timeout 30`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd.Context(), opts, args, true, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	opts.addFlags(cmd)
	return cmd
}

func runCheck(ctx context.Context, opts checkOptions, args []string, roundTrip bool, stdout, stderr io.Writer) error {
	probes, err := buildProbes(ctx, opts, args, roundTrip, stderr)
	if err != nil {
		return err
	}
	if len(probes) == 0 {
		return cli.WithHint(errors.New("no build machines to check"),
			"list machines in /etc/guix/machines.scm or run guix-offload-agent on them")
	}
	reports := transport.CheckAll(ctx, probes)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !roundTrip {
		return transport.WriteStatus(stdout, reports)
	}
	if err := transport.WriteReports(stdout, reports); err != nil {
		return err
	}
	bad := 0
	for _, r := range reports {
		if !r.Usable {
			bad++
		}
	}
	if bad > 0 {
		return cli.ExitError{Code: 1, Err: fmt.Errorf("%d of %d machines unusable", bad, len(reports))}
	}
	return nil
}

// buildProbes lists the machines the hook would consider
// ([candidates.Considered]), with FILE instead of its machines-file when
// given and discovered machines from the discovery snapshot only (test and
// status never browse), filtered by REGEXP. Notes (a stale snapshot, a
// machine the trust policy leaves out) go to stderr.
func buildProbes(ctx context.Context, opts checkOptions, args []string, roundTrip bool, stderr io.Writer) ([]transport.Probe, error) {
	path := opts.config
	if path == "" {
		path = hook.ConfigPath(os.Getenv)
	}
	cfg, err := hook.LoadConfig(path, opts.config == "")
	if err != nil {
		return nil, err
	}
	co := cfg.Candidates(os.Getenv)
	if len(args) > 0 {
		co.MachinesFile = args[0]
	}
	co.Discovery = opts.discovered && cfg.Discovery
	co.BrowseTimeout = 0
	var filter *regexp.Regexp
	if len(args) > 1 {
		if filter, err = regexp.Compile(args[1]); err != nil {
			return nil, cmdutil.Usage(fmt.Errorf("bad REGEXP %q: %w", args[1], err))
		}
	}
	machines, notes, err := candidates.Considered(ctx, co, time.Now())
	if err != nil {
		return nil, err
	}
	for _, n := range notes {
		fmt.Fprintf(stderr, "guix-offload: %s\n", n)
	}
	var acl *pki.ACL
	if roundTrip {
		if acl, err = pki.ReadACL(cfg.ACL); err != nil {
			return nil, cli.WithHint(err, "the ACL must authorize the build machines' signing keys ('guix archive --authorize')")
		}
	}
	guix := cfg.RealGuix
	if guix == "" {
		guix, _ = hook.RealGuix(os.Getenv("PATH"), "")
	}
	var probes []transport.Probe
	for _, m := range machines {
		if filter != nil && !filter.MatchString(m.Name) {
			continue
		}
		probes = append(probes, transport.Probe{
			Name: m.Label(), Origin: m.Origin(),
			Target: sshconn.Target{Host: m.Name, Port: m.Port, User: m.User,
				PrivateKeyFile: m.PrivateKey, HostKey: m.HostKey},
			OverloadThreshold: m.OverloadThreshold,
			RoundTrip:         roundTrip,
			Guix:              guix, Store: cfg.Store, ACL: acl,
			Timeout:      opts.timeout,
			DaemonSocket: m.DaemonSocket,
			SigningKey:   hook.SigningKeyBeside(cfg.ACL),
		})
	}
	return probes, nil
}
