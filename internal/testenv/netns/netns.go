package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// Net is a set of hosts joined by one bridge. Make it with [New].
type Net struct {
	// Switch is the name of the namespace that holds the bridge.
	Switch string
	// Bridge is the bridge's interface name inside Switch.
	Bridge string
	// Prefix is the IPv4 network every host is on: 169.254.0.0/16, or
	// a /24 of it for [Subnets].
	Prefix netip.Prefix

	ip    string
	hosts []*Host
}

// Host is one network namespace with one interface on the bridge.
type Host struct {
	// Name is the network namespace's name, as `ip netns` knows it.
	Name string
	// Addr is the host's IPv4 address, in 169.254.0.0/16.
	Addr netip.Addr
	// Prefix is Addr with its prefix length (/16; /24 for [Subnets]).
	Prefix netip.Prefix
	// Iface is the host's interface on the bridge, inside Name.
	Iface string
	// Port is the bridge-side end of Iface's veth pair, inside the switch
	// namespace.
	Port string

	net *Net
}

// New makes n hosts joined by a bridge and tears them down when t ends. It
// skips t (fails it under CI=true) without root or iproute2, and stops t
// with Fatal when the network cannot be built.
func New(t testing.TB, n int) *Net {
	t.Helper()
	return newNet(t, n, 16, nil)
}

// Subnets makes two networks of nLeft and nRight hosts, each its own
// /24 in 169.254.0.0/16 on its own bridge, joined by a router: a
// namespace with an interface on each (address .254), forwarding IPv4
// unicast between them and no multicast, as at a site with two subnets.
// Every host routes the other subnet through it. Everything is torn down
// when t ends.
func Subnets(t testing.TB, nLeft, nRight int) (left, right *Net) {
	t.Helper()
	if nLeft > 250 || nRight > 250 {
		t.Fatalf("netns.Subnets: %d and %d hosts; want at most 250 each", nLeft, nRight)
	}
	left = newNet(t, nLeft, 24, nil)
	right = newNet(t, nRight, 24, left)
	// Named as a host of left's that New never makes (-255), so that
	// sweepStale removes it with the rest.
	router := fmt.Sprintf("gh%sp%d-255", left.Bridge[2:], os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(left.ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("netns: ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command(left.ip, "netns", "delete", router).CombinedOutput(); err != nil {
			t.Logf("netns: delete %s: %v: %s", router, err, bytes.TrimSpace(out))
		}
	})
	run("netns", "add", router)
	run("-n", router, "link", "set", "lo", "up")
	sysctl(t, left.ip, router, "net/ipv4/ip_forward", "1")
	for i, nw := range []*Net{left, right} {
		gw := nw.Gateway()
		iface, port := fmt.Sprintf("gr%s-%d", left.Bridge[2:], i), fmt.Sprintf("gq%s-%d", left.Bridge[2:], i)
		run("-n", nw.Switch, "link", "add", port, "type", "veth", "peer", "name", iface, "netns", router)
		run("-n", nw.Switch, "link", "set", port, "master", nw.Bridge)
		run("-n", nw.Switch, "link", "set", port, "up")
		run("-n", router, "addr", "add", netip.PrefixFrom(gw, nw.Prefix.Bits()).String(), "dev", iface)
		run("-n", router, "link", "set", iface, "up")
	}
	for _, pair := range [][2]*Net{{left, right}, {right, left}} {
		for _, h := range pair[0].hosts {
			run("-n", h.Name, "route", "add", pair[1].Prefix.String(), "via", pair[0].Gateway().String())
		}
	}
	return left, right
}

// Gateway is the address a router made by [Subnets] has on n: .254 of
// n's /24.
func (n *Net) Gateway() netip.Addr {
	a := n.Prefix.Addr().As4()
	a[3] = 254
	return netip.AddrFrom4(a)
}

// newNet makes n hosts on a bridge, each with an address in
// 169.254.RUN.0/24 and that address's /bits network on its interface
// (16: all of 169.254.0.0/16 is on the link). RUN is random, and not
// that of avoid.
func newNet(t testing.TB, n, bits int, avoid *Net) *Net {
	t.Helper()
	if n < 1 || n > 250 {
		t.Fatalf("netns.New: %d hosts; want 1…250", n)
	}
	testenv.NeedRoot(t)
	ipPath := testenv.LookPath(t, "ip", "iproute2")

	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("netns.New: random suffix: %v", err)
	}
	// The namespaces' names carry this process's pid, so that a later
	// run can remove those of a test binary killed before its cleanup
	// (sweepStale); interface names only the random part (15 bytes at
	// most).
	suffix := hex.EncodeToString(rnd[:3]) // 6 hex digits
	owner := fmt.Sprintf("p%d", os.Getpid())
	sweepStale(t, ipPath)
	// 169.254.0.0/24 and 169.254.255.0/24 are reserved (RFC 3927 §2.1).
	runID := 1 + int(rnd[3])%254
	if avoid != nil && byte(runID) == avoid.Prefix.Addr().As4()[2] {
		runID = 1 + runID%254
	}

	nw := &Net{
		Switch: "gs" + suffix + owner,
		Bridge: "gb" + suffix,
		Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, 0, 0}), 16),
		ip:     ipPath,
	}
	if bits != 16 {
		nw.Prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, byte(runID), 0}), bits)
	}
	// Cleanup is registered before anything exists, so a failure halfway
	// still removes what was made. Deleting a namespace destroys the
	// interfaces in it, and a veth pair goes with either of its ends.
	var made []string
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			if out, err := exec.Command(ipPath, "netns", "delete", made[i]).CombinedOutput(); err != nil {
				t.Logf("netns: delete %s: %v: %s", made[i], err, bytes.TrimSpace(out))
			}
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("netns: ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	addNS := func(name string) {
		t.Helper()
		run("netns", "add", name)
		made = append(made, name)
		// Interfaces made later in this namespace take their IPv6
		// settings from "default": no duplicate address detection, so the
		// link-local address is usable as soon as the link is up.
		sysctl(t, ipPath, name, "net/ipv6/conf/default/accept_dad", "0")
		sysctl(t, ipPath, name, "net/ipv6/conf/all/accept_dad", "0")
		run("-n", name, "link", "set", "lo", "up")
	}

	addNS(nw.Switch)
	run("-n", nw.Switch, "link", "add", nw.Bridge, "type", "bridge",
		"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
	run("-n", nw.Switch, "link", "set", nw.Bridge, "up")

	for i := 0; i < n; i++ {
		h := &Host{
			Name:  fmt.Sprintf("gh%s%s-%d", suffix, owner, i),
			Addr:  netip.AddrFrom4([4]byte{169, 254, byte(runID), byte(i + 1)}),
			Iface: fmt.Sprintf("ge%s-%d", suffix, i),
			Port:  fmt.Sprintf("gp%s-%d", suffix, i),
			net:   nw,
		}
		h.Prefix = netip.PrefixFrom(h.Addr, bits)
		addNS(h.Name)
		run("-n", nw.Switch, "link", "add", h.Port, "type", "veth", "peer", "name", h.Iface, "netns", h.Name)
		run("-n", nw.Switch, "link", "set", h.Port, "master", nw.Bridge)
		run("-n", nw.Switch, "link", "set", h.Port, "up")
		run("-n", h.Name, "link", "set", h.Iface, "multicast", "on")
		run("-n", h.Name, "addr", "add", h.Prefix.String(), "dev", h.Iface)
		run("-n", h.Name, "link", "set", h.Iface, "up")
		nw.hosts = append(nw.hosts, h)
	}
	return nw
}

