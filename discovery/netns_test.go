package discovery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// The test binary doubles as a publisher run inside a namespace (one
// process per namespace): `TESTBINARY discovery-helper publish …`.
func TestMain(m *testing.M) {
	if len(os.Args) >= 2 && os.Args[1] == "discovery-helper" {
		if err := helper(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "discovery-helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	uncache := testenv.PrivateCache()
	code := m.Run()
	uncache()
	netns.CleanupBinaries()
	os.Exit(code)
}

// helper publish INSTANCE IFACE ADDR,ADDR… KEYFILE|- announces a build
// machine with the responder guix-offload-agent uses ([Respond]),
// signed with KEYFILE unless "-". Each SIGUSR1 raises the load by 0.5 and
// re-announces the TXT record; SIGTERM says goodbye and exits.
func helper(args []string) error {
	if len(args) == 1 && args[0] == "hold5353" {
		// Hold the multicast DNS port without sharing it, as some
		// responders do, until killed.
		c, err := net.ListenPacket("udp4", "0.0.0.0:5353")
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Println("holding")
		select {}
	}
	if len(args) >= 1 && args[0] == "attack" {
		return attack(args[1:])
	}
	if len(args) == 3 && args[0] == "respond-race" {
		return respondRace(args[1], args[2])
	}
	if len(args) != 5 || args[0] != "publish" {
		return errors.New("usage: discovery-helper publish INSTANCE IFACE ADDRS KEYFILE")
	}
	instance, ifname, addrList, keyFile := args[1], args[2], args[3], args[4]
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	var key *pki.PrivateKey
	if keyFile != "-" {
		if key, err = pki.ReadPrivateKey(keyFile); err != nil {
			return err
		}
	}
	a := &Announcement{Instance: instance, Load: 0.25, FreeDisk: 4096}
	a.Port = 2222
	a.Systems = []string{"x86_64-linux", "i686-linux"}
	a.ParallelBuilds = 3
	a.Speed = 1.5
	a.Features = []string{"kvm"}
	a.User = "offload"
	a.HostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c"
	thr := 0.9
	a.OverloadThreshold = &thr
	for _, s := range strings.Split(addrList, ",") {
		ad, err := netip.ParseAddr(s)
		if err != nil {
			return err
		}
		ad = ad.WithZone("")
		a.Addresses = append(a.Addresses, ad)
	}
	txt := func() ([]string, error) {
		a.Time = time.Now()
		if key != nil {
			if err := a.Sign(key); err != nil {
				return nil, err
			}
		}
		return a.TXT(), a.Check()
	}
	text, err := txt()
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR1)
	ttl := uint32(120)
	if v := os.Getenv("DISCOVERY_HELPER_TTL"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		ttl = uint32(n)
	}
	srv, err := Respond(ResponderConfig{Instance: instance, Host: instance + "-host.local.", Port: a.Port, TXT: text,
		Addrs: a.Addresses, Interfaces: []net.Interface{*ifi}, TTL: ttl})
	if err != nil {
		return err
	}
	fmt.Println("published")
	for s := range sigs {
		if s == syscall.SIGTERM {
			srv.Shutdown()
			fmt.Println("goodbye")
			return nil
		}
		a.Load += 0.5
		text, err := txt()
		if err != nil {
			return err
		}
		srv.SetText(text)
		fmt.Println("load", a.Load)
	}
	return nil
}

func discoverBin(t *testing.T) string {
	return netns.BuildBinary(t, "github.com/guix-offload/guix-offload/cmd/guix-offload")
}

// lookup runs `guix-offload discover --format json ARGS…` on h.
func lookup(t *testing.T, h *netns.Host, args ...string) []*Announcement {
	t.Helper()
	// Built (the first time) before the clock starts.
	bin := discoverBin(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := h.Command(ctx, bin, append([]string{"discover", "--format", "json", "--timeout", "8s"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("discover on %s: %v\n%s", h.Name, err, stderr.String())
	}
	t.Logf("stderr: %s", stderr.String())
	var as []*Announcement
	if err := json.Unmarshal(out, &as); err != nil {
		t.Fatalf("discover output: %v\n%s", err, out)
	}
	return as
}

func named(as []*Announcement, instance string) []*Announcement {
	var out []*Announcement
	for _, a := range as {
		if a.Instance == instance {
			out = append(out, a)
		}
	}
	return out
}

func absTestdata(t *testing.T, name string) string {
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNetnsDiscoverListsOnce: two publishers on two hosts, each with an
// IPv4 and an IPv6 address; discover on a third host lists each exactly
// once, with the announced fields, both addresses merged, and the ACL
// policy's verdict.
func TestNetnsDiscoverListsOnce(t *testing.T) {
	nw := netns.New(t, 3)
	h := nw.Hosts()
	for i, name := range []string{"signed-builder", "unsigned-builder"} {
		ll, err := h[i].LinkLocal()
		if err != nil {
			t.Fatal(err)
		}
		key := "-"
		if i == 0 {
			key = absTestdata(t, "signing-key.sec")
		}
		p := h[i].Start(t, os.Args[0], "discovery-helper", "publish", name, h[i].Iface, h[i].Addr.String()+","+ll.String(), key)
		netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(p.Output(), "published") || p.Exited() })
	}
	var as []*Announcement
	netns.WaitFor(t, 40*time.Second, func() bool {
		as = lookup(t, h[2], "--acl", absTestdata(t, "acl"))
		return len(named(as, "signed-builder")) > 0 && len(named(as, "unsigned-builder")) > 0
	})
	if len(as) != 2 {
		t.Fatalf("discover listed %d machines, want 2: %+v", len(as), as)
	}
	s := named(as, "signed-builder")[0]
	ll, _ := h[0].LinkLocal()
	wantAddrs := []string{h[0].Addr.String(), ll.WithZone(h[2].Iface).String()}
	var gotAddrs []string
	for _, ad := range s.Addresses {
		gotAddrs = append(gotAddrs, ad.String())
	}
	if !slices.Equal(gotAddrs, wantAddrs) {
		t.Errorf("addresses %q, want %q", gotAddrs, wantAddrs)
	}
	if s.Name != h[0].Addr.String() || s.Port != 2222 || s.User != "offload" || s.ParallelBuilds != 3 ||
		s.Speed != 1.5 || !slices.Equal(s.Systems, []string{"x86_64-linux", "i686-linux"}) ||
		!slices.Equal(s.Features, []string{"kvm"}) || s.Load != 0.25 || s.FreeDisk != 4096 ||
		s.OverloadThreshold == nil || *s.OverloadThreshold != 0.9 || !strings.HasPrefix(s.SigningKey, "ecdsa-ed25519:") ||
		s.Source != "mdns:"+h[2].Iface {
		t.Errorf("signed-builder as discovered: %+v", s)
	}
	if !s.Trusted || !strings.Contains(s.TrustReason, "signed by a key in") {
		t.Errorf("signed-builder: trusted %v (%s)", s.Trusted, s.TrustReason)
	}
	u := named(as, "unsigned-builder")[0]
	if u.Trusted || !strings.Contains(u.TrustReason, "not signed") {
		t.Errorf("unsigned-builder: trusted %v (%s)", u.Trusted, u.TrustReason)
	}

	// --interface: the named one works; an unknown one is an error that
	// names it.
	if got := lookup(t, h[2], "--trust", "any", "--interface", h[2].Iface); len(got) != 2 {
		t.Errorf("--interface %s: %d machines", h[2].Iface, len(got))
	}
	{
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := h[2].Command(ctx, discoverBin(t), "discover", "--trust", "any", "--interface", "nosuch0").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "find interface nosuch0") || !strings.Contains(string(out), "hint: list the interfaces") {
			t.Errorf("--interface nosuch0: %v\n%s", err, out)
		}
	}

	// --format scm prints only the trusted machine, as Guile reads it.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := h[2].Command(ctx, discoverBin(t), "discover", "--format", "scm", "--acl", absTestdata(t, "acl")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `(name "`+h[0].Addr.String()+`")`) || strings.Contains(string(out), h[1].Addr.String()) {
		t.Errorf("--format scm:\n%s", out)
	}
}

// watchLines collects the NDJSON events a `discover --watch` process
// printed so far.
func watchLines(t *testing.T, p *netns.Proc) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad NDJSON line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func countEvents(lines []map[string]any, kind, instance string) int {
	n := 0
	for _, m := range lines {
		if m["event"] == kind && m["instance"] == instance {
			n++
		}
	}
	return n
}

// TestNetnsWatchAddUpdateRemove: `discover --watch --cache FILE` on one
// host sees a machine on another appear, change its load (update) and
// say goodbye (removed long before the TTL would run out), and keeps the
// snapshot file current.
func TestNetnsWatchAddUpdateRemove(t *testing.T) {
	nw := netns.New(t, 2)
	pub, master := nw.Hosts()[0], nw.Hosts()[1]
	cache := filepath.Join(t.TempDir(), "discover.json")
	watch := master.Start(t, discoverBin(t), "discover", "--watch", "--format", "json", "--trust", "any", "--cache", cache)
	p := pub.Start(t, os.Args[0], "discovery-helper", "publish", "watched", pub.Iface, pub.Addr.String(), absTestdata(t, "signing-key.sec"))
	netns.WaitFor(t, 30*time.Second, func() bool { return countEvents(watchLines(t, watch), "add", "watched") == 1 })

	// The snapshot follows each event (within a tenth of a second on an
	// idle machine).
	snapshot := func(ok func(*Snapshot) bool) {
		t.Helper()
		var snap *Snapshot
		var err error
		if !netns.Poll(20*time.Second, func() bool {
			snap, err = ReadSnapshot(cache)
			return err == nil && ok(snap)
		}) {
			t.Fatalf("snapshot: %+v, %v", snap, err)
		}
	}
	snapshot(func(s *Snapshot) bool {
		return len(s.Machines) == 1 && s.Machines[0].Instance == "watched" && s.Machines[0].Trusted && !s.Stale(time.Now())
	})

	if err := p.Stop(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	netns.WaitFor(t, 10*time.Second, func() bool {
		for _, m := range watchLines(t, watch) {
			if m["event"] == "update" && m["instance"] == "watched" && m["load"] == 0.75 {
				return true
			}
		}
		return false
	})
	snapshot(func(s *Snapshot) bool { return len(s.Machines) == 1 && s.Machines[0].Load == 0.75 })

	if err := p.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	netns.WaitFor(t, netns.GoodbyeWithin, func() bool { return countEvents(watchLines(t, watch), "remove", "watched") == 1 })
	t.Logf("removed %v after the goodbye", time.Since(start).Round(time.Millisecond))
	snapshot(func(s *Snapshot) bool { return len(s.Machines) == 0 })
	if n := countEvents(watchLines(t, watch), "add", "watched"); n != 1 {
		t.Errorf("%d add events, want 1", n)
	}
}

// avahiTXT is a valid announcement as a person would publish it with
// avahi-publish (unsigned).
func avahiTXT(extra ...string) []string {
	return append([]string{"txtvers=1", "systems=aarch64-linux", "parallel-builds=2", "speed=3.0",
		"user=builder", "host-key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c",
		"load=0.10", "free-disk=777"}, extra...)
}

// TestNetnsAvahiPublishSeenByDiscover: services published with Avahi's
// avahi-publish appear in `discover --trust any`: a valid one with its
// fields, one with a malformed TXT reported as ignored with the field
// named. discover runs both on another host and on the host where
// avahi-daemon itself holds port 5353.
func TestNetnsAvahiPublishSeenByDiscover(t *testing.T) {
	nw := netns.New(t, 2)
	avahiHost, other := nw.Hosts()[0], nw.Hosts()[1]
	av := avahiHost.StartAvahi(t)
	good := av.Start(t, "avahi-publish", append([]string{"-s", "avahi builder", ServiceType, "2200"}, avahiTXT()...)...)
	bad := av.Start(t, "avahi-publish", append([]string{"-s", "broken", ServiceType, "22"}, avahiTXT("parallel-builds=many")...)...)
	for _, p := range []*netns.Proc{good, bad} {
		netns.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(p.Output(), "Established") || p.Exited() })
	}
	for _, h := range []*netns.Host{other, avahiHost} {
		t.Run(h.Name, func(t *testing.T) {
			var as []*Announcement
			netns.WaitFor(t, 40*time.Second, func() bool {
				as = lookup(t, h, "--trust", "any")
				return len(named(as, "avahi builder")) > 0 && len(named(as, "broken")) > 0
			})
			a := named(as, "avahi builder")[0]
			if len(named(as, "avahi builder")) != 1 || !a.Trusted || a.Port != 2200 || a.User != "builder" ||
				!slices.Equal(a.Systems, []string{"aarch64-linux"}) || a.Speed != 3 || a.ParallelBuilds != 2 ||
				a.FreeDisk != 777 || a.Name != avahiHost.Addr.String() || a.Ignored != "" {
				t.Errorf("avahi builder as discovered: %+v", a)
			}
			b := named(as, "broken")[0]
			if b.Trusted || !strings.Contains(b.Ignored, "parallel-builds") || !strings.Contains(b.TrustReason, "ignored") {
				t.Errorf("broken as discovered: trusted %v, ignored %q, reason %q", b.Trusted, b.Ignored, b.TrustReason)
			}
			// The table says so too.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			out, err := h.Command(ctx, discoverBin(t), "discover", "--trust", "any", "--timeout", "8s").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "ignored: TXT parallel-builds") {
				t.Errorf("table (%v):\n%s", err, out)
			}
		})
	}
}

