package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/agent"
	"github.com/guix-offload/guix-offload/cmd/internal/cmdutil"
	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/internal/pairing"
)

type pairOptions struct {
	run    runOptions
	window time.Duration
	code   string
	list   bool
	remove string
	paths  agent.PairOptions
}

func newPairCommand() *cobra.Command {
	opts := &pairOptions{run: runOptions{cfg: agent.DefaultConfig()}}
	cmd := &cobra.Command{
		Use:   "pair",
		Short: "Open a pairing window for a master (keys and login, both ways)",
		Long: `pair opens a pairing window on this build machine (5 minutes by default) and
announces it on the LAN, where 'sudo guix-offload pair' on a master finds
it. Both sides print the same "pairing code: DDD DDD" and ask for
confirmation: compare the codes. Only when both sides accept: the master's
Guix key is authorized in /etc/guix/acl, the login for masters (the
agent's user, created when missing, with guix on its PATH) accepts the
master's SSH key, restricted to what offloading needs, and the master
authorizes this machine's Guix key. One attempt per window: a refused or
failed attempt closes it.

--list shows the paired masters; --remove MASTER undoes exactly what
pairing with MASTER added here. See docs/pairing.md.`,
		Example: `  sudo guix-offload-agent pair
  sudo guix-offload-agent pair --timeout 10m --code 123456
  sudo guix-offload-agent pair --list
  sudo guix-offload-agent pair --remove master1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runPair(cmd, opts) },
	}
	f := cmd.Flags()
	opts.run.addConfigFlags(f)
	// What the machine offers plays no part in pairing.
	for _, name := range []string{"systems", "parallel-builds", "speed", "features", "overload-threshold", "store", "refresh-interval"} {
		_ = f.MarkHidden(name)
	}
	cmdutil.DurationVar(f, &opts.window, "timeout", pairing.DefaultWindow, "how long the pairing window stays open (seconds, or a duration such as 5m)")
	f.StringVar(&opts.code, "code", "", "confirm without a prompt when the code is this one (DDDDDD, as the master shows it)")
	f.BoolVar(&opts.list, "list", false, "list the paired masters")
	f.StringVar(&opts.remove, "remove", "", "undo the pairing with master `MASTER`")
	f.StringVar(&opts.paths.ACL, "acl", "", "the Guix ACL (default /etc/guix/acl)")
	f.StringVar(&opts.paths.Guix, "guix", "", "the guix program masters need on the login's PATH (default: found)")
	f.StringVar(&opts.paths.Records, "records", "", "directory of pairing records")
	f.StringVar(&opts.paths.Listen, "listen", "", "TCP address to serve the pairing protocol on (default: any port)")
	_ = f.MarkHidden("records")
	_ = f.MarkHidden("listen")
	return cmd
}

func runPair(cmd *cobra.Command, opts *pairOptions) error {
	out := cmd.OutOrStdout()
	if opts.list && opts.remove != "" {
		return cmdutil.Usage(errors.New("give --list or --remove, not both"))
	}
	cfg, err := opts.run.config(cmd.Flags())
	if err != nil {
		return err
	}
	po := opts.paths
	switch {
	case opts.list:
		recs, err := pairing.List(po.Machine(cfg.User, nil).Records)
		if err != nil {
			return err
		}
		pairing.WriteRecords(out, recs)
		return nil
	case opts.remove != "":
		if err := po.Machine(cfg.User, nil).Remove(cmd.Context(), opts.remove); err != nil {
			if errors.Is(err, pairing.ErrNotPaired) {
				return cli.WithHint(err, "'guix-offload-agent pair --list' shows what is paired")
			}
			return err
		}
		fmt.Fprintf(out, "removed the pairing with %s\n", opts.remove)
		return nil
	}
	po.Window = opts.window
	po.Prompt = pairing.Prompt{In: cmd.InOrStdin(), Out: out, Code: opts.code}
	po.Out = out
	a := &agent.Agent{Config: cfg, Detector: &agent.Detector{Root: opts.run.detectRoot}}
	res, err := a.Pair(cmd.Context(), po)
	if err != nil {
		return pairing.Explain(err, "run 'sudo guix-offload-agent pair' again to open a new window")
	}
	fmt.Fprintf(out, "paired with master %s: its Guix key is authorized in %s and its SSH key in ~%s/.ssh/authorized_keys\n",
		res.Peer.Name, a.PairACL(po), cfg.User)
	return nil
}
