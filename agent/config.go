package agent

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/internal/boundedread"
	"github.com/guix-offload/guix-offload/internal/tomlconf"
	"github.com/guix-offload/guix-offload/scm"
)

// DefaultConfigFile is where the agent reads its configuration when no
// --config is given. A missing default file is not an error.
const DefaultConfigFile = "/etc/guix-offload/agent.toml"

// Config is the agent's configuration. Its keys are the machines.scm
// field names. A zero value (empty string, nil list, 0) means "detect it
// on this machine" (see [Detector]); [DefaultConfig] has the defaults of
// the keys that are not detected.
type Config struct {
	// Name is the DNS-SD instance name; default: the host name.
	Name string `toml:"name"`
	// Systems are the system types offered; default: detected (the
	// machine's own plus those emulated through binfmt_misc).
	Systems []string `toml:"systems"`
	// ParallelBuilds is how many builds may run at once; default:
	// guix-daemon's --max-jobs, else 1.
	ParallelBuilds int `toml:"parallel-builds"`
	// Speed is the relative speed factor; default 1.0.
	Speed float64 `toml:"speed"`
	// Features are the system features offered; default: detected
	// ("kvm" when /dev/kvm is usable). A configured list replaces the
	// detected one.
	Features []string `toml:"features"`
	// User is the user masters log in as over SSH; default "offload".
	User string `toml:"user"`
	// Port is the SSH port (the SRV port); default: sshd_config's Port,
	// else 22.
	Port int `toml:"port"`
	// OverloadThreshold is the normalized load above which masters
	// should not offload here; nil means ignore the load (#f).
	OverloadThreshold Threshold `toml:"overload-threshold"`
	// HostKeyFile is the SSH host public key announced (a private key
	// path is read as PATH.pub); default: /etc/ssh/ssh_host_ed25519_key.pub,
	// else the RSA one.
	HostKeyFile string `toml:"host-key-file"`
	// SigningKey is the Guix signing key (private) that signs the
	// announcement; default /etc/guix/signing-key.sec.
	SigningKey string `toml:"signing-key"`
	// Interfaces are the network interfaces to advertise on; default:
	// every interface that is up, multicast-capable and not loopback.
	Interfaces []string `toml:"interfaces"`
	// Store is the store directory whose free space is announced;
	// default /gnu/store.
	Store string `toml:"store"`
	// RefreshInterval is the shortest time between two announcements
	// of a changed load or free space; default 5 s.
	RefreshInterval Duration `toml:"refresh-interval"`
	// WideArea, when set, registers the machine in a DNS zone too
	// (wide-area DNS-SD, see [WideAreaConfig]).
	WideArea *WideAreaConfig `toml:"wide-area"`
}

// Threshold is an overload threshold: a number, or nil for #f (ignore
// the load). In TOML it is a number or false.
type Threshold struct{ V *float64 }

// UnmarshalTOML implements [toml.Unmarshaler].
func (t *Threshold) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case bool:
		if x {
			return errors.New("must be a number or false (ignore the load), not true")
		}
		t.V = nil
	case int64:
		f := float64(x)
		t.V = &f
	case float64:
		t.V = &x
	default:
		return fmt.Errorf("must be a number or false, not %s", tomlconf.TypeName(v))
	}
	return nil
}

// String formats t as machines.scm would.
func (t Threshold) String() string {
	if t.V == nil {
		return "#f"
	}
	return strconv.FormatFloat(*t.V, 'f', -1, 64)
}

// Set parses a flag value: a number, or "#f", "false" or "none".
func (t *Threshold) Set(s string) error {
	switch s {
	case "#f", "false", "none":
		t.V = nil
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number or #f", s)
	}
	t.V = &f
	return nil
}

// Type implements pflag.Value.
func (t *Threshold) Type() string { return "number|#f" }

// Duration is a time.Duration written as a Go duration string ("5s").
type Duration = tomlconf.Duration

// Defaults that are not detected.
const (
	DefaultUser              = "offload"
	DefaultSpeed             = 1.0
	DefaultOverloadThreshold = 0.8
	DefaultSigningKey        = "/etc/guix/signing-key.sec"
	DefaultStore             = scm.DefaultStore
	DefaultRefreshInterval   = 5 * time.Second
)

// SigningKeyCredential is the name of the systemd credential that holds
// the signing key (LoadCredential=signing-key:/etc/guix/signing-key.sec),
// read from $CREDENTIALS_DIRECTORY.
const SigningKeyCredential = "signing-key"

