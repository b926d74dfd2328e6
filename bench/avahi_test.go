//go:build bench

package bench

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
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// avahi is Avahi as the independent DNS-SD peer on one namespace host: a
// dbus-daemon of its own (a system bus on a socket in a temporary
// directory) and avahi-daemon on that bus, in a private mount namespace
// with a fresh /run so that its pid file and socket never meet another
// avahi-daemon's (other tests may run one at the same time).
type avahi struct {
	host   *netns.Host
	dir    string
	env    []string
	bus    *netns.Proc
	daemon *netns.Proc
}

// startAvahi starts dbus-daemon and avahi-daemon on h, restricted to h's
// bridge interface, and waits until avahi-daemon has finished starting.
func startAvahi(t *testing.T, h *netns.Host) *avahi {
	t.Helper()
	testenv.LookPath(t, "avahi-daemon", "avahi-daemon")
	testenv.LookPath(t, "dbus-daemon", "dbus")
	testenv.LookPath(t, "unshare", "util-linux")
	dir, err := os.MkdirTemp("", "bench-avahi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a := &avahi{host: h, dir: dir}
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
	avahiConf := fmt.Sprintf(`[server]
host-name=%s
use-ipv4=yes
use-ipv6=yes
allow-interfaces=%s
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
`, strings.ReplaceAll(h.Name, "_", "-"), h.Iface)
	for name, text := range map[string]string{"bus.conf": busConf, "avahi-daemon.conf": avahiConf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a.env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+sock)
	a.bus = h.Start(t, "dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--nopidfile")
	netns.WaitFor(t, 10*time.Second, func() bool {
		_, err := os.Stat(sock)
		return err == nil || a.bus.Exited()
	})
	if a.bus.Exited() {
		t.Fatalf("dbus-daemon exited: %s", a.bus.Output())
	}
	a.restart(t)
	return a
}

// restart (re)starts avahi-daemon with an empty cache and waits until it
// has finished starting up.
func (a *avahi) restart(t *testing.T) {
	t.Helper()
	a.stop()
	cmd := a.host.Command(context.Background(), "unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount -t tmpfs bench-run /run && exec "$@"`, "sh",
		"avahi-daemon", "-f", filepath.Join(a.dir, "avahi-daemon.conf"),
		"--no-chroot", "--no-drop-root", "--no-rlimits", "--no-proc-title")
	cmd.Env = a.env
	a.daemon = a.host.StartCmd(t, cmd)
	netns.WaitFor(t, 20*time.Second, func() bool {
		return strings.Contains(a.daemon.Output(), "Server startup complete") || a.daemon.Exited()
	})
	if a.daemon.Exited() {
		t.Fatalf("avahi-daemon exited: %s", a.daemon.Output())
	}
}

// stop stops avahi-daemon (it says goodbye to the LAN) and waits for it.
func (a *avahi) stop() {
	if a.daemon == nil || a.daemon.Exited() {
		return
	}
	_ = a.daemon.Stop(syscall.SIGTERM)
	if a.daemon.Wait(5*time.Second) != nil {
		_ = a.daemon.Stop(syscall.SIGKILL)
		_ = a.daemon.Wait(5 * time.Second)
	}
}

// command is an Avahi client (avahi-browse, avahi-publish) on the host,
// talking to this avahi-daemon.
func (a *avahi) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := a.host.Command(ctx, name, args...)
	cmd.Env = a.env
	return cmd
}
