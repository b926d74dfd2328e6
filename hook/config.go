package hook

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/internal/boundedread"
	"github.com/guix-offload/guix-offload/internal/candidates"
	"github.com/guix-offload/guix-offload/internal/tomlconf"
	"github.com/guix-offload/guix-offload/scm"
)

// DefaultConfigFile is where the hook reads its configuration unless the
// environment variable [ConfigEnv] names another file. The daemon passes
// no flags, so these two are the only ways to configure the hook.
const (
	DefaultConfigFile = "/etc/guix-offload/hook.toml"
	ConfigEnv         = "GUIX_OFFLOAD_CONFIG"
)

// Config is the hook's configuration (examples/hook.toml documents each
// key). Start from [DefaultConfig]; [LoadConfig] decodes a file over it.
type Config struct {
	// MachinesFile is Guix's static machines.scm; a missing file means no
	// static machines.
	MachinesFile string `toml:"machines-file"`
	// Evaluator evaluates MachinesFile: "builtin" (our evaluator of the
	// part of Guile machines.scm files use), "guile" (the real Guile), or
	// "auto" (builtin, and Guile for a file builtin cannot evaluate).
	// Results are remembered while the file is unchanged.
	Evaluator string `toml:"evaluator"`
	// Guile is the Guile program for the "guile" and "auto" evaluators.
	Guile string `toml:"guile"`
	// StateDirectory holds the slot locks (Guix's own layout,
	// HOST:PORT/N) and what we remember about machines that were down.
	StateDirectory string `toml:"state-directory"`
	// ACL authorizes the keys that may sign announcements (trust "acl")
	// and the outputs we retrieve.
	ACL string `toml:"acl"`
	// Trust is the policy for discovered machines: acl, tofu or any.
	Trust string `toml:"trust"`
	// Pins is where trust "tofu" pins host keys.
	Pins string `toml:"pins"`
	// Snapshot is the discovery snapshot file kept by `guix-offload
	// discover --watch --cache` (the key keeps the flag's name).
	Snapshot string `toml:"cache"`
	// Discovery turns discovered machines on; when off only MachinesFile
	// counts.
	Discovery bool `toml:"discovery"`
	// Domains are wide-area DNS-SD domains browsed beside the LAN
	// (docs/wide-area.md); empty means the browse domains the network
	// offers.
	Domains []string `toml:"domains"`
	// MDNS browses the LAN with multicast DNS; false leaves only
	// wide-area DNS-SD.
	MDNS bool `toml:"mdns"`
	// ResolvConf is the resolver configuration for wide-area DNS-SD.
	ResolvConf string `toml:"resolv-conf"`
	// BrowseTimeout bounds the live browse done when the snapshot is missing
	// or stale (0 disables it).
	BrowseTimeout Duration `toml:"browse-timeout"`
	// PrivateKey and User are used for discovered machines: the key always,
	// the user when the announcement names none.
	PrivateKey string `toml:"private-key"`
	User       string `toml:"user"`
	// RealGuix is the real guix program the shim passes other subcommands
	// to, and that the transport runs for `guix archive`; empty means the
	// first guix on PATH that is not this program.
	RealGuix string `toml:"real-guix"`
	// Store is the store directory.
	Store string `toml:"store"`
	// ConnectTimeout bounds the SSH connect and handshake before accepting.
	ConnectTimeout Duration `toml:"connect-timeout"`
	// DownTime is how long a machine that could not be reached is skipped
	// by every hook process.
	DownTime Duration `toml:"down-time"`
	// MaxPostpone bounds how long a derivation is postponed while every
	// matching machine is down and the daemon cannot build it itself;
	// then the hook declines, so the user gets an error instead of a hang.
	MaxPostpone Duration `toml:"max-postpone"`
	// Compress lets the transport compress archives when the machine has
	// guix-offload-agent.
	Compress bool `toml:"compress"`
}

// Duration is a time.Duration written as a string ("30s", "5m") in TOML.
type Duration = tomlconf.Duration

// Candidates returns the options for loading the machines the hook
// considers; env reads the environment (HOME).
func (c *Config) Candidates(env func(string) string) *candidates.Options {
	return &candidates.Options{
		MachinesFile: c.MachinesFile, Evaluator: c.Evaluator, Guile: c.Guile,
		Discovery: c.Discovery, Snapshot: c.Snapshot, BrowseTimeout: c.BrowseTimeout.D(),
		Domains: c.Domains, MDNS: c.MDNS, ResolvConf: c.ResolvConf,
		Trust: c.Trust, ACL: c.ACL, Pins: c.Pins,
		User: c.User, PrivateKey: c.PrivateKey,
		StateDirectory: c.StateDirectory, Env: env,
	}
}

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() *Config {
	return &Config{
		MachinesFile:   "/etc/guix/machines.scm",
		Evaluator:      "auto",
		Guile:          "guile",
		StateDirectory: "/var/guix/offload",
		ACL:            "/etc/guix/acl",
		Trust:          "acl",
		Pins:           "/var/lib/guix-offload/tofu-pins.json",
		Snapshot:       "/var/cache/guix-offload/machines.json",
		Discovery:      true,
		MDNS:           true,
		ResolvConf:     "/etc/resolv.conf",
		BrowseTimeout:  Duration(2 * time.Second),
		PrivateKey:     "",
		User:           "",
		RealGuix:       "",
		Store:          scm.DefaultStore,
		ConnectTimeout: Duration(10 * time.Second),
		DownTime:       Duration(5 * time.Minute),
		MaxPostpone:    Duration(30 * time.Minute),
		Compress:       true,
	}
}