// WithCredentials returns c reading its signing key from the credentials
// systemd passed (env("CREDENTIALS_DIRECTORY")/signing-key), when c still
// has the default signing key and that credential exists: the agent then
// needs no access to /etc/guix/signing-key.sec itself. A signing key set
// explicitly wins.
func (c Config) WithCredentials(env func(string) string) Config {
	dir := env("CREDENTIALS_DIRECTORY")
	if dir == "" || c.SigningKey != DefaultSigningKey {
		return c
	}
	if p := filepath.Join(dir, SigningKeyCredential); fileExists(p) {
		c.SigningKey = p
	}
	return c
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// DefaultConfig returns the configuration used for keys that are neither
// in the file nor on the command line. Keys left zero are detected.
func DefaultConfig() Config {
	t := DefaultOverloadThreshold
	return Config{
		Speed:             DefaultSpeed,
		User:              DefaultUser,
		OverloadThreshold: Threshold{V: &t},
		SigningKey:        DefaultSigningKey,
		Store:             DefaultStore,
		RefreshInterval:   Duration(DefaultRefreshInterval),
	}
}

// ConfigError is a problem with one key of the configuration, naming the
// file and line when it came from a file.
type ConfigError = tomlconf.Error

// configKeys are the keys of the agent's configuration file.
var configKeys = tomlconf.Keys{
	"name":               tomlconf.String,
	"systems":            tomlconf.Strings,
	"parallel-builds":    tomlconf.Int,
	"speed":              tomlconf.Number,
	"features":           tomlconf.Strings,
	"user":               tomlconf.String,
	"port":               tomlconf.Int,
	"overload-threshold": func(v any) error { var t Threshold; return t.UnmarshalTOML(v) },
	"host-key-file":      tomlconf.String,
	"signing-key":        tomlconf.String,
	"interfaces":         tomlconf.Strings,
	"store":              tomlconf.String,
	"refresh-interval":   tomlconf.DurationString,
	"wide-area": tomlconf.Table(tomlconf.Keys{
		"domain":      tomlconf.String,
		"server":      tomlconf.String,
		"tsig-key":    tomlconf.String,
		"resolv-conf": tomlconf.String,
	}, "[wide-area] with domain and tsig-key"),
}

// LoadConfig reads the TOML file at path over [DefaultConfig]. Every key
// is optional; an unknown key, a value of the wrong type or an invalid
// value is a [*ConfigError] naming path, the line and the key.
func LoadConfig(path string) (Config, error) {
	data, err := boundedread.ReadFile(path, boundedread.Config)
	if err != nil {
		return Config{}, fmt.Errorf("read configuration: %w", err)
	}
	cfg := DefaultConfig()
	if err := DecodeConfig(path, data, &cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// DecodeConfig decodes the TOML text data (read from file, used in
// errors) over cfg and validates the result.
func DecodeConfig(file string, data []byte, cfg *Config) error {
	text := string(data)
	if err := configKeys.Decode(file, text, cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = file
			// A key of a table ("wide-area.domain") is found by its last part.
			ce.Line = tomlconf.KeyLine(text, ce.Key[strings.LastIndexByte(ce.Key, '.')+1:])
		}
		return err
	}
	return nil
}

// Validate checks the values of c, returning a [*ConfigError] naming the
// first bad key. Zero values (to be detected) are valid.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: key, Err: fmt.Errorf(format, args...)}
	}
	if c.Name != "" {
		if len(c.Name) > 63 {
			return bad("name", "%q is longer than 63 bytes (a DNS label)", c.Name)
		}
		if strings.ContainsFunc(c.Name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '.' }) {
			return bad("name", "%q contains a dot or a control character", c.Name)
		}
	}
	if err := checkNames(c.Systems); err != nil {
		return &ConfigError{Key: "systems", Err: err}
	}
	for _, s := range c.Systems {
		if !strings.Contains(s, "-") {
			return bad("systems", "%q is not a Guix system type such as \"x86_64-linux\"", s)
		}
	}
	if c.Systems != nil && len(c.Systems) == 0 {
		return bad("systems", "empty list; leave the key out to detect the systems")
	}
	if err := checkNames(c.Features); err != nil {
		return &ConfigError{Key: "features", Err: err}
	}
	if c.ParallelBuilds < 0 || c.ParallelBuilds > 4096 {
		return bad("parallel-builds", "%d is not a count from 1 to 4096", c.ParallelBuilds)
	}
	if c.Speed <= 0 || math.IsNaN(c.Speed) || math.IsInf(c.Speed, 0) || c.Speed > 1e6 {
		return bad("speed", "%v is not a positive number", c.Speed)
	}
	if c.User == "" || strings.ContainsAny(c.User, " @:/\\\"'\t\n") {
		return bad("user", "%q is not a user name", c.User)
	}
	if c.Port < 0 || c.Port > 65535 {
		return bad("port", "%d is not a TCP port (1 to 65535)", c.Port)
	}
	if v := c.OverloadThreshold.V; v != nil && (*v < 0 || math.IsNaN(*v) || math.IsInf(*v, 0)) {
		return bad("overload-threshold", "%v is not a non-negative number", *v)
	}
	if c.Store == "" || !strings.HasPrefix(c.Store, "/") {
		return bad("store", "%q is not an absolute directory name", c.Store)
	}
	for _, ifc := range c.Interfaces {
		if ifc == "" || len(ifc) > 15 || strings.ContainsAny(ifc, "/ \t\n") {
			return bad("interfaces", "%q is not an interface name", ifc)
		}
	}
	if c.WideArea != nil {
		if err := c.WideArea.validate(); err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				ce.Key = "wide-area." + ce.Key
			}
			return err
		}
	}
	if c.RefreshInterval < Duration(time.Second) || c.RefreshInterval > Duration(4*time.Minute) {
		return bad("refresh-interval", "%v is not between 1s and 4m", c.RefreshInterval)
	}
	return nil
}

// checkNames checks a list of system types or features as the TXT record
// will carry them: letters, digits and "._+-", no duplicates.
func checkNames(list []string) error {
	for i, s := range list {
		if s == "" {
			return fmt.Errorf("item %d is empty", i+1)
		}
		if i := strings.IndexFunc(s, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+-", r))
		}); i >= 0 {
			return fmt.Errorf("%q: character %q is not allowed (letters, digits and ._+- are)", s, s[i])
		}
		if slices.Contains(list[:i], s) {
			return fmt.Errorf("%q is listed twice", s)
		}
	}
	return nil
}
