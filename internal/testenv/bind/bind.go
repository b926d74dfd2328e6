package bind

import (
	"context"
	"fmt"
	"net/netip"
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

// Options configures [Start].
type Options struct {
	// Zone is the zone's name; default "builders.test.".
	Zone string
	// KeyName names the TSIG key allowed to update; default
	// "guix-offload-agents".
	KeyName string
	// Records are extra lines for the zone file (relative names are in
	// the zone), such as "b._dns-sd._udp IN PTR @".
	Records []string
	// ExtraZones are more zones (name → zone-file lines after the SOA
	// and NS), served but not updatable, for browse-domain tests.
	ExtraZones map[string][]string
	// AllowUpdateSubtrees overrides the names the key may update
	// (update-policy "subdomain" grants, relative to the zone); default:
	// "_guix-offload._tcp" (any type) and "guix-offload" (A and AAAA).
	AllowUpdateSubtrees []string
	// QueryLog makes named log every query it answers ([Server.Output]),
	// so a test can count them.
	QueryLog bool
	// NoTransfer refuses zone transfers (allow-transfer { none; }), as
	// many sites do for hosts that are not secondaries.
	NoTransfer bool
}

// Server is a running named.
type Server struct {
	// Host is the namespace it runs in; Addr the address it answers on
	// (port 53).
	Host *netns.Host
	Addr netip.Addr
	// Zone is the updatable zone, fully qualified.
	Zone string
	// KeyFile is the TSIG key, as tsig-keygen wrote it; KeyName its name.
	KeyFile string
	KeyName string
	// Dir is named's directory (configuration, zone files, journal).
	Dir string

	proc *netns.Proc
}

// Start starts named on h with opts and waits until it serves the zone.
func Start(t testing.TB, h *netns.Host, opts Options) *Server {
	t.Helper()
	named := testenv.LookPath(t, "named", "bind9")
	keygen := testenv.LookPath(t, "tsig-keygen", "bind9-utils")
	testenv.LookPath(t, "dig", "bind9-dnsutils")
	zone := opts.Zone
	if zone == "" {
		zone = "builders.test."
	}
	if !strings.HasSuffix(zone, ".") {
		zone += "."
	}
	keyName := opts.KeyName
	if keyName == "" {
		keyName = "guix-offload-agents"
	}
	dir := t.TempDir()
	s := &Server{Host: h, Addr: h.Addr, Zone: zone, KeyName: keyName, Dir: dir, KeyFile: filepath.Join(dir, "agents.key")}
	key, err := exec.Command(keygen, "-a", "hmac-sha256", keyName).Output()
	if err != nil {
		t.Fatalf("bind: tsig-keygen: %v", err)
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("agents.key", string(key))

	grants := ""
	if opts.AllowUpdateSubtrees == nil {
		grants = fmt.Sprintf("\t\tgrant %s subdomain _guix-offload._tcp.%s ANY;\n\t\tgrant %s subdomain guix-offload.%s A AAAA;\n",
			keyName, zone, keyName, zone)
	}
	for _, sub := range opts.AllowUpdateSubtrees {
		grants += fmt.Sprintf("\t\tgrant %s subdomain %s.%s ANY;\n", keyName, sub, zone)
	}
	conf := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	listen-on port 53 { %[2]s; 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	allow-transfer { %[6]s; };
	notify no;
	minimal-responses no;
	querylog %[5]s;
};
controls { };
include "%[1]s/agents.key";
zone "%[3]s" {
	type primary;
	file "%[1]s/zone.db";
	// BIND 9.18.28 and later hold at most 100 records of one type at
	// one name by default: the service's PTR set has one per machine.
	max-records-per-type 0;
	update-policy {
%[4]s	};
};
`, dir, h.Addr, zone, grants, map[bool]string{true: "yes", false: "no"}[opts.QueryLog],
		map[bool]string{true: "none", false: "any"}[opts.NoTransfer])
	write("zone.db", zoneFile(zone, h.Addr, opts.Records))
	i := 0
	for name, lines := range opts.ExtraZones {
		i++
		name = strings.TrimSuffix(name, ".") + "."
		file := fmt.Sprintf("extra%d.db", i)
		write(file, zoneFile(name, h.Addr, lines))
		conf += fmt.Sprintf("zone %q { type primary; file \"%s/%s\"; };\n", name, dir, file)
	}
	write("named.conf", conf)

	// -g: foreground, log to stderr; no -u: stay root (the directory
	// is root's); -n 1: one worker thread is plenty for tests.
	s.proc = h.Start(t, named, "-g", "-n", "1", "-4", "-c", filepath.Join(dir, "named.conf"))
	netns.WaitFor(t, 30*time.Second, func() bool { return serving(s.proc.Output()) || s.proc.Exited() })
	if s.proc.Exited() {
		hint := ""
		if strings.Contains(s.proc.Output(), "permission denied") {
			hint = "\n(an AppArmor profile for /usr/sbin/named may forbid its temporary directory: aa-complain /usr/sbin/named)"
		}
		t.Fatalf("bind: named exited:\n%s%s", s.proc.Output(), hint)
	}
	t.Cleanup(s.Stop)
	return s
}

// serving reports whether named's log (-g) says it has loaded its zones
// and listens: its last startup line is "running" alone after the time
// stamp. Its first lines ("running as: named …", "running on Linux …")
// come before it reads its configuration and must not count.
func serving(log string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.HasSuffix(strings.TrimSpace(line), " running") {
			return true
		}
	}
	return false
}

// zoneFile returns a zone file for zone served by ns.ZONE at addr.
func zoneFile(zone string, addr netip.Addr, records []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL 120\n", zone)
	fmt.Fprintf(&b, "@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 60\n", zone, zone)
	fmt.Fprintf(&b, "@ IN NS ns.%s\n", zone)
	fmt.Fprintf(&b, "ns IN A %s\n", addr)
	for _, r := range records {
		b.WriteString(r + "\n")
	}
	return b.String()
}

// Stop kills named (as a crash would: no clean shutdown is needed, the
// journal is in its own directory) and waits for it.
func (s *Server) Stop() {
	if s.proc == nil || s.proc.Exited() {
		return
	}
	_ = s.proc.Stop(syscall.SIGTERM)
	if s.proc.Wait(10*time.Second) != nil {
		_ = s.proc.Stop(syscall.SIGKILL)
		_ = s.proc.Wait(5 * time.Second)
	}
}

// Output returns what named has logged.
func (s *Server) Output() string { return s.proc.Output() }

// Dig runs `dig @SERVER +short NAME TYPE` (plus args) inside the
// server's namespace and returns its output; it fails t when dig fails.
func (s *Server) Dig(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Host.Command(ctx, "dig", append([]string{"@" + s.Addr.String(), "+short", "+tcp"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("bind: dig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NSUpdate runs nsupdate with the zone's key inside the server's
// namespace, feeding it script (the "server" and "send" lines are
// added), and returns its output and error.
func (s *Server) NSUpdate(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := s.Host.Command(ctx, "nsupdate", "-k", s.KeyFile)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("server %s\nzone %s\n%s\nsend\n", s.Addr, s.Zone, script))
	out, err := cmd.CombinedOutput()
	return string(out), err
}