// TestNetnsAvahiBrowseSeesUs: avahi-browse on another host resolves what
// our responder publishes, with every TXT field, and the record it shows
// decodes and verifies.
func TestNetnsAvahiBrowseSeesUs(t *testing.T) {
	nw := netns.New(t, 2)
	pub, avahiHost := nw.Hosts()[0], nw.Hosts()[1]
	av := avahiHost.StartAvahi(t)
	p := pub.Start(t, os.Args[0], "discovery-helper", "publish", "seen-by-avahi", pub.Iface, pub.Addr.String(), absTestdata(t, "signing-key.sec"))
	netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(p.Output(), "published") || p.Exited() })
	browse := av.Start(t, "avahi-browse", "--resolve", "--parsable", "--no-db-lookup", ServiceType)
	var line netns.BrowseLine
	netns.WaitFor(t, 30*time.Second, func() bool {
		for _, l := range netns.ParseBrowse(browse.Output()) {
			if l.Event == "=" && l.Instance == "seen-by-avahi" && l.Protocol == "IPv4" && l.Port != "" {
				line = l
				return true
			}
		}
		return false
	})
	if line.Addr != pub.Addr.String() || line.Port != "2222" {
		t.Errorf("avahi resolved %s port %s", line.Addr, line.Port)
	}
	var keys []string
	for _, s := range line.TXT {
		k, _, _ := strings.Cut(s, "=")
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"addrs", "features", "free-disk", "host-key", "load", "overload-threshold", "parallel-builds", "sig", "signing-key", "speed", "systems", "ts", "txtvers", "user"}
	if !slices.Equal(keys, want) {
		t.Errorf("TXT keys avahi shows: %q, want %q", keys, want)
	}
	port, _ := strconv.Atoi(line.Port)
	a, err := ParseTXT(line.Instance, port, line.TXT)
	if err != nil {
		t.Fatalf("TXT as avahi shows it: %v", err)
	}
	if err := a.Verify(); err != nil {
		t.Errorf("signature as avahi shows it: %v", err)
	}
}

