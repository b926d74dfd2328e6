package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/cmd/internal/cmdutil"
	"github.com/guix-offload/guix-offload/hook"
	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/internal/pairing"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/scm"
)

type pairOptions struct {
	config     string
	code       string
	list       bool
	remove     string
	name       string
	signingKey string
	interfaces []string
	timeout    time.Duration
	records    string
	address    string
}

func newPairCommand() *cobra.Command {
	var opts pairOptions
	cmd := &cobra.Command{
		Use:   "pair [NAME]",
		Short: "Pair with a build machine waiting to pair (keys and login, both ways)",
		Long: `pair finds the build machines waiting to pair on the LAN (opened there with
'sudo guix-offload-agent pair'), lists them and pairs with the one named
(or the only one). Both sides print the same "pairing code: DDD DDD" and
ask for confirmation: compare the codes. Only when both sides accept:
the machine's Guix key is authorized in this master's ACL, this master's
Guix key in the machine's, and the machine's login for masters accepts
the SSH key the hook uses (made when root has none).

--list shows what is paired; --remove NAME undoes exactly what pairing
with NAME added here. See docs/pairing.md.`,
		Example: `  sudo guix-offload pair                 # the only machine waiting
  sudo guix-offload pair builder1 --code 123456
  sudo guix-offload pair --list
  sudo guix-offload pair --remove builder1`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return runPair(cmd, opts, name)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.config, "config", "", "the hook's configuration file, for its acl and private-key (default $"+hook.ConfigEnv+" or "+hook.DefaultConfigFile+")")
	f.StringVar(&opts.code, "code", "", "confirm without a prompt when the code is this one (DDDDDD, as the other side shows it)")
	f.BoolVar(&opts.list, "list", false, "list the paired build machines")
	f.StringVar(&opts.remove, "remove", "", "undo the pairing with build machine `NAME`")
	f.StringVar(&opts.name, "name", "", "this master's name, as the machine records it (default: the host name)")
	f.StringVar(&opts.signingKey, "signing-key", "/etc/guix/signing-key.pub", "this master's Guix public key")
	f.StringSliceVar(&opts.interfaces, "interface", nil, "look for machines on these interfaces only (default: all)")
	cmdutil.DurationVar(f, &opts.timeout, "timeout", pairing.DefaultWindow, "give up after this long (seconds, or a duration such as 5m)")
	f.StringVar(&opts.records, "records", pairing.DefaultMasterRecords, "directory of pairing records")
	f.StringVar(&opts.address, "address", "", "connect to the pairing window at `IP:PORT` (printed by the machine) instead of looking for it with multicast DNS")
	_ = f.MarkHidden("records")
	return cmd
}

func runPair(cmd *cobra.Command, opts pairOptions, name string) error {
	out := cmd.OutOrStdout()
	path := opts.config
	if path == "" {
		path = hook.ConfigPath(os.Getenv)
	}
	cfg, err := hook.LoadConfig(path, opts.config == "")
	if err != nil {
		return err
	}
	m := pairing.Master{ACL: cfg.ACL, Records: opts.records, SSHKey: hookKey(cfg)}
	switch {
	case opts.list && (opts.remove != "" || name != ""), opts.remove != "" && name != "":
		return cmdutil.Usage(errors.New("give one of NAME, --list and --remove"))
	case opts.list:
		recs, err := pairing.List(m.Records)
		if err != nil {
			return err
		}
		pairing.WriteRecords(out, recs)
		return nil
	case opts.remove != "":
		if err := m.Remove(opts.remove); err != nil {
			if errors.Is(err, pairing.ErrNotPaired) {
				return cli.WithHint(err, "'guix-offload pair --list' shows what is paired")
			}
			return err
		}
		fmt.Fprintf(out, "removed the pairing with %s\n", opts.remove)
		return nil
	}
	own, err := pki.ReadPublicKey(opts.signingKey)
	if err != nil {
		return cli.WithHint(err, "run 'sudo guix archive --generate-key' first")
	}
	m.OwnKey = own
	self := opts.name
	if self == "" {
		if self, err = pairing.HostName(); err != nil {
			return cli.WithHint(err, "give this master's name with --name")
		}
	}
	p := &pairing.MasterPairing{Master: m, Name: self, Interfaces: opts.interfaces, Address: opts.address, Timeout: opts.timeout,
		Prompt: pairing.Prompt{In: cmd.InOrStdin(), Out: out, Code: opts.code}, Out: out}
	res, err := p.Pair(cmd.Context(), name)
	if err != nil {
		return pairing.Explain(err, "run 'sudo guix-offload-agent pair' on the build machine and try again")
	}
	fmt.Fprintf(out, "paired with %s: its Guix key is authorized in %s; it accepts %s for %s@%s\n",
		res.Peer.Name, m.ACL, filepath.Clean(m.SSHKey), res.Peer.User, res.Peer.Name)
	fmt.Fprintln(out, "check it with: sudo guix-offload test")
	return nil
}

// hookKey is the SSH key the hook logs in with: its private-key, else
// ~/.ssh/id_rsa of the user running this (root), as for the daemon.
func hookKey(cfg *hook.Config) string {
	if cfg.PrivateKey != "" {
		return cfg.PrivateKey
	}
	home := ""
	if u, err := user.Current(); err == nil {
		home = u.HomeDir
	}
	return scm.PrivateKeyFile(home)
}
