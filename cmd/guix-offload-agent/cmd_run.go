package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/guix-offload/guix-offload/agent"
	"github.com/guix-offload/guix-offload/internal/cli"
)

// runOptions are the root command's flags: the configuration file, the
// configuration keys (overriding the file), and the modes.
type runOptions struct {
	configFile string
	once       bool
	dryRun     bool
	verbose    bool
	detectRoot string

	cfg agent.Config // flag values; only the flags set override the file
}

// addRunFlags makes root the agent itself: `guix-offload-agent [flags]`
// advertises this machine until SIGTERM or SIGINT.
func addRunFlags(root *cobra.Command) {
	opts := &runOptions{cfg: agent.DefaultConfig()}
	root.Args = cobra.NoArgs
	root.Example = `  guix-offload-agent                         # advertise with /etc/guix-offload/agent.toml
  guix-offload-agent --once --dry-run        # print the announcement and exit
  guix-offload-agent --speed 2 --features kvm,big-parallel`
	f := root.Flags()
	f.BoolVar(&opts.once, "once", false, "with --dry-run: print the announcement once and exit")
	f.BoolVarP(&opts.dryRun, "dry-run", "n", false, "print the announcement that would be sent instead of sending it; touches no network")
	f.BoolVarP(&opts.verbose, "verbose", "v", false, "also log every refresh of the announcement")
	opts.addConfigFlags(f)

	root.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := opts.config(cmd.Flags())
		if err != nil {
			return err
		}
		level := slog.LevelInfo
		if opts.verbose {
			level = slog.LevelDebug
		}
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
		a := &agent.Agent{Config: cfg, Log: log, Detector: &agent.Detector{Root: opts.detectRoot}}
		switch {
		case opts.dryRun:
			return a.DryRun(cmd.OutOrStdout())
		case opts.once:
			return cli.ExitError{Code: 2, Err: cli.WithHint(errors.New("--once needs --dry-run"),
				"an agent that announced once and left would only confuse masters; use --once --dry-run to check the announcement")}
		}
		return a.Run(cmd.Context())
	}
}

// addConfigFlags adds the configuration file and keys, shared by the
// agent and `pair`.
func (opts *runOptions) addConfigFlags(f *pflag.FlagSet) {
	f.StringVarP(&opts.configFile, "config", "c", "", "configuration file (default "+agent.DefaultConfigFile+", if present)")
	// Tests drive the load and the detection through a fake tree.
	f.StringVar(&opts.detectRoot, "detect-root", "", "read /proc, /dev, /etc and the store under this directory (for tests)")
	_ = f.MarkHidden("detect-root")
	c := &opts.cfg
	f.StringVar(&c.Name, "name", "", "DNS-SD instance name (default: the host name)")
	f.StringSliceVar(&c.Systems, "systems", nil, "system types offered, comma-separated (default: detected)")
	f.IntVar(&c.ParallelBuilds, "parallel-builds", 0, "builds at once (default: guix-daemon's --max-jobs, else 1)")
	f.Float64Var(&c.Speed, "speed", c.Speed, "relative speed factor")
	f.StringSliceVar(&c.Features, "features", nil, "system features offered, comma-separated (default: kvm when /dev/kvm is usable)")
	f.StringVar(&c.User, "user", c.User, "user masters log in as over SSH")
	f.IntVar(&c.Port, "port", 0, "SSH port announced (default: sshd_config's Port, else 22)")
	f.Var(&c.OverloadThreshold, "overload-threshold", "load (÷ cores) above which masters do not offload here, or #f")
	f.StringVar(&c.HostKeyFile, "host-key-file", "", "SSH host public key announced (default: /etc/ssh/ssh_host_ed25519_key.pub, else RSA)")
	f.StringVar(&c.SigningKey, "signing-key", c.SigningKey, "Guix signing key that signs the announcement")
	f.StringSliceVar(&c.Interfaces, "interfaces", nil, "interfaces to advertise on, comma-separated (default: every multicast one but loopback)")
	f.StringVar(&c.Store, "store", c.Store, "store directory whose free space is announced")
	f.Var(&c.RefreshInterval, "refresh-interval", "shortest time between two announcements of a changed load or free space")
}

// config reads the configuration file over the defaults and applies the
// flags that were set.
func (o *runOptions) config(flags *pflag.FlagSet) (agent.Config, error) {
	cfg := agent.DefaultConfig()
	path := o.configFile
	if path == "" {
		path = agent.DefaultConfigFile
	}
	loaded, err := agent.LoadConfig(path)
	switch {
	case err == nil:
		cfg = loaded
	case o.configFile == "" && errors.Is(err, fs.ErrNotExist):
		// No default file: defaults and detection.
	default:
		return cfg, cli.ExitError{Code: 2, Err: err}
	}
	set := func(name string, apply func()) {
		if flags.Changed(name) {
			apply()
		}
	}
	c := &o.cfg
	set("name", func() { cfg.Name = c.Name })
	set("systems", func() { cfg.Systems = c.Systems })
	set("parallel-builds", func() { cfg.ParallelBuilds = c.ParallelBuilds })
	set("speed", func() { cfg.Speed = c.Speed })
	set("features", func() { cfg.Features = c.Features })
	set("user", func() { cfg.User = c.User })
	set("port", func() { cfg.Port = c.Port })
	set("overload-threshold", func() { cfg.OverloadThreshold = c.OverloadThreshold })
	set("host-key-file", func() { cfg.HostKeyFile = c.HostKeyFile })
	set("signing-key", func() { cfg.SigningKey = c.SigningKey })
	set("interfaces", func() { cfg.Interfaces = c.Interfaces })
	set("store", func() { cfg.Store = c.Store })
	set("refresh-interval", func() { cfg.RefreshInterval = c.RefreshInterval })
	if !flags.Changed("signing-key") {
		// Under systemd's LoadCredential= (examples/guix-offload-agent.service).
		cfg = cfg.WithCredentials(os.Getenv)
	}
	if err := cfg.Validate(); err != nil {
		var ce *agent.ConfigError
		if errors.As(err, &ce) {
			// Name the flag when the bad value came from one.
			if flags.Changed(ce.Key) {
				return cfg, cli.ExitError{Code: 2, Err: fmt.Errorf("--%s: %w", ce.Key, ce.Err)}
			}
			ce.File = path
		}
		return cfg, cli.ExitError{Code: 2, Err: err}
	}
	return cfg, nil
}