// TestNetnsDiscoverBesideResponder: discover shares port 5353 with the
// responder guix-offload-agent uses on the same host, and lists that
// host's machine and another's.
func TestNetnsDiscoverBesideResponder(t *testing.T) {
	nw := netns.New(t, 2)
	h := nw.Hosts()
	for i, name := range []string{"local-builder", "remote-builder"} {
		p := h[i].Start(t, os.Args[0], "discovery-helper", "publish", name, h[i].Iface, h[i].Addr.String(), "-")
		netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(p.Output(), "published") || p.Exited() })
	}
	var as []*Announcement
	netns.WaitFor(t, 40*time.Second, func() bool {
		as = lookup(t, h[0], "--trust", "any")
		return len(named(as, "local-builder")) == 1 && len(named(as, "remote-builder")) == 1
	})
	if len(as) != 2 || named(as, "local-builder")[0].Name != h[0].Addr.String() || named(as, "remote-builder")[0].Name != h[1].Addr.String() {
		t.Errorf("discovered %+v", as)
	}
}

// TestNetnsDiscoverBesideNonSharingResponder: when another program holds
// port 5353 without sharing it, discover says so and still lists the
// machines on the link, through unicast replies.
func TestNetnsDiscoverBesideNonSharingResponder(t *testing.T) {
	nw := netns.New(t, 2)
	h := nw.Hosts()
	hold := h[0].Start(t, os.Args[0], "discovery-helper", "hold5353")
	netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(hold.Output(), "holding") || hold.Exited() })
	if hold.Exited() {
		t.Fatalf("hold5353: %s", hold.Output())
	}
	p := h[1].Start(t, os.Args[0], "discovery-helper", "publish", "remote-builder", h[1].Iface, h[1].Addr.String(), "-")
	netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(p.Output(), "published") || p.Exited() })
	av := h[1].StartAvahi(t)
	pub := av.Start(t, "avahi-publish", append([]string{"-s", "avahi builder", ServiceType, "2200"}, avahiTXT()...)...)
	netns.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(pub.Output(), "Established") || pub.Exited() })

	var as []*Announcement
	var stderr string
	netns.WaitFor(t, 40*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := h[0].Command(ctx, discoverBin(t), "discover", "--format", "json", "--timeout", "8s", "--trust", "any", "--verbose")
		var errBuf bytes.Buffer
		cmd.Stderr = &errBuf
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("discover: %v\n%s", err, errBuf.String())
		}
		stderr = errBuf.String()
		as = nil
		if err := json.Unmarshal(out, &as); err != nil {
			t.Fatalf("discover output: %v\n%s", err, out)
		}
		return len(named(as, "remote-builder")) == 1 && len(named(as, "avahi builder")) == 1
	})
	if len(as) != 2 || named(as, "remote-builder")[0].Name != h[1].Addr.String() {
		t.Errorf("discovered %+v", as)
	}
	if !strings.Contains(stderr, "unicast replies") {
		t.Errorf("discover did not say it fell back to unicast replies; stderr:\n%s", stderr)
	}
}

