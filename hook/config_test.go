package hook

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		p := filepath.Join(dir, "hook.toml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("defaults when the default file is missing", func(t *testing.T) {
		c, err := LoadConfig(filepath.Join(dir, "none.toml"), true)
		if err != nil || c.StateDirectory != "/var/guix/offload" || c.MachinesFile != "/etc/guix/machines.scm" || !c.Discovery || c.Store != "/gnu/store" {
			t.Fatalf("%+v, %v", c, err)
		}
	})
	t.Run("missing named file is an error", func(t *testing.T) {
		if _, err := LoadConfig(filepath.Join(dir, "none.toml"), false); err == nil || !strings.Contains(err.Error(), "none.toml") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("the example", func(t *testing.T) {
		c, err := LoadConfig("../examples/hook.toml", false)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, DefaultConfig()) {
			t.Errorf("examples/hook.toml differs from the defaults:\n%+v\n%+v", c, DefaultConfig())
		}
	})
	t.Run("values", func(t *testing.T) {
		c, err := LoadConfig(write(`machines-file = "/etc/m.scm"
state-directory = "/tmp/s"
trust = "tofu"
discovery = false
private-key = "/root/.ssh/id_ed25519"
user = "offload"
connect-timeout = "3s"
down-time = "90s"
max-postpone = "1h"
`), false)
		if err != nil {
			t.Fatal(err)
		}
		if c.MachinesFile != "/etc/m.scm" || c.Trust != "tofu" || c.Discovery || c.User != "offload" ||
			c.ConnectTimeout.D() != 3*time.Second || c.DownTime.D() != 90*time.Second || c.MaxPostpone.D() != time.Hour {
			t.Errorf("%+v", c)
		}
	})
	for _, tc := range []struct{ name, text, want string }{
		{"unknown key", "machine-file = \"/x\"\n", "machine-file: unknown key"},
		{"relative path", "store = \"gnu/store\"\n", "store: \"gnu/store\" is not an absolute file name"},
		{"bad trust", "trust = \"all\"\n", "trust: unknown policy"},
		{"bad duration", "down-time = \"soon\"\n", "bad duration"},
		{"wrong type", "discovery = \"yes\"\n", "hook.toml"},
		{"syntax", "a = = 1\n", "hook.toml:1:"},
		{"short timeout", "connect-timeout = \"1ms\"\n", "connect-timeout: 1ms is too short"},
		{"bad user", "user = \"me@there\"\n", "user:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(write(tc.text), false)
			var ce *ConfigError
			if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "hook.toml") {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// Every configuration error names FILE:LINE (FILE:LINE:COLUMN for a
// syntax error) and the key, as the agent's do.
func TestConfigErrorLines(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hook.toml")
	for _, tc := range []struct{ name, text, want string }{
		{"bad policy", "# hook\nstore = \"/gnu/store\"\ntrust = \"everyone\"\n", p + `:3: trust: unknown policy "everyone" (want acl, tofu or any)`},
		{"relative path", "\n\n\n\nstore = \"gnu/store\"\n", p + `:5: store: "gnu/store" is not an absolute file name`},
		{"unknown key", "discovery = true\nmachine-file = \"/x\"\n", p + `:2: machine-file: unknown key (did you mean "machines-file"?) (known keys: `},
		{"unknown table", "trust = \"acl\"\n[extra]\nx = 1\n", p + ":2: extra: unknown key"},
		{"string for a boolean", "\ndiscovery = \"yes\"\n", p + ":2: discovery: must be true or false, not a string"},
		{"number for a string", "acl = 3\n", p + ":1: acl: must be a string, not an integer"},
		{"number for a duration", "down-time = 5\n", p + ":1: down-time: must be a duration string such as \"30s\", not an integer"},
		{"bad duration", "\n\ndown-time = \"soon\"\n", p + `:3: down-time: bad duration "soon"`},
		{"too short", "compress = false\nconnect-timeout = \"1ms\"\n", p + ":2: connect-timeout: 1ms is too short"},
		{"quoted key", "\"trust\" = \"x\"\n", p + `:1: trust: unknown policy "x"`},
		{"syntax", "store = \"/gnu/store\"\na = = 1\n", p + ":2:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(p, false)
			var ce *ConfigError
			if err == nil || !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("err %v\nwant %s…", err, tc.want)
			}
		})
	}
}

// The keys LoadConfig checks are the Config fields' TOML names.
func TestConfigKeysMatchFields(t *testing.T) {
	var tags []string
	rt := reflect.TypeFor[Config]()
	for i := range rt.NumField() {
		tags = append(tags, rt.Field(i).Tag.Get("toml"))
	}
	slices.Sort(tags)
	if checked := configKeys.Names(); !slices.Equal(tags, checked) {
		t.Errorf("fields %v\nconfigKeys %v", tags, checked)
	}
}

func TestConfigPath(t *testing.T) {
	if p := ConfigPath(func(string) string { return "" }); p != DefaultConfigFile {
		t.Error(p)
	}
	if p := ConfigPath(func(k string) string { return map[string]string{ConfigEnv: "/x.toml"}[k] }); p != "/x.toml" {
		t.Error(p)
	}
}

func FuzzLoadConfig(f *testing.F) {
	f.Add("discovery = false\nstore = \"/gnu/store\"\n")
	f.Add("down-time = \"5m\"\n[x]\n")
	f.Add("a = = 1")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text string) {
		p := filepath.Join(dir, "hook.toml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(p, false)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("loaded an invalid config: %v", verr)
			}
			return
		}
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}
