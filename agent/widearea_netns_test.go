package agent

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv/bind"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// wideAreaConfig writes an agent.toml that registers in srv's zone with
// keyFile (srv's key when empty) and returns its path.
func wideAreaConfig(t *testing.T, srv *bind.Server, keyFile string) string {
	t.Helper()
	if keyFile == "" {
		keyFile = srv.KeyFile
	}
	p := filepath.Join(t.TempDir(), "agent.toml")
	text := fmt.Sprintf("[wide-area]\ndomain = %q\nserver = %q\ntsig-key = %q\n", srv.Zone, srv.Addr, keyFile)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// resolvConf writes a resolv.conf naming srv and search domains.
func resolvConf(t *testing.T, srv *bind.Server, search ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "resolv.conf")
	text := "nameserver " + srv.Addr.String() + "\n"
	if len(search) > 0 {
		text += "search " + strings.Join(search, " ") + "\n"
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func aclFile(t *testing.T) string {
	t.Helper()
	acl, err := filepath.Abs("testdata/acl")
	if err != nil {
		t.Fatal(err)
	}
	return acl
}

// TestWideAreaRegistration: an agent with [wide-area] registers its
// PTR, SRV, TXT and address records in a real BIND zone (as dig sees
// them); `discover --domain` on a master lists it, trusted, and lists it
// once with both sources when multicast DNS sees it too; a new load is
// seen by `discover --watch --domain` as an update; and when the agent
// stops its records are deleted and the watcher reports the removal.
func TestWideAreaRegistration(t *testing.T) {
	n := netns.New(t, 3)
	nsHost, a, master := n.Hosts()[0], n.Hosts()[1], n.Hosts()[2]
	srv := bind.Start(t, nsHost, bind.Options{})
	root := fakeRoot(t, map[string]string{"proc/loadavg": "0.00 0.00 0.00 1/100 1000\n", "gnu/store/.keep": ""})
	agent, _ := startAgent(t, a, "builder-a", "--config", wideAreaConfig(t, srv, ""),
		"--detect-root", root, "--store", "/gnu/store", "--refresh-interval", "1s")
	netns.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(agent.Output(), "wide-area: registered") })

	zone := srv.Zone
	inst := "builder-a._guix-offload._tcp." + zone
	host := "builder-a.guix-offload." + zone
	if got := strings.TrimSpace(srv.Dig(t, "_guix-offload._tcp."+zone, "PTR")); got != inst {
		t.Errorf("dig PTR: %q; want %q", got, inst)
	}
	if got := strings.TrimSpace(srv.Dig(t, inst, "SRV")); got != "0 0 2222 "+host {
		t.Errorf("dig SRV: %q", got)
	}
	if got := strings.TrimSpace(srv.Dig(t, host, "A")); got != a.Addr.String() {
		t.Errorf("dig A: %q; want %s", got, a.Addr)
	}
	if got := srv.Dig(t, inst, "TXT"); !strings.Contains(got, `"sig=`) || !strings.Contains(got, `"txtvers=1"`) {
		t.Errorf("dig TXT: %q", got)
	}

	rc := resolvConf(t, srv)
	dns := []string{"--domain", strings.TrimSuffix(zone, "."), "--resolv-conf", rc, "--acl", aclFile(t)}
	got := find(discover(t, master, append(dns, "--mdns=false")...), "builder-a")
	if len(got) != 1 || !got[0].Trusted || got[0].Source != "dns:builders.test" || got[0].Name != a.Addr.String() || got[0].Port != 2222 {
		t.Fatalf("discover --domain: %+v", got)
	}
	netns.WaitFor(t, 30*time.Second, func() bool {
		got = find(discover(t, master, dns...), "builder-a")
		return len(got) == 1 && strings.Contains(got[0].Source, "mdns:") && strings.Contains(got[0].Source, "dns:builders.test")
	})
	if !got[0].Trusted {
		t.Errorf("seen through both sources but not trusted: %s", got[0].TrustReason)
	}

	bin := netns.BuildBinary(t, discoverPkg)
	watch := master.Start(t, bin, append([]string{"discover", "--watch", "--format", "json", "--mdns=false"}, dns...)...)
	events := func(kind string) []float64 {
		var out []float64
		for _, line := range strings.Split(watch.Output(), "\n") {
			var ev struct {
				Event    string  `json:"event"`
				Instance string  `json:"instance"`
				Load     float64 `json:"load"`
				Source   string  `json:"source"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == kind && ev.Instance == "builder-a" && ev.Source == "dns:builders.test" {
				out = append(out, ev.Load)
			}
		}
		return out
	}
	netns.WaitFor(t, 20*time.Second, func() bool { return len(events("add")) == 1 })
	(&machineState{root: root}).setLoad(t, "64.00")
	// One refresh interval of the agent (1 s) plus one poll of the zone
	// (5 s), with room for a loaded machine.
	netns.WaitFor(t, 15*time.Second, func() bool {
		u := events("update")
		return len(u) > 0 && u[len(u)-1] > 0.1
	})

	if err := agent.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := agent.Wait(20 * time.Second); err != nil {
		t.Errorf("agent exit: %v", err)
	}
	if !strings.Contains(agent.Output(), "wide-area: records deleted") {
		t.Errorf("agent did not delete its records:\n%s", agent.Output())
	}
	for _, q := range [][]string{{"_guix-offload._tcp." + zone, "PTR"}, {inst, "TXT"}, {inst, "SRV"}, {host, "A"}} {
		if got := strings.TrimSpace(srv.Dig(t, q...)); got != "" {
			t.Errorf("after stop, dig %s: %q", strings.Join(q, " "), got)
		}
	}
	netns.WaitFor(t, 15*time.Second, func() bool { return len(events("remove")) == 1 })
}

// TestWideAreaBadKey: a key the server does not know, or one with the
// wrong secret, is refused: the agent says so in one clear line, keeps
// retrying, and goes on announcing over multicast DNS.
func TestWideAreaBadKey(t *testing.T) {
	n := netns.New(t, 2)
	nsHost, a := n.Hosts()[0], n.Hosts()[1]
	srv := bind.Start(t, nsHost, bind.Options{})
	wrong := filepath.Join(t.TempDir(), "wrong.key")
	// Same name, another secret.
	out, err := exec.Command("tsig-keygen", "-a", "hmac-sha256", srv.KeyName).Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, out, 0o600); err != nil {
		t.Fatal(err)
	}
	agent, _ := startAgent(t, a, "builder-a", "--config", wideAreaConfig(t, srv, wrong))
	netns.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(agent.Output(), "wide-area: registration failed") })
	// Backoff retries (1 s, 2 s, 4 s) add no line for the same error.
	time.Sleep(8 * time.Second)
	logged := agent.Output()
	if n := strings.Count(logged, "wide-area: registration failed"); n != 1 {
		t.Errorf("%d failure lines; want one:\n%s", n, logged)
	}
	if !strings.Contains(logged, "bad TSIG key") || !strings.Contains(logged, wrong) {
		t.Errorf("failure does not say the key is bad and which file it is:\n%s", logged)
	}
	if strings.Contains(logged, "wide-area: registered") {
		t.Errorf("registered with a wrong key")
	}
	if got := strings.TrimSpace(srv.Dig(t, "_guix-offload._tcp."+srv.Zone, "PTR")); got != "" {
		t.Errorf("zone holds %q after a refused update", got)
	}
	if !strings.Contains(logged, "msg=advertising") || agent.Exited() {
		t.Errorf("multicast announcing stopped:\n%s", logged)
	}
}

// TestWideAreaUntrusted: what else the zone may hold is listed but not
// trusted: a forged unsigned record, and the leftovers of a crashed
// agent once their signature is stale (simulated by a record signed 11
// minutes ago: the ACL policy's bound is 10). A crashed agent's fresh
// records stay in the zone (nobody deleted them) until then.
func TestWideAreaUntrusted(t *testing.T) {
	n := netns.New(t, 3)
	nsHost, a, master := n.Hosts()[0], n.Hosts()[1], n.Hosts()[2]
	srv := bind.Start(t, nsHost, bind.Options{})
	zone := srv.Zone

	agent, _ := startAgent(t, a, "crashed", "--config", wideAreaConfig(t, srv, ""))
	netns.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(agent.Output(), "wide-area: registered") })
	if err := agent.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait(10 * time.Second)
	if got := srv.Dig(t, "crashed._guix-offload._tcp."+zone, "TXT"); !strings.Contains(got, "sig=") {
		t.Errorf("a crashed agent's TXT record is gone: %q", got)
	}

	_, testHostKey := writeHostKey(t, t.TempDir())
	key, err := pki.ReadPrivateKey("testdata/signing-key.sec")
	if err != nil {
		t.Fatal(err)
	}
	ann := &discovery.Announcement{Instance: "stale", Addresses: []netip.Addr{a.Addr}, Load: discovery.Unknown, FreeDisk: discovery.Unknown,
		Time: time.Now().Add(-11 * time.Minute).Truncate(time.Second)}
	ann.Systems, ann.User, ann.HostKey, ann.Port, ann.ParallelBuilds, ann.Speed = []string{"x86_64-linux"}, "offload", testHostKey, 22, 1, 1
	if err := ann.Sign(key); err != nil {
		t.Fatal(err)
	}
	quote := func(txt []string) string {
		return `"` + strings.Join(txt, `" "`) + `"`
	}
	script := strings.Join([]string{
		"update add _guix-offload._tcp." + zone + " 120 PTR stale._guix-offload._tcp." + zone,
		"update add stale._guix-offload._tcp." + zone + " 120 SRV 0 0 22 stale.guix-offload." + zone,
		"update add stale._guix-offload._tcp." + zone + " 120 TXT " + quote(ann.TXT()),
		"update add stale.guix-offload." + zone + " 120 A " + a.Addr.String(),
		"update add _guix-offload._tcp." + zone + " 120 PTR forged._guix-offload._tcp." + zone,
		"update add forged._guix-offload._tcp." + zone + " 120 SRV 0 0 22 forged.guix-offload." + zone,
		`update add forged._guix-offload._tcp.` + zone + ` 120 TXT "txtvers=1" "systems=x86_64-linux" "user=root" "host-key=` + testHostKey + `"`,
		"update add forged.guix-offload." + zone + " 120 A " + master.Addr.String(),
	}, "\n")
	if out, err := srv.NSUpdate(script); err != nil {
		t.Fatalf("nsupdate: %v\n%s", err, out)
	}

	got := discover(t, master, "--domain", strings.TrimSuffix(zone, "."), "--resolv-conf", resolvConf(t, srv), "--mdns=false", "--acl", aclFile(t))
	judgment := map[string]string{}
	for _, g := range got {
		judgment[g.Instance] = fmt.Sprint(g.Trusted, ": ", g.TrustReason)
	}
	if v := judgment["crashed"]; !strings.HasPrefix(v, "true") {
		t.Errorf("crashed agent's fresh records: %s", v)
	}
	if v := judgment["stale"]; !strings.HasPrefix(v, "false") || !strings.Contains(v, "stale") {
		t.Errorf("stale records: %q; want untrusted, signature stale", v)
	}
	if v := judgment["forged"]; !strings.HasPrefix(v, "false") || !strings.Contains(v, "not signed") {
		t.Errorf("forged unsigned records: %q; want untrusted, unsigned", v)
	}
	if len(got) != 3 {
		t.Errorf("listed %d machines; want 3: %v", len(got), judgment)
	}
}

// TestWideAreaBrowseDomains: with no domain given, the master browses
// the domains the network offers (b._dns-sd._udp under its search
// domain) and finds the agent there.
func TestWideAreaBrowseDomains(t *testing.T) {
	n := netns.New(t, 3)
	nsHost, a, master := n.Hosts()[0], n.Hosts()[1], n.Hosts()[2]
	// The search domain "site.test" points browsers at builders.test.
	srv := bind.Start(t, nsHost, bind.Options{ExtraZones: map[string][]string{
		"site.test.": {"b._dns-sd._udp IN PTR builders.test.", "lb._dns-sd._udp IN PTR builders.test."},
	}})
	agent, _ := startAgent(t, a, "builder-a", "--config", wideAreaConfig(t, srv, ""))
	netns.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(agent.Output(), "wide-area: registered") })
	got := find(discover(t, master, "--resolv-conf", resolvConf(t, srv, "site.test"), "--mdns=false", "--acl", aclFile(t)), "builder-a")
	if len(got) != 1 || !got[0].Trusted || got[0].Source != "dns:builders.test" {
		t.Fatalf("discover with browse domains: %+v", got)
	}
	if slices.ContainsFunc(got, func(a *discovery.Announcement) bool { return a.Ignored != "" }) {
		t.Errorf("ignored: %+v", got)
	}
}

// TestWideAreaServerDown: while the name server does not answer, the
// agent says so once and retries with backoff, announcing over
// multicast DNS all along; when the server comes up it registers.
func TestWideAreaServerDown(t *testing.T) {
	n := netns.New(t, 2)
	nsHost, a := n.Hosts()[0], n.Hosts()[1]
	// The configuration names the server before it runs.
	conf := filepath.Join(t.TempDir(), "agent.toml")
	keyDir := t.TempDir()
	keyFile := filepath.Join(keyDir, "agents.key")
	text := fmt.Sprintf("[wide-area]\ndomain = \"builders.test\"\nserver = %q\ntsig-key = %q\n", nsHost.Addr, keyFile)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	agent, _ := startAgent(t, a, "builder-a", "--config", conf)
	netns.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(agent.Output(), "wide-area: registration failed") })
	time.Sleep(4 * time.Second)
	if n := strings.Count(agent.Output(), "wide-area: registration failed"); n != 1 {
		t.Errorf("%d failure lines while the server is down; want one:\n%s", n, agent.Output())
	}
	srv := bind.Start(t, nsHost, bind.Options{})
	key, err := os.ReadFile(srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	// Backoff doubles from 1 s: within about 30 s of the first failure.
	netns.WaitFor(t, 40*time.Second, func() bool { return strings.Contains(agent.Output(), "wide-area: registered") })
	if got := strings.TrimSpace(srv.Dig(t, "_guix-offload._tcp."+srv.Zone, "PTR")); got != "builder-a._guix-offload._tcp."+srv.Zone {
		t.Errorf("dig PTR after the server came up: %q", got)
	}
	if agent.Exited() || !strings.Contains(agent.Output(), "msg=advertising") {
		t.Errorf("multicast announcing stopped:\n%s", agent.Output())
	}
}

// TestWideAreaAcrossRouter: beyond one LAN. A build machine on one
// subnet, a master and its name server on another, joined by a router
// that forwards unicast and no multicast (netns.Subnets). The machine
// registers in the zone across the router; on its own subnet a master
// sees it over multicast DNS; the master on the other subnet does not
// with multicast DNS alone, and finds it, trusted, at its address on the
// other subnet, through the zone.
func TestWideAreaAcrossRouter(t *testing.T) {
	left, right := netns.Subnets(t, 2, 2)
	a, neighbour := left.Hosts()[0], left.Hosts()[1]
	nsHost, master := right.Hosts()[0], right.Hosts()[1]
	srv := bind.Start(t, nsHost, bind.Options{})
	root := fakeRoot(t, map[string]string{"proc/loadavg": "0.00 0.00 0.00 1/100 1000\n", "gnu/store/.keep": ""})
	agent, _ := startAgent(t, a, "builder-a", "--config", wideAreaConfig(t, srv, ""),
		"--detect-root", root, "--store", "/gnu/store")
	netns.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(agent.Output(), "wide-area: registered") })

	rc := resolvConf(t, srv) // no search domains: no browse domains either
	mdnsOnly := []string{"--resolv-conf", rc, "--acl", aclFile(t)}
	netns.WaitFor(t, 30*time.Second, func() bool {
		got := find(discover(t, neighbour, mdnsOnly...), "builder-a")
		return len(got) == 1 && got[0].Trusted && strings.HasPrefix(got[0].Source, "mdns:")
	})
	if got := find(discover(t, master, mdnsOnly...), "builder-a"); len(got) != 0 {
		t.Fatalf("multicast DNS crossed the router: %+v", got[0])
	}
	got := find(discover(t, master, append(mdnsOnly, "--domain", strings.TrimSuffix(srv.Zone, "."))...), "builder-a")
	if len(got) != 1 || !got[0].Trusted || got[0].Source != "dns:builders.test" || got[0].Name != a.Addr.String() {
		t.Fatalf("discover --domain across the router: %+v", got)
	}
	if right.Prefix.Contains(a.Addr) {
		t.Errorf("the machine's address %s is on the master's subnet %s", a.Addr, right.Prefix)
	}
}
