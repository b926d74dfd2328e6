package agent

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigFull(t *testing.T) {
	cfg, err := LoadConfig("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	th := 0.9
	want := Config{
		Name:              "builder1",
		Systems:           []string{"x86_64-linux", "i686-linux", "aarch64-linux"},
		ParallelBuilds:    4,
		Speed:             2,
		Features:          []string{"kvm", "big-parallel"},
		User:              "offload",
		Port:              2222,
		OverloadThreshold: Threshold{V: &th},
		HostKeyFile:       "/etc/ssh/ssh_host_ed25519_key.pub",
		SigningKey:        "/etc/guix/signing-key.sec",
		Interfaces:        []string{"eth0", "wlan0"},
		Store:             "/gnu/store",
		RefreshInterval:   Duration(10 * time.Second),
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("LoadConfig:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestLoadConfigExampleIsDefaults(t *testing.T) {
	// examples/agent.toml has every key commented out: it must load and
	// change nothing.
	cfg, err := LoadConfig("../examples/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, DefaultConfig()) {
		t.Errorf("examples/agent.toml gives %+v; want the defaults %+v", cfg, DefaultConfig())
	}
	// Uncommented, every key must be accepted.
	b, err := os.ReadFile("../examples/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	keys := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			k, _, ok := strings.Cut(rest, " = ")
			if _, known := configKeys[k]; ok && known {
				line = rest
				keys[k] = true
			}
		}
		lines = append(lines, line)
	}
	for k := range configKeys {
		if !keys[k] {
			t.Errorf("examples/agent.toml does not show key %q as \"# %s = …\"", k, k)
		}
	}
	p := filepath.Join(t.TempDir(), "agent.toml")
	os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644)
	if _, err := LoadConfig(p); err != nil {
		t.Errorf("examples/agent.toml with every key uncommented: %v", err)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v; want one wrapping os.ErrNotExist", err)
	}
}

func TestDecodeConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       string // the whole error, after "agent.toml:"
	}{
		{"unknown key", "user = \"x\"\n\nfoo = 1\n", "3: foo: unknown key (known keys: features, host-key-file, interfaces, name, overload-threshold, parallel-builds, port, refresh-interval, signing-key, speed, store, systems, user, wide-area)"},
		{"typo", "# c\nparalel-builds = 3\n", `2: paralel-builds: unknown key (did you mean "parallel-builds"?) (known keys: features, host-key-file, interfaces, name, overload-threshold, parallel-builds, port, refresh-interval, signing-key, speed, store, systems, user, wide-area)`},
		{"unknown table", "speed = 1.0\n[extra]\nx = 1\n", "2: extra: unknown key (known keys: features, host-key-file, interfaces, name, overload-threshold, parallel-builds, port, refresh-interval, signing-key, speed, store, systems, user, wide-area)"},
		{"dotted key", "speed.x = 1\n", "1: speed: must be a number, not a table"},
		{"port string", "port = \"22\"\n", "1: port: must be an integer, not a string"},
		{"port float", "\nport = 22.5\n", "2: port: must be an integer, not a float"},
		{"port range", "port = 70000\n", "1: port: 70000 is not a TCP port (1 to 65535)"},
		{"speed string", "speed = \"fast\"\n", "1: speed: must be a number, not a string"},
		{"speed zero", "speed = 0\n", "1: speed: 0 is not a positive number"},
		{"systems not a list", "systems = \"x86_64-linux\"\n", `1: systems: must be a list of strings such as ["a", "b"], not a string`},
		{"systems ints", "systems = [\"x86_64-linux\", 2]\n", "1: systems: item 2 must be a string, not an integer"},
		{"systems empty", "systems = []\n", "1: systems: empty list; leave the key out to detect the systems"},
		{"system bad", "systems = [\"x86_64 linux\"]\n", `1: systems: "x86_64 linux": character ' ' is not allowed (letters, digits and ._+- are)`},
		{"system no dash", "systems = [\"x86\"]\n", `1: systems: "x86" is not a Guix system type such as "x86_64-linux"`},
		{"feature twice", "features = [\"kvm\", \"kvm\"]\n", `1: features: "kvm" is listed twice`},
		{"parallel negative", "parallel-builds = -1\n", "1: parallel-builds: -1 is not a count from 1 to 4096"},
		{"threshold true", "overload-threshold = true\n", "1: overload-threshold: must be a number or false (ignore the load), not true"},
		{"threshold string", "overload-threshold = \"high\"\n", "1: overload-threshold: must be a number or false, not a string"},
		{"threshold negative", "overload-threshold = -0.5\n", "1: overload-threshold: -0.5 is not a non-negative number"},
		{"user empty", "user = \"\"\n", `1: user: "" is not a user name`},
		{"user with at", "user = \"a@b\"\n", `1: user: "a@b" is not a user name`},
		{"name with dot", "name = \"a.b\"\n", `1: name: "a.b" contains a dot or a control character`},
		{"store relative", "store = \"gnu/store\"\n", `1: store: "gnu/store" is not an absolute directory name`},
		{"interface slash", "interfaces = [\"a/b\"]\n", `1: interfaces: "a/b" is not an interface name`},
		{"duration bad", "refresh-interval = \"soon\"\n", `1: refresh-interval: bad duration "soon" (write it like "30s" or "5m")`},
		{"duration int", "refresh-interval = 5\n", `1: refresh-interval: must be a duration string such as "30s", not an integer`},
		{"duration small", "refresh-interval = \"10ms\"\n", "1: refresh-interval: 10ms is not between 1s and 4m"},
		{"syntax", "speed = 1.0\nport =\n", "2: port: expected value but found '\\n' instead"},
		{"quoted key", "\"port\" = \"x\"\n", "1: port: must be an integer, not a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			err := DecodeConfig("agent.toml", []byte(tc.text), &cfg)
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if got := strings.TrimPrefix(err.Error(), "agent.toml:"); got != tc.want {
				t.Errorf("error\n got %q\nwant %q", err.Error(), "agent.toml:"+tc.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key == "" || ce.Line == 0 {
				t.Errorf("error %#v is not a *ConfigError with key and line", err)
			}
		})
	}
}

