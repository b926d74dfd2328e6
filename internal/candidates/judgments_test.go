package candidates

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/atomicfile"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/scm"
)

// Under trust "acl" the hook judges the snapshot's machines itself: the
// signature with its own ACL, the address it will connect to against the
// signed ones, and the signature's time at each decision. The writer's
// judgment does not widen that, and an older snapshot without records
// gives nothing trusted.
func TestSnapshotVerifiedByHook(t *testing.T) {
	now := time.Now()
	key, err := pki.ReadPrivateKey("testdata/signing-key.sec")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := pki.GenerateKey(pki.TypeECDSA, nil)
	if err != nil {
		t.Fatal(err)
	}
	hostKey := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDs8rR0lXyZk6iQ2F4kOcbq6uMFIk2x1sBlHPo2kYmbJ"
	mk := func(instance, signedAddr, connect string, k *pki.PrivateKey, ts time.Time) *discovery.Announcement {
		a := &discovery.Announcement{Machine: scm.DefaultMachine(), Instance: instance, Load: 0.1, FreeDisk: 50000,
			Trusted: true, TrustReason: "the writer said so", Source: "mdns:eth0", Seen: now}
		a.Port, a.Systems, a.User, a.HostKey, a.ParallelBuilds = 22, []string{"x86_64-linux"}, "offload", hostKey, 1
		a.Addresses = []netip.Addr{netip.MustParseAddr(signedAddr)}
		a.Time = ts
		if k != nil {
			if err := a.Sign(k); err != nil {
				t.Fatal(err)
			}
		}
		// Received: "addrs" as signed; the address the master's browser
		// resolved, which it will connect to.
		a.SignedAddresses = a.Addresses
		a.Name = connect
		a.Addresses = []netip.Addr{netip.MustParseAddr(connect)}
		return a
	}
	// The snapshot is fresh at both decisions below (now, and nearly
	// MaxAge later), so only the signatures' time tells them apart.
	snap := &discovery.Snapshot{Updated: now, Machines: []*discovery.Announcement{
		mk("good", "169.254.1.1", "169.254.1.1", key, now.Add(-time.Minute)),
		mk("stranger", "169.254.1.2", "169.254.1.2", stranger, now),
		mk("replayed", "169.254.1.3", "169.254.9.9", key, now),
		mk("stale", "169.254.1.4", "169.254.1.4", key, now.Add(-time.Hour)),
		mk("unsigned", "169.254.1.5", "169.254.1.5", nil, now),
		// Sound, but the writer's policy rejected it (an older ACL, say):
		// the hook's own judgment decides.
		func() *discovery.Announcement {
			a := mk("writer-rejected", "169.254.1.6", "169.254.1.6", key, now)
			a.Trusted = false
			return a
		}(),
	}}
	dir := t.TempDir()
	o := &Options{StateDirectory: filepath.Join(dir, "state"), Snapshot: filepath.Join(dir, "cache.json"),
		Discovery: true, Trust: "acl", Env: os.Getenv}
	o.ACL, _ = filepath.Abs("testdata/acl")
	if err := discovery.WriteSnapshot(o.Snapshot, snap); err != nil {
		t.Fatal(err)
	}
	// Edit a signed field in the file: the signed value counts.
	data, err := os.ReadFile(o.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(o.Snapshot, []byte(strings.Replace(string(data), `"user": "offload"`, `"user": "mallory"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	machines := func(src *Loader, at time.Time) (names []string, notes string) {
		t.Helper()
		_, disc, ns, err := src.Load(context.Background(), o, at)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range disc {
			names = append(names, m.Status.Instance)
			if m.User != "offload" {
				t.Errorf("%s: user %q from the edited file, want the signed one", m.Status.Instance, m.User)
			}
		}
		return names, strings.Join(ns, "\n")
	}
	names, notes := machines(&Loader{}, now)
	if got := strings.Join(names, ","); got != "good,writer-rejected" {
		t.Errorf("trusted %s, want good,writer-rejected\nnotes:\n%s", got, notes)
	}
	for _, want := range []string{
		"ignoring 'stranger': signing key is not in " + o.ACL,
		"ignoring 'replayed': address 169.254.9.9 is not among the signed addresses",
		"ignoring discovered machine 'stale': signature is stale",
		"ignoring 'unsigned': unsigned",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	// The judgments are kept for the next hook process; the signature's
	// time is judged again at each decision.
	v := readJudgments(filepath.Join(o.StateDirectory, "cache", "judgments"))
	if len(v) != 5 {
		t.Errorf("%d judgments kept, want 5 (every signed machine)", len(v))
	}
	// The watcher goes on writing the file meanwhile (a snapshot from
	// the future would be stale).
	later := now.Add(discovery.MaxAge - 30*time.Second)
	setUpdated := func(from, to time.Time) {
		t.Helper()
		data, err := os.ReadFile(o.Snapshot)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := json.Marshal(from.UTC())
		tt, _ := json.Marshal(to.UTC())
		edited := strings.Replace(string(data), `"updated": `+string(f), `"updated": `+string(tt), 1)
		if edited == string(data) {
			t.Fatalf("no updated time %s in the snapshot", f)
		}
		if err := os.WriteFile(o.Snapshot, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setUpdated(now, later)
	names, notes = machines(&Loader{}, later)
	if got := strings.Join(names, ","); got != "writer-rejected" {
		t.Errorf("%s later: trusted %s, want writer-rejected\nnotes:\n%s", discovery.MaxAge, got, notes)
	}
	if !strings.Contains(notes, "ignoring discovered machine 'good': signature is stale") {
		t.Errorf("notes:\n%s", notes)
	}

	// Commands that show what the hook sees judge the same way.
	setUpdated(later, now)
	ms, why, err := Considered(context.Background(), o, now)
	if err != nil || len(ms) != 2 || ms[0].Status.Instance != "good" || ms[1].Status.Instance != "writer-rejected" {
		t.Errorf("Considered: %d machines, %v, notes %q", len(ms), err, why)
	}

	// A snapshot written before records were kept: nothing is trusted,
	// and the hook says why.
	old := `{"updated": "` + now.UTC().Format(time.RFC3339Nano) + `", "machines": [{"instance": "builder1", "name": "169.254.1.1", "port": 22,
		"systems": ["x86_64-linux"], "user": "offload", "host-key": "` + hostKey + `", "signing-key": "` + snap.Machines[0].SigningKey + `", "trusted": true}]}`
	if err := os.WriteFile(o.Snapshot, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	names, notes = machines(&Loader{}, now)
	if len(names) != 0 || !strings.Contains(notes, "ignoring 'builder1': the snapshot does not carry its signed TXT record") {
		t.Errorf("older snapshot: trusted %v\nnotes:\n%s", names, notes)
	}

	// Under trust "any" the writer's judgment stands.
	o.Trust = "any"
	snap.Updated = now
	if err := discovery.WriteSnapshot(o.Snapshot, snap); err != nil {
		t.Fatal(err)
	}
	names, _ = machines(&Loader{}, now)
	if got := strings.Join(names, ","); got != "good,stranger,replayed,stale,unsigned" {
		t.Errorf("trust any: %s", got)
	}
}

func TestJudgmentsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "judgments")
	k := strings.Repeat("ab", 32)
	want := map[string]judgment{k: {true, "signed by a key in /etc/guix/acl"}, strings.Repeat("cd", 32): {false, "tab\there \"quoted\""}}
	if err := atomicfile.Write(path, encodeJudgments(want), atomicfile.Private); err != nil {
		t.Fatal(err)
	}
	got := readJudgments(path)
	if len(got) != 2 || got[k] != want[k] || got[strings.Repeat("cd", 32)] != want[strings.Repeat("cd", 32)] {
		t.Errorf("got %v", got)
	}
	for _, bad := range []string{"", "other magic\n", judgmentsMagic + "\nshort\t1\t\"x\"\n", judgmentsMagic + "\n" + k + "\t2\t\"x\"\n", judgmentsMagic + "\n" + k + "\t1\tunquoted\n"} {
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := readJudgments(path); len(got) != 0 {
			t.Errorf("%q: %v", bad, got)
		}
	}
}