// ConfigError is a problem with one key of the configuration, naming the
// file and line when it came from a file.
type ConfigError = tomlconf.Error

// ConfigPath returns the configuration file to read given the
// environment: $GUIX_OFFLOAD_CONFIG, else [DefaultConfigFile].
func ConfigPath(env func(string) string) string {
	if env != nil {
		if p := env(ConfigEnv); p != "" {
			return p
		}
	}
	return DefaultConfigFile
}

// LoadConfig reads the TOML file at path over [DefaultConfig], rejects
// keys it does not know, and validates the result; a problem is a
// [*ConfigError] naming path, the line and the key. A missing file is not
// an error when missingOK (the default location need not exist); the
// defaults are returned then.
func LoadConfig(path string, missingOK bool) (*Config, error) {
	c := DefaultConfig()
	data, err := boundedread.ReadFile(path, boundedread.Config)
	if err != nil {
		if missingOK && errors.Is(err, os.ErrNotExist) {
			return c, c.Validate()
		}
		return nil, &ConfigError{File: path, Err: fmt.Errorf("read configuration: %w", err)}
	}
	text := string(data)
	if err := configKeys.Decode(path, text, c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = path
			ce.Line = tomlconf.KeyLine(text, ce.Key)
		}
		return nil, err
	}
	return c, nil
}

// configKeys are the keys of the hook's configuration file.
var configKeys = tomlconf.Keys{
	"machines-file": tomlconf.String, "evaluator": tomlconf.String, "guile": tomlconf.String,
	"state-directory": tomlconf.String, "acl": tomlconf.String, "trust": tomlconf.String, "pins": tomlconf.String,
	"cache": tomlconf.String, "discovery": tomlconf.Bool, "browse-timeout": tomlconf.DurationString,
	"private-key": tomlconf.String, "user": tomlconf.String, "real-guix": tomlconf.String, "store": tomlconf.String,
	"connect-timeout": tomlconf.DurationString, "down-time": tomlconf.DurationString,
	"max-postpone": tomlconf.DurationString, "compress": tomlconf.Bool,
	"domains": tomlconf.Strings, "mdns": tomlconf.Bool, "resolv-conf": tomlconf.String,
}

// Validate checks every field and returns a *ConfigError naming the
// first bad one.
func (c *Config) Validate() error {
	abs := func(key, p string, optional bool) error {
		if p == "" && optional {
			return nil
		}
		if !filepath.IsAbs(p) {
			return &ConfigError{Key: key, Err: fmt.Errorf("%q is not an absolute file name", p)}
		}
		return nil
	}
	for _, f := range []struct {
		key      string
		val      string
		optional bool
	}{
		{"machines-file", c.MachinesFile, true},
		{"state-directory", c.StateDirectory, false},
		{"acl", c.ACL, false},
		{"pins", c.Pins, true},
		{"cache", c.Snapshot, true},
		{"private-key", c.PrivateKey, true},
		{"real-guix", c.RealGuix, true},
		{"resolv-conf", c.ResolvConf, false},
		{"store", c.Store, false},
	} {
		if err := abs(f.key, f.val, f.optional); err != nil {
			return err
		}
	}
	switch c.Evaluator {
	case "auto", "builtin", "guile":
	default:
		return &ConfigError{Key: "evaluator", Err: fmt.Errorf("unknown evaluator %q (want auto, builtin or guile)", c.Evaluator)}
	}
	if c.Guile == "" && c.Evaluator != "builtin" {
		return &ConfigError{Key: "guile", Err: errors.New("no Guile program named")}
	}
	switch c.Trust {
	case "acl", "tofu", "any":
	default:
		return &ConfigError{Key: "trust", Err: fmt.Errorf("unknown policy %q (want acl, tofu or any)", c.Trust)}
	}
	if c.Trust == "tofu" && c.Pins == "" {
		return &ConfigError{Key: "pins", Err: errors.New("trust \"tofu\" needs a pins file")}
	}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, " \t\n\\\"/") || strings.Contains(strings.Trim(d, "."), "..") || strings.Trim(d, ".") == "" {
			return &ConfigError{Key: "domains", Err: fmt.Errorf("%q is not a DNS domain name", d)}
		}
	}
	if strings.ContainsAny(c.User, " \t\n@") {
		return &ConfigError{Key: "user", Err: fmt.Errorf("%q is not a user name", c.User)}
	}
	for _, d := range []struct {
		key string
		val Duration
		min time.Duration
	}{
		{"browse-timeout", c.BrowseTimeout, 0},
		{"connect-timeout", c.ConnectTimeout, 100 * time.Millisecond},
		{"down-time", c.DownTime, 0},
		{"max-postpone", c.MaxPostpone, 0},
	} {
		if d.val.D() < d.min {
			return &ConfigError{Key: d.key, Err: fmt.Errorf("%v is too short (at least %v)", d.val.D(), d.min)}
		}
	}
	return nil
}
