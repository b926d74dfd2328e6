package netns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// Avahi is Avahi running on one host as an independent DNS-SD peer: a
// dbus-daemon of its own (a system bus on a socket in a temporary
// directory) and avahi-daemon on that bus, restricted to the host's
// interface, in a private mount namespace with a fresh /run so its pid
// file and socket never meet another avahi-daemon's. Start it with
// [Host.StartAvahi]; run clients (avahi-browse, avahi-publish) with
// [Avahi.Command] or [Avahi.Start].
type Avahi struct {
	Host *Host
	// Env is the environment that points Avahi's clients at this bus.
	Env []string

	dir    string
	bus    *Proc
	daemon *Proc
	t      testing.TB
}

// StartAvahi starts dbus-daemon and avahi-daemon on h and waits until
// avahi-daemon has finished starting. Both are stopped when t ends. It
// skips t (fails it under CI=true) when dbus-daemon, avahi-daemon or
// unshare is missing.
func (h *Host) StartAvahi(t testing.TB) *Avahi {
	t.Helper()
	testenv.LookPath(t, "avahi-daemon", "avahi-daemon")
	testenv.LookPath(t, "avahi-browse", "avahi-utils")
	testenv.LookPath(t, "dbus-daemon", "dbus")
	testenv.LookPath(t, "unshare", "util-linux")
	dir := t.TempDir()
	sock := filepath.Join(dir, "system_bus_socket")
	busConf := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=` + sock + `</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`
	// host-name: every host shares the kernel's host name, so each
	// avahi-daemon gets its namespace's name instead.
	avahiConf := fmt.Sprintf(`[server]
host-name=%s
use-ipv4=yes
use-ipv6=yes
allow-interfaces=%s
enable-dbus=yes
ratelimit-interval-usec=0
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
`, h.Name, h.Iface)
	for name, text := range map[string]string{"bus.conf": busConf, "avahi-daemon.conf": avahiConf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := &Avahi{Host: h, Env: append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+sock), dir: dir, t: t}
	a.bus = h.Start(t, "dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--nopidfile")
	WaitFor(t, 10*time.Second, func() bool {
		_, err := os.Stat(sock)
		return err == nil || a.bus.Exited()
	})
	if a.bus.Exited() {
		t.Fatalf("dbus-daemon on %s exited: %s", h.Name, a.bus.Output())
	}
	a.Restart(t)
	return a
}

// Restart (re)starts avahi-daemon with an empty cache and waits until it
// has finished starting.
func (a *Avahi) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	cmd := a.Host.Command(context.Background(), "unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount -t tmpfs netns-avahi-run /run && exec "$@"`, "sh",
		"avahi-daemon", "-f", filepath.Join(a.dir, "avahi-daemon.conf"),
		"--no-chroot", "--no-drop-root", "--no-rlimits", "--no-proc-title")
	cmd.Env = a.Env
	a.daemon = a.Host.StartCmd(t, cmd)
	WaitFor(t, 20*time.Second, func() bool {
		return strings.Contains(a.daemon.Output(), "Server startup complete") || a.daemon.Exited()
	})
	if a.daemon.Exited() {
		t.Fatalf("avahi-daemon on %s exited: %s", a.Host.Name, a.daemon.Output())
	}
}

// Stop stops avahi-daemon (it says goodbye to the LAN) and waits for it.
func (a *Avahi) Stop() {
	if a.daemon == nil || a.daemon.Exited() {
		return
	}
	_ = a.daemon.Stop(syscall.SIGTERM)
	if a.daemon.Wait(5*time.Second) != nil {
		_ = a.daemon.Stop(syscall.SIGKILL)
		_ = a.daemon.Wait(5 * time.Second)
	}
}

// Command returns an Avahi client command (avahi-browse, avahi-publish)
// on the host, talking to this avahi-daemon.
func (a *Avahi) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := a.Host.Command(ctx, name, args...)
	cmd.Env = a.Env
	return cmd
}

// Start starts an Avahi client in the background, as [Host.Start].
func (a *Avahi) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return a.Host.StartCmd(t, a.Command(context.Background(), name, args...))
}

// BrowseLine is one line of `avahi-browse --parsable --resolve` output
// for a resolved service ("=" lines).
type BrowseLine struct {
	Event    string // "+" new, "=" resolved, "-" removed
	Iface    string
	Protocol string // IPv4 or IPv6
	Instance string
	Type     string
	Domain   string
	Host     string   // resolved lines only
	Addr     string   // resolved lines only
	Port     string   // resolved lines only
	TXT      []string // resolved lines only, unquoted
}

// ParseBrowse parses avahi-browse --parsable output (with --resolve).
// Lines it cannot parse are skipped, and so is an unterminated last line:
// avahi-browse may still be writing it.
func ParseBrowse(out string) []BrowseLine {
	var lines []BrowseLine
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[:i]
	} else {
		out = ""
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ";")
		if len(f) < 6 || (f[0] != "+" && f[0] != "=" && f[0] != "-") {
			continue
		}
		l := BrowseLine{Event: f[0], Iface: f[1], Protocol: f[2], Instance: unescapeBrowse(f[3]), Type: f[4], Domain: f[5]}
		if f[0] == "=" && len(f) >= 10 {
			l.Host, l.Addr, l.Port = f[6], f[7], f[8]
			l.TXT = splitTXT(strings.Join(f[9:], ";"))
		}
		lines = append(lines, l)
	}
	return lines
}

// unescapeBrowse undoes avahi-browse's \DDD escapes in names.
func unescapeBrowse(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var n int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03d", &n); err == nil && n < 256 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// splitTXT splits avahi's TXT rendering: "a=1" "b=x y", with \" and \\
// escaped inside the quotes.
func splitTXT(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '"' {
			continue
		}
		var b strings.Builder
		for i++; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		out = append(out, b.String())
	}
	return out
}

// Output returns what the current avahi-daemon has logged.
func (a *Avahi) Output() string {
	if a.daemon == nil {
		return ""
	}
	return a.daemon.Output()
}