// TestNetnsWatchJoinsInterfaceThatComesUp: `discover --watch` started
// while its host's link is down finds the machine soon after the link
// comes up (it re-reads the interfaces every few seconds and asks at once
// on a new one).
func TestNetnsWatchJoinsInterfaceThatComesUp(t *testing.T) {
	nw := netns.New(t, 2)
	pub, master := nw.Hosts()[0], nw.Hosts()[1]
	p := pub.Start(t, os.Args[0], "discovery-helper", "publish", "late", pub.Iface, pub.Addr.String(), "-")
	netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(p.Output(), "published") || p.Exited() })
	if err := master.SetLink(false); err != nil {
		t.Fatal(err)
	}
	watch := master.Start(t, discoverBin(t), "discover", "--watch", "--format", "json", "--trust", "any")
	// For a second it runs with no usable interface and sees nothing.
	if netns.Poll(time.Second, func() bool { return watch.Exited() || countEvents(watchLines(t, watch), "add", "late") != 0 }) {
		t.Fatalf("with the link down: exited %v, output %s", watch.Exited(), watch.Output())
	}
	if err := master.SetLink(true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	netns.WaitFor(t, 15*time.Second, func() bool { return countEvents(watchLines(t, watch), "add", "late") == 1 })
	t.Logf("seen %v after the link came up", time.Since(start).Round(10*time.Millisecond))
}

