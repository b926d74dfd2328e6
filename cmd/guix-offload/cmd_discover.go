package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/guix-offload/guix-offload/cmd/internal/cmdutil"
	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/hook"
	"github.com/guix-offload/guix-offload/internal/cli"
	"github.com/guix-offload/guix-offload/internal/pairing"
)

type discoverOptions struct {
	timeout    time.Duration
	quiet      time.Duration
	format     string
	watch      bool
	trust      string
	acl        string
	pins       string
	interfaces []string
	domains    []string
	resolvConf string
	mdns       bool
	snapshot   string
	privateKey string
	knownGood  string
	verbose    bool
}

func newDiscoverCommand() *cobra.Command {
	var opts discoverOptions
	cmd := &cobra.Command{
		Use:   "discover",
		Short: "List the build machines announced on the LAN",
		Long: `discover lists the build machines that guix-offload-agent announces on
the LAN (DNS-SD service _guix-offload._tcp over multicast DNS) and in
the wide-area DNS-SD domains of --domain (unicast DNS; without it, the
browse domains the network offers under the resolver's search domains),
each judged by the trust policy: by default a machine is accepted only when its
announcement is signed by a key in /etc/guix/acl.

By default it browses until answers stop arriving (bounded by --timeout)
and prints what it found; the table then also lists the build machines
waiting to pair ('guix-offload-agent pair', _guix-offload-pair._tcp). --format=scm prints a machines.scm list of the
accepted machines, for a /etc/guix/machines.scm that keeps Guix's own
offload hook (see examples/machines-bridge.scm).

With --watch it keeps browsing and prints one line per event (add, update,
remove, ignore); with --cache FILE it also keeps FILE, a snapshot the
offload hook reads, current. Without --watch, --cache FILE reads that
snapshot instead of browsing, unless it is missing or stale.`,
		Example: `  guix-offload discover                            # a table of what the LAN offers
  guix-offload discover --format scm               # machines.scm entries of the trusted ones
  guix-offload discover --watch --cache /var/cache/guix-offload/machines.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if fl := cmd.Flags(); !fl.Changed("domain") || !fl.Changed("resolv-conf") || !fl.Changed("mdns") {
				// The watcher service feeds the hook: by default it
				// browses where the hook is configured to (hook.toml's
				// domains, mdns and resolv-conf).
				path := hook.ConfigPath(os.Getenv)
				cfg, err := hook.LoadConfig(path, true)
				switch {
				case err != nil:
					fmt.Fprintf(cmd.ErrOrStderr(), "guix-offload: warning: %v; browsing without its domains\n", err)
				default:
					if !cmd.Flags().Changed("domain") {
						opts.domains = cfg.Domains
					}
					if !cmd.Flags().Changed("resolv-conf") {
						opts.resolvConf = cfg.ResolvConf
					}
					if !cmd.Flags().Changed("mdns") {
						opts.mdns = cfg.MDNS
					}
				}
			}
			return runDiscover(cmd.Context(), opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	cmdutil.DurationVar(f, &opts.timeout, "timeout", 5*time.Second, "browse at most this long (without --watch)")
	cmdutil.DurationVar(f, &opts.quiet, "quiet", 1500*time.Millisecond, "stop once no answer arrived for this long (without --watch; a listing of DNS domains alone, --mdns=false, ends once read)")
	f.StringVar(&opts.format, "format", "table", "output format: "+strings.Join(discovery.Formats, ", "))
	f.BoolVar(&opts.watch, "watch", false, "keep browsing and print one line per event")
	f.StringVar(&opts.trust, "trust", "acl", "trust policy: acl, tofu or any")
	f.StringVar(&opts.acl, "acl", "/etc/guix/acl", "the ACL whose keys may sign announcements (--trust acl)")
	f.StringVar(&opts.pins, "pins", "/var/lib/guix-offload/tofu-pins.json", "where --trust tofu pins host keys")
	f.StringSliceVar(&opts.interfaces, "interface", nil, "browse on this interface (repeatable; default: all multicast-capable)")
	f.StringSliceVar(&opts.domains, "domain", nil, "also browse this wide-area DNS-SD domain (repeatable; default: hook.toml's domains, else the browse domains the network offers)")
	f.BoolVar(&opts.mdns, "mdns", true, "browse the LAN with multicast DNS (--mdns=false: wide-area DNS-SD only)")
	f.StringVar(&opts.resolvConf, "resolv-conf", discovery.DefaultResolvConf, "resolver configuration for wide-area DNS-SD")
	f.StringVar(&opts.snapshot, "cache", "", "with --watch: keep this snapshot file current; without: read it")
	f.StringVar(&opts.knownGood, "signature-cache", "", "with --trust acl: keep the signatures found good here, and check only new ones (default: $XDG_CACHE_HOME/guix-offload/good-signatures, else ~/.cache/guix-offload/good-signatures; none: check every one)")
	f.BoolVarP(&opts.verbose, "verbose", "v", false, "print warnings about ignored announcements as they come")
	f.StringVar(&opts.privateKey, "private-key", "", "the SSH private key each machine's entry names (default: Guix's, ~/.ssh/id_rsa of whoever evaluates machines.scm)")
	cmdutil.Choices(cmd, "format", discovery.Formats...)
	cmdutil.Choices(cmd, "trust", "acl", "tofu", "any")
	return cmd
}

func runDiscover(ctx context.Context, opts discoverOptions, stdout, stderr io.Writer) error {
	if !slices.Contains(discovery.Formats, opts.format) {
		return cmdutil.Usage(cli.WithHint(
			fmt.Errorf("unknown format %q", opts.format),
			"use one of "+strings.Join(discovery.Formats, ", ")))
	}
	if opts.watch && opts.format != "table" && opts.format != "json" {
		return cmdutil.Usage(cli.WithHint(
			fmt.Errorf("--watch cannot print format %q", opts.format),
			"use --format table or --format json with --watch"))
	}
	if opts.privateKey != "" && !filepath.IsAbs(opts.privateKey) {
		return cmdutil.Usage(cli.WithHint(fmt.Errorf("--private-key %s is not an absolute file name", opts.privateKey),
			"Guix's offload hook reads it from guix-daemon's working directory, /: give the full file name"))
	}
	// The heap: see discovery.ListGCPercent and WatchMemoryLimit.
	switch {
	case opts.watch:
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(discovery.WatchMemoryLimit)
		}
	default:
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(discovery.ListGCPercent)
		}
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(discovery.ListMemoryLimit)
		}
	}
	level := slog.LevelError
	if opts.verbose || opts.watch {
		level = slog.LevelWarn
	}
	logger := slog.New(&warnHandler{w: stderr, level: level})

	if !opts.watch && opts.snapshot != "" {
		s, err := discovery.ReadSnapshot(opts.snapshot)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// No watcher service: browse, quietly (the bridge passes
			// --cache on every request).
		case err != nil:
			fmt.Fprintf(stderr, "guix-offload: warning: %v; browsing instead\n", err)
		case s.Stale(time.Now()):
			fmt.Fprintf(stderr, "guix-offload: warning: snapshot %s is stale (updated %s); is 'guix-offload discover --watch --cache' running? browsing instead\n",
				opts.snapshot, s.Updated.Local().Format(time.DateTime))
		default:
			return discovery.Write(stdout, opts.format, withPrivateKey(s.Machines, opts.privateKey))
		}
	}

	// Under trust acl the ACL is parsed while the network is read: a
	// listing it cannot be parsed for ends with that error, once
	// browsed (a file that cannot be read, at once).
	aclErr := func(err error) error {
		return cli.WithHint(err, "authorize build machines' keys with 'guix archive --authorize', or pass --acl FILE")
	}
	var policy discovery.Policy
	aclRead := func() error { return nil }
	if opts.trust == "acl" || opts.trust == "" {
		p, err := discovery.ReadACLPolicy(opts.acl)
		if err != nil {
			return aclErr(err)
		}
		policy, aclRead = p, p.Wait
		if opts.watch {
			if err := p.Wait(); err != nil {
				return aclErr(err)
			}
		}
	} else {
		p, err := discovery.ParsePolicy(opts.trust, opts.acl, opts.pins)
		if err != nil {
			return cmdutil.Usage(cli.WithHint(err, "use --trust acl (the default), tofu or any"))
		}
		policy = p
	}
	kg := openKnownGood(opts, policy, stderr)
	bopts := discovery.BrowseOptions{
		Interfaces:  opts.interfaces,
		Domains:     opts.domains,
		ResolvConf:  opts.resolvConf,
		NoMulticast: !opts.mdns,
		Trust:       policy,
		Logger:      logger,
	}
	if opts.watch {
		if opts.format == "table" {
			if err := discovery.WriteEventHeader(stdout); err != nil {
				return err
			}
		}
		err := discovery.Watch(ctx, bopts, opts.snapshot, func(ev discovery.Event) error {
			return discovery.WriteEvent(stdout, opts.format, ev)
		})
		saveKnownGood(kg, opts, stderr)
		if err == nil || errors.Is(err, context.Canceled) {
			return nil
		}
		if errors.Is(err, discovery.ErrUnknownInterface) {
			return cli.WithHint(err, "list the interfaces with 'ip link'")
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	// The table also lists build machines waiting to pair, browsed at
	// the same time.
	var windows <-chan []pairing.Window
	if opts.format == "table" && opts.mdns {
		ch := make(chan []pairing.Window, 1)
		windows = ch
		go func() {
			ws, _ := pairing.FindWindows(ctx, opts.interfaces, opts.quiet)
			ch <- ws
		}()
	}
	as, err := discovery.Lookup(ctx, bopts, opts.quiet)
	if err := aclRead(); err != nil {
		return aclErr(err)
	}
	if errors.Is(err, discovery.ErrUnknownInterface) {
		return cli.WithHint(err, "list the interfaces with 'ip link'")
	}
	if err != nil {
		return err
	}
	for _, a := range as {
		if a.Ignored != "" && !opts.verbose && opts.format == "scm" {
			fmt.Fprintf(stderr, "guix-offload: warning: ignoring %q: %s\n", a.Instance, a.Ignored)
		}
	}
	if err := discovery.Write(stdout, opts.format, withPrivateKey(as, opts.privateKey)); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	saveKnownGood(kg, opts, stderr)
	if windows != nil {
		if ws := <-windows; len(ws) > 0 {
			fmt.Fprintln(stdout)
			pairing.WriteWindows(stdout, ws)
			fmt.Fprintln(stdout, "(pair with one: sudo guix-offload pair NAME)")
		}
	}
	return nil
}

// openKnownGood gives an ACL policy the signatures found good in earlier
// runs (--signature-cache): nil when there is none to keep. A file that
// is damaged is started again; one that others could have written is not
// used, with a warning.
func openKnownGood(opts discoverOptions, policy discovery.Policy, stderr io.Writer) *discovery.KnownGood {
	acl, ok := policy.(*discovery.ACLPolicy)
	file := opts.knownGood
	if file == "" {
		file = discovery.DefaultKnownGoodFile(os.Getenv)
	}
	if !ok || file == "" || file == "none" {
		return nil
	}
	kg, err := discovery.OpenKnownGood(file)
	switch {
	case errors.Is(err, discovery.ErrKnownGoodUnsafe):
		fmt.Fprintf(stderr, "guix-offload: warning: not using --signature-cache: %v\n", err)
		return nil
	case err != nil:
		if opts.verbose {
			fmt.Fprintf(stderr, "guix-offload: warning: %v; starting it again\n", err)
		}
		kg = discovery.NewKnownGood(file)
	}
	acl.KnownGood = kg
	return kg
}

// saveKnownGood saves kg when not nil; it is a cache, so failing to is a
// warning under --verbose only.
func saveKnownGood(kg *discovery.KnownGood, opts discoverOptions, stderr io.Writer) {
	if kg == nil {
		return
	}
	if err := kg.Save(); err != nil && opts.verbose {
		fmt.Fprintf(stderr, "guix-offload: warning: %v\n", err)
	}
}

// withPrivateKey sets the private key of each announcement's machine, for
// a machines.scm whose evaluator (root, for guix-daemon) logs in with
// another key than Guix's default (the bridge's %private-key).
func withPrivateKey(as []*discovery.Announcement, key string) []*discovery.Announcement {
	if key != "" {
		for _, a := range as {
			a.PrivateKey = key
		}
	}
	return as
}

// warnHandler prints log records as "guix-offload: warning: MSG", with
// their attributes as key=value, for people reading stderr.
type warnHandler struct {
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
}

func (h *warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *warnHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("guix-offload: " + strings.ToLower(r.Level.String()) + ": " + r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	b.WriteString("\n")
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *warnHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &warnHandler{w: h.w, level: h.level, attrs: append(slices.Clip(h.attrs), attrs...)}
}

func (h *warnHandler) WithGroup(string) slog.Handler { return h }
