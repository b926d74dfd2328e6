//go:build bench

package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv/bind"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// wideAreaMachines is the size of the zone in issue 15's scale row.
const wideAreaMachines = 1000

// timeToExit runs the command made by newCmd to its end, its output
// gathered by the kernel's pipe into a buffer, and then finds in it the
// names match returns: the time is the program's own, from start to exit,
// whatever the size of its output. (timeListing matches line by line as
// the output comes, a cost that grows with the number of lines: forty
// thousand for an indented JSON list of 1,000 machines, four thousand for
// dig's zone.)
func timeToExit(t *testing.T, ctx context.Context, newCmd func(ctx context.Context) *exec.Cmd, match func(out string) []string, want map[string]bool, limit time.Duration) Listing {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := newCmd(ctx)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	out, err := cmd.Output()
	took := time.Since(t0)
	seen := map[string]bool{}
	for _, name := range match(string(out)) {
		if want[name] {
			seen[name] = true
		}
	}
	l := Listing{Took: took, Found: len(seen), All: err == nil && len(seen) == len(want)}
	if !l.All {
		t.Logf("%s listed %d of %d (%v); its stderr:\n%s", strings.Join(cmd.Args, " "), l.Found, len(want), err, stderr.String())
	}
	return l
}

// trustedInJSON returns the instance names starting with prefix of the
// trusted machines of discover's --format json output.
func trustedInJSON(prefix string) func(string) []string {
	return func(out string) []string {
		var as []struct {
			Instance string `json:"instance"`
			Trusted  bool   `json:"trusted"`
		}
		if err := json.Unmarshal([]byte(out), &as); err != nil {
			return nil
		}
		var names []string
		for _, a := range as {
			if a.Trusted && strings.HasPrefix(a.Instance, prefix) {
				names = append(names, a.Instance)
			}
		}
		return names
	}
}