// TestNetnsRefreshKeepsShortLivedRecords: records that live 5 s stay as
// long as their responder answers, because the browser asks again at
// 80–95 % of their TTL; when the responder dies without a goodbye they
// expire.
func TestNetnsRefreshKeepsShortLivedRecords(t *testing.T) {
	nw := netns.New(t, 2)
	pub, master := nw.Hosts()[0], nw.Hosts()[1]
	watch := master.Start(t, discoverBin(t), "discover", "--watch", "--format", "json", "--trust", "any")
	cmd := pub.Command(context.Background(), os.Args[0], "discovery-helper", "publish", "short", pub.Iface, pub.Addr.String(), "-")
	cmd.Env = append(os.Environ(), "DISCOVERY_HELPER_TTL=5")
	p := pub.StartCmd(t, cmd)
	netns.WaitFor(t, 20*time.Second, func() bool { return countEvents(watchLines(t, watch), "add", "short") == 1 })
	// Three TTLs: without refresh queries it would be gone after one.
	if netns.Poll(16*time.Second, func() bool { return countEvents(watchLines(t, watch), "remove", "short") > 0 }) {
		t.Fatalf("removed although its responder answers:\n%s", watch.Output())
	}
	// Killed without a goodbye: gone within one TTL (and a bit).
	if err := p.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	netns.WaitFor(t, 10*time.Second, func() bool { return countEvents(watchLines(t, watch), "remove", "short") == 1 })
	t.Logf("removed %v after its responder died", time.Since(start).Round(100*time.Millisecond))
}

// TestNetnsIPv6Only: a machine that announces and signs only its IPv6
// link-local address is listed with that address, zoned to the
// interface it was seen on, and trusted under the ACL policy.
func TestNetnsIPv6Only(t *testing.T) {
	nw := netns.New(t, 2)
	pub, master := nw.Hosts()[0], nw.Hosts()[1]
	ll, err := pub.LinkLocal()
	if err != nil {
		t.Fatal(err)
	}
	p := pub.Start(t, os.Args[0], "discovery-helper", "publish", "v6only", pub.Iface, ll.WithZone("").String(), absTestdata(t, "signing-key.sec"))
	netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(p.Output(), "published") || p.Exited() })
	var as []*Announcement
	netns.WaitFor(t, 40*time.Second, func() bool {
		as = lookup(t, master, "--acl", absTestdata(t, "acl"))
		return len(named(as, "v6only")) == 1
	})
	a := named(as, "v6only")[0]
	want := ll.WithZone(master.Iface).String()
	if a.Name != want || len(a.Addresses) != 1 || !a.Trusted {
		t.Errorf("v6only: name %q (want %q), addresses %v, trusted %v (%s)", a.Name, want, a.Addresses, a.Trusted, a.TrustReason)
	}
}