func TestThresholdFalse(t *testing.T) {
	cfg := DefaultConfig()
	if err := DecodeConfig("a.toml", []byte("overload-threshold = false\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.OverloadThreshold.V != nil {
		t.Errorf("overload-threshold = false gave %v; want #f", cfg.OverloadThreshold)
	}
	cfg = DefaultConfig()
	if err := DecodeConfig("a.toml", []byte("overload-threshold = 1\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.OverloadThreshold.String() != "1" {
		t.Errorf("overload-threshold = 1 gave %v", cfg.OverloadThreshold)
	}
}

func FuzzDecodeConfig(f *testing.F) {
	for _, p := range []string{"testdata/full.toml", "../examples/agent.toml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("port = \"x\"\n[a.b]\nc = [1, \"x\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultConfig()
		err := DecodeConfig("f.toml", data, &cfg)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("decoded config does not validate: %v", verr)
			}
			return
		}
		if !strings.HasPrefix(err.Error(), "f.toml") {
			t.Fatalf("error %q does not name the file", err)
		}
	})
}

// Under systemd's LoadCredential= the signing key comes from
// $CREDENTIALS_DIRECTORY, unless one was set explicitly.
func TestWithCredentials(t *testing.T) {
	creds := t.TempDir()
	env := func(k string) string {
		if k == "CREDENTIALS_DIRECTORY" {
			return creds
		}
		return ""
	}
	if got := DefaultConfig().WithCredentials(env).SigningKey; got != DefaultSigningKey {
		t.Errorf("no credential: signing key %s", got)
	}
	if err := os.WriteFile(filepath.Join(creds, SigningKeyCredential), []byte("key"), 0o400); err != nil {
		t.Fatal(err)
	}
	if got, want := DefaultConfig().WithCredentials(env).SigningKey, filepath.Join(creds, "signing-key"); got != want {
		t.Errorf("signing key %s, want %s", got, want)
	}
	c := DefaultConfig()
	c.SigningKey = "/etc/other.sec"
	if got := c.WithCredentials(env).SigningKey; got != "/etc/other.sec" {
		t.Errorf("explicit signing key replaced by %s", got)
	}
	if got := DefaultConfig().WithCredentials(func(string) string { return "" }).SigningKey; got != DefaultSigningKey {
		t.Errorf("outside systemd: %s", got)
	}
}
