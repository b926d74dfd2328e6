package discovery

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv/bind"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// zoneInstances returns zone-file lines for n build machines named
// PREFIX-0000… in zone, all at addr, signed with the test key when sign
// is true.
func zoneInstances(t *testing.T, zone, prefix string, n int, addr netip.Addr, sign bool) []string {
	t.Helper()
	var key *pki.PrivateKey
	if sign {
		k, err := pki.ReadPrivateKey("testdata/signing-key.sec")
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	now := time.Now().Truncate(time.Second)
	var lines []string
	for i := range n {
		name := fmt.Sprintf("%s-%04d", prefix, i)
		a := &Announcement{Instance: name, Addresses: []netip.Addr{addr}, Load: 0.25, FreeDisk: 1000, Time: now}
		a.Systems, a.User, a.HostKey, a.Port, a.ParallelBuilds, a.Speed = []string{"x86_64-linux"}, "offload", hostKey, 22, 2, 1
		if key != nil {
			if err := a.Sign(key); err != nil {
				t.Fatal(err)
			}
		}
		lines = append(lines,
			fmt.Sprintf("%s IN PTR %s.%s", ServiceName(zone), name, ServiceName(zone)),
			fmt.Sprintf("%s.%s IN SRV 0 0 22 %s.guix-offload.%s", name, ServiceName(zone), name, zone),
			fmt.Sprintf("%s.%s IN TXT \"%s\"", name, ServiceName(zone), strings.Join(a.TXT(), `" "`)),
			fmt.Sprintf("%s.guix-offload.%s IN A %s", name, zone, addr))
	}
	return lines
}

func writeResolvConf(t *testing.T, srv *bind.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver "+srv.Addr.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNetnsUnicastThousand: a zone with 1,000 signed build machines
// (each TXT record over 512 bytes) is listed completely by `discover
// --domain`, every machine trusted by the ACL policy: once through a
// zone transfer, and once with queries alone (transfers refused); and
// it returns once the zone is listed, without waiting for quiet.
func TestNetnsUnicastThousand(t *testing.T) {
	nw := netns.New(t, 2)
	h := nw.Hosts()
	const n = 1000
	zone := "builders.test."
	records := zoneInstances(t, zone, "wa", n, h[1].Addr, true)
	for _, noTransfer := range []bool{false, true} {
		srv := bind.Start(t, h[0], bind.Options{Zone: zone, Records: records, NoTransfer: noTransfer})
		discoverBin(t) // built before the clock starts
		start := time.Now()
		// A quiet period longer than the timeout: DNS gave the whole
		// answer once the zone is listed, discover must not wait for
		// more (nor run into its timeout).
		as := lookup(t, h[1], "--domain", "builders.test", "--mdns=false", "--resolv-conf", writeResolvConf(t, srv), "--acl", absTestdata(t, "acl"),
			"--quiet", "1h", "--timeout", "25s", "--verbose")
		took := time.Since(start)
		t.Logf("transfers refused %v: listed %d machines in %v", noTransfer, len(as), took.Round(time.Millisecond))
		if took >= 25*time.Second {
			t.Errorf("transfers refused %v: discover ran into its timeout instead of returning once the zone was listed", noTransfer)
		}
		trusted := 0
		for _, a := range as {
			if a.Trusted {
				trusted++
			} else if trusted == 0 {
				t.Logf("untrusted: %s: %s", a.Instance, a.TrustReason)
			}
		}
		if len(as) != n || trusted != n {
			t.Errorf("transfers refused %v: listed %d machines, %d trusted; want %d, all trusted", noTransfer, len(as), trusted, n)
		}
		srv.Stop()
	}
}

// TestNetnsUnicastWatchReadsOnlyChanges: `discover --watch --domain`
// sees an addition, a TXT change and a removal made in the zone, and
// reads only what changed (the zone's incremental transfer says what):
// named's query log shows no TXT query for the machines that did not
// change.
func TestNetnsUnicastWatchReadsOnlyChanges(t *testing.T) {
	nw := netns.New(t, 2)
	h := nw.Hosts()
	const n = 40
	zone := "builders.test."
	srv := bind.Start(t, h[0], bind.Options{Zone: zone, QueryLog: true, Records: zoneInstances(t, zone, "wa", n, h[1].Addr, false)})
	watch := h[1].Start(t, discoverBin(t), "discover", "--watch", "--format", "json", "--trust", "any",
		"--domain", "builders.test", "--mdns=false", "--resolv-conf", writeResolvConf(t, srv))
	netns.WaitFor(t, 20*time.Second, func() bool {
		adds := 0
		for _, m := range watchLines(t, watch) {
			if m["event"] == "add" {
				adds++
			}
		}
		return adds == n
	})
	// The first listing is one zone transfer (named allows them here);
	// what comes after is counted in named's query log.
	txtQueries := func() int { return strings.Count(srv.Output(), " IN TXT ") }
	before := txtQueries()
	svc := ServiceName(zone)
	script := strings.Join([]string{
		"update delete wa-0007." + svc + " TXT",
		`update add wa-0007.` + svc + ` 120 TXT "txtvers=1" "systems=x86_64-linux" "user=offload" "host-key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBOCepSZ6ufJinnm4I/ubI9cuMTesCiWu9P0u9M+my5N" "load=3.50"`,
		"update delete " + svc + " PTR wa-0003." + svc,
		"update delete wa-0003." + svc,
		"update add " + svc + " 120 PTR newcomer." + svc,
		"update add newcomer." + svc + " 120 SRV 0 0 22 newcomer.guix-offload." + zone,
		`update add newcomer.` + svc + ` 120 TXT "txtvers=1" "systems=aarch64-linux" "user=offload" "host-key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBOCepSZ6ufJinnm4I/ubI9cuMTesCiWu9P0u9M+my5N"`,
		"update add newcomer.guix-offload." + zone + " 120 A " + h[1].Addr.String(),
	}, "\n")
	if out, err := srv.NSUpdate(script); err != nil {
		t.Fatalf("nsupdate: %v\n%s", err, out)
	}
	// Within one poll of the zone (5 s), with room for a loaded machine.
	netns.WaitFor(t, 15*time.Second, func() bool {
		ls := watchLines(t, watch)
		return countEvents(ls, "update", "wa-0007") == 1 && countEvents(ls, "remove", "wa-0003") == 1 && countEvents(ls, "add", "newcomer") == 1
	})
	for _, m := range watchLines(t, watch) {
		if m["event"] == "update" && m["instance"] == "wa-0007" && m["load"] != 3.5 {
			t.Errorf("update carries load %v; want 3.5", m["load"])
		}
	}
	// The new machine and the changed one; a full listing would be 40.
	if got := txtQueries() - before; got < 1 || got > 4 {
		t.Errorf("%d TXT queries after one change; want only the changed machines read", got)
	}
}

// TestNetnsUnicastKnownGood: `discover --domain` keeps the signatures it
// found good (by default under $XDG_CACHE_HOME, which TestMain points at
// a temporary directory), lists the same machines from them next time,
// and does not use a file that others may write, saying so.
func TestNetnsUnicastKnownGood(t *testing.T) {
	nw := netns.New(t, 2)
	h := nw.Hosts()
	zone := "builders.test."
	srv := bind.Start(t, h[0], bind.Options{Zone: zone, Records: zoneInstances(t, zone, "kg", 20, h[1].Addr, true)})
	args := []string{"--domain", "builders.test", "--mdns=false", "--resolv-conf", writeResolvConf(t, srv), "--acl", absTestdata(t, "acl")}
	allTrusted := func(as []*Announcement) {
		t.Helper()
		trusted := 0
		for _, a := range as {
			if a.Trusted {
				trusted++
			}
		}
		if len(as) != 20 || trusted != 20 {
			t.Fatalf("listed %d machines, %d trusted; want 20, all trusted", len(as), trusted)
		}
	}
	file := DefaultKnownGoodFile(os.Getenv)
	if !strings.HasPrefix(file, os.Getenv("XDG_CACHE_HOME")+"/") {
		t.Fatalf("default file %s is not under $XDG_CACHE_HOME", file)
	}
	if err := os.RemoveAll(file); err != nil { // another test's
		t.Fatal(err)
	}
	allTrusted(lookup(t, h[1], args...))
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("default --signature-cache not written: %v", err)
	}
	if n := strings.Count(string(data), "\n"); n != 21 {
		t.Errorf("%s has %d lines, want the header and 20 signatures:\n%s", file, n, data)
	}
	allTrusted(lookup(t, h[1], args...))

	// Writable by others: checked again, every signature, with a warning.
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	cmd := h[1].Command(t.Context(), discoverBin(t), append([]string{"discover", "--format", "json", "--timeout", "8s"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("discover: %v\n%s", err, stderr.String())
	}
	var as []*Announcement
	if err := json.Unmarshal(out, &as); err != nil {
		t.Fatal(err)
	}
	allTrusted(as)
	if want := "warning: not using --signature-cache: " + file + ": mode 0666: writable by others; run 'chmod go-w " + file + "'"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}

	// --signature-cache none: nothing kept.
	other := filepath.Join(t.TempDir(), "none-here")
	allTrusted(lookup(t, h[1], append(args, "--signature-cache", "none")...))
	allTrusted(lookup(t, h[1], append(args, "--signature-cache", other)...))
	if _, err := os.Stat(other); err != nil {
		t.Errorf("--signature-cache FILE not written: %v", err)
	}
}
