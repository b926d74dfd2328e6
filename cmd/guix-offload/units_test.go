package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// maxExposure is the most `systemd-analyze security` may rate our units
// (0 is locked down, 10 fully exposed).
const maxExposure = 2.5

// TestSystemdUnits installs the units as `make install PREFIX=…` does
// and has systemd's own tools judge them, without starting systemd:
// `systemd-analyze verify` (syntax, ExecStart programs, man pages) and
// `systemd-analyze security --offline=yes`, whose exposure must stay at
// most 2.5. Then it runs each ExecStart command line the way systemd
// would, in modes that touch no network: the agent's with %d expanded to
// a credentials directory holding the signing key, in --dry-run, must
// sign; the watcher's must parse.
func TestSystemdUnits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both programs")
	}
	analyze := testenv.LookPath(t, "systemd-analyze", "systemd")
	testenv.LookPath(t, "make", "make")
	prefix := t.TempDir()
	cmd := exec.Command("make", "-s", "-C", filepath.Join("..", ".."), "install", "PREFIX="+prefix, "OUT="+t.TempDir())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, b)
	}
	units := map[string]string{}
	for _, name := range []string{"guix-offload-agent.service", "guix-offload-discover.service"} {
		units[name] = filepath.Join(prefix, "lib", "systemd", "system", name)
	}

	for name, unit := range units {
		t.Run(name, func(t *testing.T) {
			verify := exec.Command(analyze, "verify", unit)
			// Documentation=man:… must name installed man pages; `man` is
			// not needed for that when it is missing.
			if _, err := exec.LookPath("man"); err != nil {
				verify.Args = append(verify.Args[:2], "--man=no", unit)
			}
			verify.Env = append(os.Environ(), "MANPATH="+filepath.Join(prefix, "share", "man"), "SYSTEMD_LOG_COLOR=0")
			if b, err := verify.CombinedOutput(); err != nil || len(strings.TrimSpace(string(b))) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, b)
			}
			out, err := exec.Command(analyze, "security", "--offline=yes", "--no-pager", unit).CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
			if m == nil {
				t.Fatalf("no exposure level in:\n%s", out)
			}
			if level, _ := strconv.ParseFloat(string(m[1]), 64); level > maxExposure {
				t.Errorf("%s is rated %.1f by systemd-analyze security, more than %.1f:\n%s", name, level, maxExposure, out)
			}
		})
	}

	t.Run("agent runs with its credential", func(t *testing.T) {
		argv := execStart(t, units["guix-offload-agent.service"])
		if !strings.Contains(string(unitText(t, units["guix-offload-agent.service"])), "LoadCredential="+"signing-key:/etc/guix/signing-key.sec") {
			t.Error("the agent's unit does not load /etc/guix/signing-key.sec as credential signing-key")
		}
		creds := t.TempDir()
		key, err := os.ReadFile(filepath.Join("..", "..", "agent", "testdata", "signing-key.sec"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(creds, "signing-key"), key, 0o400); err != nil {
			t.Fatal(err)
		}
		for i, a := range argv {
			argv[i] = strings.ReplaceAll(a, "%d", creds)
		}
		config := filepath.Join(t.TempDir(), "agent.toml")
		os.WriteFile(config, nil, 0o644)
		hostKey := filepath.Join(t.TempDir(), "ssh_host_ed25519_key.pub")
		os.WriteFile(hostKey, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@b\n"), 0o644)
		run := exec.Command(argv[0], append(argv[1:], "--config", config, "--host-key-file", hostKey, "--once", "--dry-run")...)
		run.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY="+creds)
		b, err := run.CombinedOutput()
		if err != nil || !strings.Contains(string(b), "signed: true") {
			t.Errorf("%v: %v\n%s", run.Args, err, b)
		}
	})

	t.Run("watcher's command line", func(t *testing.T) {
		argv := execStart(t, units["guix-offload-discover.service"])
		if filepath.Base(argv[0]) != "guix-offload" {
			t.Fatalf("ExecStart runs %s", argv[0])
		}
		root := newRootCommand()
		c, args, err := root.Find(argv[1:])
		if err == nil {
			err = c.ParseFlags(args)
		}
		if err != nil || c.Name() != "discover" {
			t.Fatalf("%v: %v", argv, err)
		}
		for _, d := range []struct{ flag, setting, under string }{
			{"cache", "CacheDirectory", "/var/cache"},
			{"pins", "StateDirectory", "/var/lib"},
		} {
			file, _ := c.Flags().GetString(d.flag)
			m := regexp.MustCompile(`(?m)^` + d.setting + `=(\S+)$`).FindSubmatch(unitText(t, units["guix-offload-discover.service"]))
			if m == nil || filepath.Dir(file) != filepath.Join(d.under, string(m[1])) {
				t.Errorf("--%s %s is not in the unit's %s= (%q): the watcher could not write it", d.flag, file, d.setting, m)
			}
		}
	})
}

func unitText(t *testing.T, unit string) []byte {
	t.Helper()
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// execStart is the unit's ExecStart= split into words (our units quote
// nothing).
func execStart(t *testing.T, unit string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^ExecStart=(.+)$`).FindSubmatch(unitText(t, unit))
	if m == nil {
		t.Fatalf("%s has no ExecStart=", unit)
	}
	return strings.Fields(string(m[1]))
}