// runWideArea is issue 15's row: how long `guix-offload discover
// --domain` takes to list and verify 1,000 signed machines registered in
// a BIND zone, against one `dig AXFR` of the same zone from the same
// server; and the agent's refresh traffic per machine per hour.
func runWideArea(t *testing.T, s *suite) {
	master := s.buildBinary(t, "guix-offload")
	agent := s.buildBinary(t, "guix-offload-agent")
	if master == "" {
		s.add(Row{Measure: "wide-area listing", Ours: NotMeasured("guix-offload does not build in this tree")})
		return
	}
	net := netns.New(t, 3)
	remember(t, net)
	hosts := net.Hosts()
	nsHost, browser, builder := hosts[0], hosts[1], hosts[2]
	dir := t.TempDir()
	zone := "builders.test."
	prefix := "wa-"

	// 1,000 machines, each signed by its own key, all in the ACL.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	var keys []*pki.PublicKey
	var records []string
	want := map[string]bool{}
	now := time.Now().Truncate(time.Second)
	svc := discovery.ServiceName(zone)
	for i := range wideAreaMachines {
		key, err := pki.GenerateKey(pki.TypeECDSA, nil)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key.Public())
		name := fmt.Sprintf("%s%04d", prefix, i)
		want[name] = true
		addr := netip.AddrFrom4([4]byte{169, 254, byte(100 + i/250), byte(1 + i%250)})
		a := &discovery.Announcement{Instance: name, Addresses: []netip.Addr{addr}, Load: 0.25, FreeDisk: 52341, Time: now}
		a.Systems, a.User, a.HostKey, a.Port, a.ParallelBuilds, a.Speed = []string{"x86_64-linux", "i686-linux"}, "offload", hostKey, 22, 4, 1
		if err := a.Sign(key); err != nil {
			t.Fatal(err)
		}
		records = append(records,
			fmt.Sprintf("%s IN PTR %s.%s", svc, name, svc),
			fmt.Sprintf("%s.%s IN SRV 0 0 22 %s.guix-offload.%s", name, svc, name, zone),
			fmt.Sprintf("%s.%s IN TXT \"%s\"", name, svc, strings.Join(a.TXT(), `" "`)),
			fmt.Sprintf("%s.guix-offload.%s IN A %s", name, zone, addr))
	}
	acl := filepath.Join(dir, "acl")
	writeACL(t, acl, keys)
	resolv := filepath.Join(dir, "resolv.conf")

	runs := min(*flagDiscovery, 10)
	const limit = 60 * time.Second
	// The good signatures `discover` keeps between runs: the warm-up run
	// fills it, the runs after it read it (as from a user's second
	// listing on); "none" checks every signature (a first listing).
	known := filepath.Join(dir, "good-signatures")
	measure := func(noTransfer bool) (watch, oneShot, watchCold, oneShotCold, axfr []Listing) {
		srv := bind.Start(t, nsHost, bind.Options{Zone: zone, Records: records, NoTransfer: noTransfer})
		defer srv.Stop()
		if err := os.WriteFile(resolv, []byte("nameserver "+srv.Addr.String()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(known); err != nil {
			t.Fatal(err)
		}
		discover := func(args ...string) func(ctx context.Context) *exec.Cmd {
			return func(ctx context.Context) *exec.Cmd {
				return browser.Command(ctx, master, append([]string{"discover", "--acl", acl, "--format", "json",
					"--domain", strings.TrimSuffix(zone, "."), "--mdns=false", "--resolv-conf", resolv}, args...)...)
			}
		}
		dig := func(ctx context.Context) *exec.Cmd {
			return browser.Command(ctx, "dig", "@"+srv.Addr.String(), "AXFR", zone, "+nocmd", "+nostats")
		}
		// Trusted ones only: a listing counts when every machine was
		// verified.
		trustedIn := func(line string) []string {
			if !strings.Contains(line, `"trusted":true`) {
				return nil
			}
			return namesIn(prefix)(line)
		}
		// Warm-up, to its end: timeListing stops a listing as soon as
		// it is complete, before discover saves its good signatures.
		if out, err := discover("--timeout", "30s", "--signature-cache", known)(s.ctx).CombinedOutput(); err != nil {
			t.Fatalf("warm-up discover: %v\n%.2000s", err, out)
		}
		for run := 0; run < runs; run++ {
			if s.ctx.Err() != nil {
				t.Fatal("interrupted")
			}
			watch = append(watch, timeListing(t, s.ctx, nil, discover("--watch", "--signature-cache", known), trustedIn, want, limit))
			oneShot = append(oneShot, timeToExit(t, s.ctx, discover("--timeout", "30s", "--quiet", "200ms", "--signature-cache", known), trustedInJSON(prefix), want, limit))
			if !noTransfer {
				watchCold = append(watchCold, timeListing(t, s.ctx, nil, discover("--watch", "--signature-cache", "none"), trustedIn, want, limit))
				oneShotCold = append(oneShotCold, timeToExit(t, s.ctx, discover("--timeout", "30s", "--quiet", "200ms", "--signature-cache", "none"), trustedInJSON(prefix), want, limit))
			}
			if !noTransfer {
				axfr = append(axfr, timeListing(t, s.ctx, nil, dig, namesIn(prefix), want, limit))
			}
		}
		return watch, oneShot, watchCold, oneShotCold, axfr
	}
	watch, oneShot, watchCold, oneShotCold, axfr := measure(false)
	watchQ, oneShotQ, _, _, _ := measure(true)
	ref := CompleteTimes(axfr).Median()
	refCell := ListingCell(axfr, wideAreaMachines)
	for _, r := range []struct {
		name, note string
		l          []Listing
	}{
		{"`discover --watch --domain` (zone transfer allowed)", "time of the last trusted `add` event, read line by line as it comes: listing (one AXFR), every signature found in the good-signatures file of an earlier run (a user's second listing on)", watch},
		{"`discover --domain --quiet 200ms` (zone transfer allowed)", "one-shot, start to exit, every machine trusted: with the zone alone (--mdns=false) the list is printed once the zone was read; --quiet does not apply", oneShot},
		{"`discover --watch --domain --signature-cache none` (zone transfer allowed, first listing)", "every signature checked: 1,000 signature checks over the cores", watchCold},
		{"`discover --domain --quiet 200ms --signature-cache none` (zone transfer allowed, first listing)", "", oneShotCold},
		{"`discover --watch --domain` (transfers refused: queries)", "PTR, then SRV, TXT and A of each machine, 32 queries in flight, UDP with EDNS0", watchQ},
		{"`discover --domain --quiet 200ms` (transfers refused: queries)", "", oneShotQ},
	} {
		s.add(Row{
			Measure:   fmt.Sprintf("wide-area listing of %d signed machines: %s vs `dig AXFR`", wideAreaMachines, r.name),
			Ours:      ListingCell(r.l, wideAreaMachines),
			Reference: refCell,
			Ratio:     Ratio(CompleteTimes(r.l).Median(), ref, Lower),
			Note:      r.note,
		})
	}
	s.note("one BIND 9 named (in its own network namespace, 169.254.0.0/16) serves a zone of %d machines (PTR, SRV, signed TXT of about 700 bytes, A), each signed by its own key, all in the browser's ACL; the browser runs in another namespace. One-shot `discover` times run from starting the program to its exit, its output gathered into a buffer and checked afterwards (every machine listed and trusted); `--watch` times run to the last trusted `add` line; dig's, to the line of the last machine's records in its output, before dig's own exit (some 18 ms later): dig AXFR transfers the whole zone once, over TCP, from the same server, and prints it. Rows without --signature-cache none read the signatures found good by an earlier run (the warm-up) from the good-signatures file; those with it check all %d. Goal: at most 3×.", wideAreaMachines, wideAreaMachines)

	// The agent's refresh traffic: the bytes of its DNS UPDATEs (request
	// and response, TSIG included), from its own debug log.
	if agent == "" {
		s.add(Row{Measure: "wide-area refresh traffic", Ours: NotMeasured("guix-offload-agent does not build in this tree")})
		return
	}
	srv := bind.Start(t, nsHost, bind.Options{Zone: zone})
	defer srv.Stop()
	root := filepath.Join(dir, "agent-root")
	for _, d := range []string{"proc", "gnu/store"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	setLoad := func(l string) {
		tmp := filepath.Join(root, "proc/loadavg.new")
		if err := os.WriteFile(tmp, []byte(l+" 0.5 0.5 1/100 1000\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(root, "proc/loadavg")); err != nil {
			t.Fatal(err)
		}
	}
	setLoad("0.00")
	files := makeAgentFiles(t, dir, "wa-agent")
	conf := filepath.Join(dir, "wa-agent.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[wide-area]\ndomain = %q\nserver = %q\ntsig-key = %q\n", zone, srv.Addr, srv.KeyFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := builder.Start(t, agent, "--config", conf, "--name", "wa-agent", "--verbose",
		"--systems", "x86_64-linux,i686-linux", "--parallel-builds", "4", "--user", "offload", "--port", "22",
		"--host-key-file", files.hostKey, "--signing-key", files.signingKey, "--detect-root", root, "--store", "/gnu/store",
		"--refresh-interval", "1s")
	updates := func() (full, txt []int) {
		re := regexp.MustCompile(`wide-area: updated" .*bytes=([0-9]+) txt-only=(true|false)`)
		for _, m := range re.FindAllStringSubmatch(p.Output(), -1) {
			n, _ := strconv.Atoi(m[1])
			if m[2] == "true" {
				txt = append(txt, n)
			} else {
				full = append(full, n)
			}
		}
		return full, txt
	}
	netns.WaitFor(t, 30*time.Second, func() bool { f, _ := updates(); return len(f) > 0 })
	const steps = 5
	for i := 1; i <= steps; i++ {
		setLoad(fmt.Sprintf("%d.00", 16*i))
		netns.WaitFor(t, 30*time.Second, func() bool { _, u := updates(); return len(u) >= i })
	}
	_ = p.Stop(syscall.SIGTERM)
	_ = p.Wait(10 * time.Second)
	full, txt := updates()
	sum := 0
	for _, n := range txt {
		sum += n
	}
	per := float64(sum) / float64(len(txt))
	// The agent re-signs every 4 minutes when nothing changes: 15
	// TXT-only updates an hour; a load that moves at every refresh
	// interval (5 s by default) at most 720.
	s.add(Row{
		Measure:   "wide-area refresh traffic per machine per hour (DNS UPDATE with TSIG, request + response)",
		Ours:      fmt.Sprintf("steady load: %s/h (15 re-signs × %s); load moving every 5 s: %s/h at most", Bytes(15*per), Bytes(per), Bytes(720*per)),
		Reference: fmt.Sprintf("registration: %s once", Bytes(float64(full[0]))),
		Note:      fmt.Sprintf("measured from %d TXT-only updates of a real agent against named", len(txt)),
	})
}
