package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

const agentPkg = "github.com/guix-offload/guix-offload/cmd/guix-offload-agent"

func TestMain(m *testing.M) {
	uncache := testenv.PrivateCache()
	code := m.Run()
	uncache()
	netns.CleanupBinaries()
	os.Exit(code)
}

// startAgent starts guix-offload-agent on h with a fresh host key, the
// test signing key and a temporary store, plus extra flags.
func startAgent(t *testing.T, h *netns.Host, name string, extra ...string) (*netns.Proc, string) {
	t.Helper()
	bin := netns.BuildBinary(t, agentPkg)
	dir := t.TempDir()
	keyPath, hostKey := writeHostKey(t, dir)
	sigKey, err := filepath.Abs("testdata/signing-key.sec")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--config", filepath.Join(dir, "none.toml"), "--name", name,
		"--host-key-file", keyPath, "--signing-key", sigKey, "--store", dir, "--port", "2222"}, extra...)
	if err := os.WriteFile(filepath.Join(dir, "none.toml"), []byte("# empty\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := h.Start(t, bin, args...)
	netns.WaitFor(t, 20*time.Second, func() bool {
		return strings.Contains(p.Output(), `msg=advertising`) || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("agent exited: %s", p.Output())
	}
	return p, hostKey
}

// resolved returns the resolved avahi-browse lines for instance over
// protocol ("IPv4" or "IPv6").
func resolved(out, instance, protocol string) []netns.BrowseLine {
	var ls []netns.BrowseLine
	for _, l := range netns.ParseBrowse(out) {
		if l.Event == "=" && l.Instance == instance && l.Protocol == protocol {
			ls = append(ls, l)
		}
	}
	return ls
}

func removed(out, instance string) bool {
	return slices.ContainsFunc(netns.ParseBrowse(out), func(l netns.BrowseLine) bool {
		return l.Event == "-" && l.Instance == instance
	})
}

// TestAgentSeenByAvahi: an agent on host A is seen by avahi-browse on
// host B with every TXT field, signed, and its SIGTERM goodbye removes it
// from B within 2 s.
func TestAgentSeenByAvahi(t *testing.T) {
	n := netns.New(t, 2)
	a, b := n.Hosts()[0], n.Hosts()[1]
	av := b.StartAvahi(t)
	browse := av.Start(t, "avahi-browse", "--resolve", "--parsable", "--no-db-lookup", discovery.ServiceType)
	agent, hostKey := startAgent(t, a, "builder-a")

	var line netns.BrowseLine
	netns.WaitFor(t, 20*time.Second, func() bool {
		ls := resolved(browse.Output(), "builder-a", "IPv4")
		if len(ls) > 0 {
			line = ls[len(ls)-1]
		}
		return len(ls) > 0
	})
	if line.Addr != a.Addr.String() || line.Port != "2222" || line.Host != "builder-a-guix-offload.local" || line.Iface != b.Iface {
		t.Errorf("avahi resolved %s:%s (%s) on %s; want %s:2222 (builder-a-guix-offload.local) on %s", line.Addr, line.Port, line.Host, line.Iface, a.Addr, b.Iface)
	}
	port, _ := strconv.Atoi(line.Port)
	ann, err := discovery.ParseTXT(line.Instance, port, line.TXT)
	if err != nil {
		t.Fatalf("TXT as avahi saw it %q: %v", line.TXT, err)
	}
	keys := map[string]bool{}
	for _, s := range line.TXT {
		k, _, _ := strings.Cut(s, "=")
		keys[k] = true
	}
	for _, k := range []string{"txtvers", "systems", "parallel-builds", "speed", "features", "user", "host-key", "overload-threshold", "load", "free-disk", "addrs", "signing-key", "ts", "sig"} {
		// features is absent when there are none (no /dev/kvm here).
		if !keys[k] && !(k == "features" && len(ann.Features) == 0) {
			t.Errorf("TXT as avahi saw it lacks %s: %q", k, line.TXT)
		}
	}
	if err := ann.Verify(); err != nil {
		t.Errorf("signature over what avahi saw: %v", err)
	}
	if ann.HostKey != hostKey || ann.User != "offload" || ann.FreeDisk <= 0 || ann.Load < 0 || len(ann.Systems) == 0 {
		t.Errorf("announcement %+v", ann)
	}
	if !slices.Contains(ann.SignedAddresses, a.Addr) {
		t.Errorf("addrs %v does not list %v", ann.SignedAddresses, a.Addr)
	}
	if ll, err := a.LinkLocal(); err == nil && !slices.Contains(ann.SignedAddresses, ll.WithZone("")) {
		t.Errorf("addrs %v does not list the IPv6 link-local %v", ann.SignedAddresses, ll)
	}
	if time.Since(ann.Time) > time.Minute || time.Until(ann.Time) > time.Minute {
		t.Errorf("ts %v is not now", ann.Time)
	}

	start := time.Now()
	if err := agent.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// That Run returns at once on cancel is TestRunAnnouncesEveryField's
	// (in fake time); here the real process only has to exit, and its
	// goodbye to be seen well before a TTL would run out.
	if err := agent.Wait(netns.GoodbyeWithin); err != nil {
		t.Errorf("agent after SIGTERM: %v", err)
	}
	t.Logf("agent exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	netns.WaitFor(t, netns.GoodbyeWithin, func() bool { return removed(browse.Output(), "builder-a") })
	t.Logf("goodbye seen %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// TestAgentSurvivesLinkLoss: host A's link goes down and comes back; the
// agent notices, and a browser that forgot it sees it again.
func TestAgentSurvivesLinkLoss(t *testing.T) {
	n := netns.New(t, 2)
	a, b := n.Hosts()[0], n.Hosts()[1]
	av := b.StartAvahi(t)
	agent, _ := startAgent(t, a, "builder-a")
	browse := av.Start(t, "avahi-browse", "--resolve", "--parsable", "--no-db-lookup", discovery.ServiceType)
	netns.WaitFor(t, 20*time.Second, func() bool { return len(resolved(browse.Output(), "builder-a", "IPv4")) > 0 })

	if err := a.SetLink(false); err != nil {
		t.Fatal(err)
	}
	netns.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(agent.Output(), "no usable network interface")
	})
	// B forgets everything (a fresh cache), and nothing answers now.
	av.Restart(t)
	out, err := av.Command(t.Context(), "avahi-browse", "--resolve", "--parsable", "--terminate", "--no-db-lookup", discovery.ServiceType).CombinedOutput()
	if err != nil {
		t.Fatalf("avahi-browse --terminate: %v: %s", err, out)
	}
	if len(resolved(string(out), "builder-a", "IPv4")) > 0 {
		t.Fatalf("builder-a answered while its link was down:\n%s", out)
	}
	browse = av.Start(t, "avahi-browse", "--resolve", "--parsable", "--no-db-lookup", discovery.ServiceType)

	if err := a.SetLink(true); err != nil {
		t.Fatal(err)
	}
	netns.WaitFor(t, 20*time.Second, func() bool { return len(resolved(browse.Output(), "builder-a", "IPv4")) > 0 })
	if agent.Exited() {
		t.Fatalf("agent exited: %s", agent.Output())
	}
	// At least twice: at start and when the link came back (a poll that
	// catches the link up before its IPv6 address adds a third).
	if c := strings.Count(agent.Output(), "msg=advertising"); c < 2 {
		t.Errorf("agent advertised %d times; want 2 or more (start, link back):\n%s", c, agent.Output())
	}
}

// TestAgentBesideAvahi: on a host whose own avahi-daemon answers for its
// host name, an agent named after the host neither makes avahi-daemon
// see a conflict nor is hidden by it: a browser on another host resolves
// both.
func TestAgentBesideAvahi(t *testing.T) {
	n := netns.New(t, 2)
	a, b := n.Hosts()[0], n.Hosts()[1]
	// A second interface, which avahi-daemon (restricted to the bridge
	// interface) leaves out but the agent advertises from: the address
	// sets the two publish differ.
	for _, args := range [][]string{
		{"link", "add", "extra0", "type", "veth", "peer", "name", "extra1"},
		{"addr", "add", "169.254.250.250/16", "dev", "extra0"},
		{"link", "set", "extra1", "up"},
		{"link", "set", "extra0", "multicast", "on", "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", a.Name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	local := a.StartAvahi(t) // publishes a.Name.local
	remote := b.StartAvahi(t)
	browse := remote.Start(t, "avahi-browse", "--resolve", "--parsable", "--no-db-lookup", discovery.ServiceType)
	startAgent(t, a, a.Name)
	netns.WaitFor(t, 20*time.Second, func() bool { return len(resolved(browse.Output(), a.Name, "IPv4")) > 0 })
	// Give a conflict time to show: avahi-daemon reacts within a second.
	time.Sleep(3 * time.Second)
	out, err := remote.Command(t.Context(), "avahi-resolve", "--name", a.Name+".local").CombinedOutput()
	if err != nil || !strings.Contains(string(out), a.Addr.String()) {
		t.Errorf("avahi-resolve %s.local on %s: %v: %s", a.Name, b.Name, err, out)
	}
	if strings.Contains(strings.ToLower(local.Output()), "conflict") {
		t.Errorf("avahi-daemon on %s saw a conflict:\n%s", a.Name, local.Output())
	}
}