// staleRE matches the names of the namespaces New makes; its group is
// the pid of the test process that made them.
var staleRE = regexp.MustCompile(`^g[sh][0-9a-f]{6}p([0-9]+)(?:-[0-9]+)?$`)

// sweepStale deletes the namespaces that New made in a test process that
// is gone: killed (by its -timeout, say) before its cleanup ran.
// Deleting a namespace ends the interfaces in it; processes still inside
// it went with their test binary (Pdeathsig, see Host.Command).
func sweepStale(t testing.TB, ipPath string) {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		m := staleRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if out, err := exec.Command(ipPath, "netns", "delete", e.Name()).CombinedOutput(); err != nil {
			t.Logf("netns: delete the stale namespace %s: %v: %s", e.Name(), err, bytes.TrimSpace(out))
		} else {
			t.Logf("netns: deleted the stale namespace %s of test process %d, which is gone", e.Name(), pid)
		}
	}
}

// sysctl writes value to /proc/sys/key inside namespace ns.
func sysctl(t testing.TB, ipPath, ns, key, value string) {
	t.Helper()
	cmd := exec.Command(ipPath, "netns", "exec", ns, "sh", "-c", `echo "$1" > "/proc/sys/$2"`, "sh", value, key)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("netns: set %s=%s in %s: %v: %s", key, value, ns, err, bytes.TrimSpace(out))
	}
}

// Hosts returns the hosts in the order they were made.
func (n *Net) Hosts() []*Host { return n.hosts }

// Command returns a command that runs name with args inside h's network
// namespace (through `ip netns exec`), in its own process group. ctx kills
// it as in [exec.CommandContext].
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.net.ip, append([]string{"netns", "exec", h.Name, name}, args...)...)
	setProcessGroup(cmd)
	return cmd
}

// SetLink takes h's interface down or brings it back up, as when a cable is
// pulled and plugged back in. The IPv4 address stays; the kernel removes
// the IPv6 link-local address while the link is down and adds it back.
func (h *Host) SetLink(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command(h.net.ip, "-n", h.Name, "link", "set", h.Iface, state).CombinedOutput(); err != nil {
		return fmt.Errorf("set link %s %s in %s: %v: %s", h.Iface, state, h.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// LinkLocal returns h's IPv6 link-local address on Iface, or an error when
// it has none (for example while the link is down).
func (h *Host) LinkLocal() (netip.Addr, error) {
	out, err := exec.Command(h.net.ip, "-n", h.Name, "-j", "-6", "addr", "show", "dev", h.Iface, "scope", "link").Output()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read addresses of %s in %s: %w", h.Iface, h.Name, err)
	}
	var ifaces []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &ifaces); err != nil {
		return netip.Addr{}, fmt.Errorf("read addresses of %s in %s: %w", h.Iface, h.Name, err)
	}
	for _, ifc := range ifaces {
		for _, a := range ifc.AddrInfo {
			if addr, err := netip.ParseAddr(a.Local); err == nil && addr.IsLinkLocalUnicast() {
				return addr.WithZone(h.Iface), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s in %s has no IPv6 link-local address", h.Iface, h.Name)
}

// GoodbyeWithin bounds how long a test waits for a browser to drop a
// machine after its responder said goodbye (or for a responder to exit
// on SIGTERM): a goodbye removes the records one second after it (RFC
// 6762 §10.1), while without one they would stay until 80 % of their
// TTL (96 s for the 120 s our responders use). The bound tells the two
// apart with room for a loaded machine; how fast the removal comes is
// for bench/, not for a test's deadline.
const GoodbyeWithin = 30 * time.Second

// WaitFor polls cond every 20 ms until it returns true, and stops t with
// Fatal when it has not within timeout.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("condition not met within %v", timeout)
	}
}

// Poll polls cond every 20 ms until it returns true or timeout passes, and
// reports whether it returned true.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}
