package hook_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
	"github.com/guix-offload/guix-offload/scm"
)

// signAt signs a as its agent would, serving at addr, with the key
// testdata/acl authorizes.
func signAt(t testing.TB, a *discovery.Announcement, addr string) *discovery.Announcement {
	t.Helper()
	key, err := pki.ReadPrivateKey("testdata/signing-key.sec")
	if err != nil {
		t.Fatal(err)
	}
	a.Addresses = []netip.Addr{netip.MustParseAddr(addr)}
	a.Time = time.Now()
	if err := a.Sign(key); err != nil {
		t.Fatal(err)
	}
	return a
}

// testHostKey is a valid OpenSSH host key line made from seed.
func testHostKey(t testing.TB, seed byte) string {
	t.Helper()
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func announce(instance, host string, port int, hostKey string, trusted bool, systems, features []string, speed float64) *discovery.Announcement {
	a := &discovery.Announcement{Machine: scm.DefaultMachine(), Instance: instance, Load: 0.1, FreeDisk: 20000,
		Trusted: trusted, Source: "mdns:test", Seen: time.Now()}
	if trusted {
		a.TrustReason = "signed by a key in the ACL"
	} else {
		a.TrustReason = "signing key is not in the ACL"
	}
	a.Name, a.Port, a.HostKey, a.Systems, a.Features, a.Speed, a.User = host, port, hostKey, systems, features, speed, "root"
	a.ParallelBuilds = 1
	return a
}

// Static and discovered machines through a real hook process: trusted
// announcements are used, untrusted ones never, and a static entry wins
// over an announcement of the same machine.
func TestDiscoveredMachines(t *testing.T) {
	s := sshd.Start(t, sshd.Options{})
	e := newEnv(t)
	snapshot := e.dir + "/machines.json"
	e.writeConfig(fmt.Sprintf("discovery = true\ncache = %q\nprivate-key = %q\n", snapshot, s.ClientKeyFile))
	x86 := []string{"x86_64-linux"}
	twinKey := testHostKey(t, 9)
	good := signAt(t, announce("good", s.Host, s.Port, s.HostKey, true, x86, []string{"kvm"}, 1), s.Host)
	twin := signAt(t, announce("twin", "127.0.0.9", 2222, twinKey, true, []string{"aarch64-linux", "i686-linux"}, nil, 1), "127.0.0.9")
	snap := &discovery.Snapshot{Updated: time.Now(), Machines: []*discovery.Announcement{
		good, twin,
		announce("rogue", s.Host, 1, s.HostKey+"X", false, []string{"x86_64-linux", "riscv64-linux"}, []string{"kvm"}, 100),
		// Trusted by a watcher running a looser policy, but unsigned: the
		// hook's own policy (acl) does not take it.
		announce("loose", s.Host, 2, s.HostKey, true, []string{"mips64el-linux"}, nil, 1),
	}}
	if err := discovery.WriteSnapshot(snapshot, snap); err != nil {
		t.Fatal(err)
	}
	static := spec{name: "builder-twin", port: 22, systems: []string{"i686-linux"}, user: "root", key: s.ClientKeyFile,
		hostKey: twinKey + " static", parallel: 1, speed: 1}
	e.writeMachines(static)
	h := e.start("ok")

	tests := []struct {
		r      daemon.Req
		answer string
		says   []string
		never  string
	}{
		// Only the trusted announcement has kvm.
		{req(true, "x86_64-linux", "k", "kvm"), daemon.Accept, []string{"building on 'good' (" + s.Host}, "rogue"},
		// The first reading of the snapshot says what the hook's own policy
		// leaves out (later readings use the hook's remembered reading of it).
		{req(true, "mips64el-linux", "m"), daemon.Decline, []string{"ignoring 'loose': unsigned, and trust is \"acl\"", "no machine builds mips64el-linux"}, "building"},
		// Only the untrusted one builds riscv64-linux: as if absent.
		{req(true, "riscv64-linux", "r"), daemon.Decline, []string{"no machine builds riscv64-linux"}, "rogue"},
		// The twin's announcement says aarch64-linux, its static entry
		// (same host key) does not: the static entry wins.
		{req(true, "aarch64-linux", "a"), daemon.Decline, []string{"'builder-twin:22': does not build aarch64-linux"}, "127.0.0.9"},
	}
	for i, tc := range tests {
		if i == 0 {
			continue // accepting ends the process; done last below
		}
		rep := mustReply(t, h, tc.r, tc.answer)
		if !chatterHas(rep, tc.says...) || strings.Contains(strings.Join(rep.Chatter, "\n"), tc.never) {
			t.Errorf("%q: chatter %q", tc.r.Line(), rep.Chatter)
		}
	}
	rep := mustReply(t, h, tests[0].r, tests[0].answer)
	if !chatterHas(rep, tests[0].says...) || strings.Contains(strings.Join(rep.Chatter, "\n"), tests[0].never) {
		t.Errorf("chatter %q", rep.Chatter)
	}
	res, err := h.Accept(ctxT(t), []string{drv("k")}, []string{e.output("k")})
	if err != nil || res.Outcome != daemon.Succeeded {
		t.Fatalf("%+v %v", res, err)
	}
}

// A stale snapshot is not believed: the hook says so and uses only the
// static machines (live browsing is off in tests).
func TestStaleDiscoverySnapshot(t *testing.T) {
	e := newEnv(t)
	snapshot := e.dir + "/machines.json"
	e.writeConfig(fmt.Sprintf("discovery = true\ncache = %q\n", snapshot))
	snap := &discovery.Snapshot{Updated: time.Now().Add(-time.Hour), Machines: []*discovery.Announcement{
		announce("old", "127.0.0.1", 1, "ssh-ed25519 AAAAold", true, []string{"x86_64-linux"}, nil, 1),
	}}
	if err := discovery.WriteSnapshot(snapshot, snap); err != nil {
		t.Fatal(err)
	}
	e.writeMachines()
	h := e.start("ok")
	rep := mustReply(t, h, req(true, "x86_64-linux", "s"), daemon.Decline)
	if !chatterHas(rep, "is stale", "no machine builds x86_64-linux") {
		t.Errorf("chatter %q", rep.Chatter)
	}
}
