package discovery

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv"
)

// fixtureKey is the throwaway key pair real Guix made (testdata/, from
// the shared fixtures); testdata/acl authorizes it.
func fixtureKey(t testing.TB) *pki.PrivateKey {
	t.Helper()
	k, err := pki.ReadPrivateKey("testdata/signing-key.sec")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// guileKey makes a fresh signing key with real libgcrypt (guile-gcrypt),
// the way `guix archive --generate-key` does. The key is printed as
// ISO-8859-1, octet for octet as libgcrypt printed it (as 'guix
// authenticate' prints): in the locale's encoding, about one key in 3,400
// would come out with its secret's octets 0xA1–0xFF as UTF-8 or, in the C
// locale, as "?" — a destroyed key, whatever the reader (internal/pki
// tests both forms with fixed keys).
func guileKey(t testing.TB) *pki.PrivateKey {
	t.Helper()
	guile := testenv.LookPath(t, "guile", "guile-3.0")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, guile, "-c", `(use-modules (gcrypt pk-crypto))
(set-port-encoding! (current-output-port) "ISO-8859-1")
(set-port-conversion-strategy! (current-output-port) 'error)
(let ((k (generate-key (string->canonical-sexp "(genkey (ecc (curve Ed25519) (flags rfc6979)))"))))
  (display (canonical-sexp->string (find-sexp-token k 'private-key))))`).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "gcrypt") && strings.Contains(string(out), "no code for module") {
			testenv.Skip(t, "guile-gcrypt not installed (Debian package guile-gcrypt)")
		}
		t.Fatalf("guile generate-key: %v\n%s", err, out)
	}
	k, err := pki.ParsePrivateKey(out, "guile")
	if err != nil {
		t.Fatalf("parse guile key: %v\n%s", err, out)
	}
	return k
}

func fixtureACL(t testing.TB) *pki.ACL {
	t.Helper()
	acl, err := pki.ReadACL("testdata/acl")
	if err != nil {
		t.Fatal(err)
	}
	return acl
}

// received simulates a master receiving the signed announcement a from
// address from: the TXT record goes through the wire codec, and the
// browser fills in the resolved address.
func received(t testing.TB, a *Announcement, txt []string, from string) *Announcement {
	t.Helper()
	b, err := ParseTXT(a.Instance, a.Port, txt)
	if err != nil {
		t.Fatalf("ParseTXT: %v", err)
	}
	b.Addresses = []netip.Addr{netip.MustParseAddr(from)}
	b.Name = chooseName(b)
	return b
}

func TestSignVerify(t *testing.T) {
	key := fixtureKey(t)
	a := testAnnouncement(t)
	if err := a.Sign(key); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.SigningKey, "ecdsa-ed25519:") || a.Sig == "" {
		t.Fatalf("signed: signing-key %q sig %q", a.SigningKey, a.Sig)
	}
	if err := a.Verify(); err != nil {
		t.Fatalf("Verify of our own signature: %v", err)
	}
	b := received(t, a, a.TXT(), "169.254.1.2")
	if err := b.Verify(); err != nil {
		t.Fatalf("Verify after the wire: %v", err)
	}
	// Every string within the limits.
	total := 0
	for _, s := range a.TXT() {
		if len(s) > MaxTXTString {
			t.Errorf("%d bytes: %q", len(s), s)
		}
		total += 1 + len(s)
	}
	if total > MaxTXTTotal {
		t.Errorf("TXT is %d bytes", total)
	}
	// A fresh libgcrypt key signs too.
	c := testAnnouncement(t)
	if err := c.Sign(guileKey(t)); err != nil {
		t.Fatal(err)
	}
	if err := received(t, c, c.TXT(), "169.254.1.2").Verify(); err != nil {
		t.Fatalf("Verify with a guile-gcrypt key: %v", err)
	}
}

func TestACLPolicy(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	policy := &ACLPolicy{ACL: fixtureACL(t), File: "testdata/acl"}
	key := fixtureKey(t)
	stranger := guileKey(t)

	signed := func(k *pki.PrivateKey, ts time.Time) *Announcement {
		a := testAnnouncement(t)
		a.Time = ts
		if err := a.Sign(k); err != nil {
			t.Fatal(err)
		}
		return a
	}
	tamper := func(txt []string, key, value string) []string {
		out := append([]string(nil), txt...)
		for i, s := range out {
			if strings.HasPrefix(s, key+"=") {
				out[i] = key + "=" + value
			}
		}
		return out
	}
	good := signed(key, now.Add(-time.Minute))
	unsigned := testAnnouncement(t)
	unsigned.Time = now
	other := signed(stranger, now)
	stale := signed(key, now.Add(-11*time.Minute))
	future := signed(key, now.Add(3*time.Minute))
	noTime := testAnnouncement(t)
	noTime.Time = time.Time{}
	if err := noTime.Sign(key); err != nil {
		t.Fatal(err)
	}
	// A signature that belongs to another announcement (same key).
	swapped := tamper(good.TXT(), "sig", other.Sig)
	otherButOurKey := tamper(other.TXT(), "signing-key", good.SigningKey)

	tests := []struct {
		name   string
		a      *Announcement
		ok     bool
		reason string
	}{
		{"good", received(t, good, good.TXT(), "169.254.1.2"), true, "signed by a key in testdata/acl"},
		{"good over IPv6", received(t, good, good.TXT(), "fe80::1"), true, "signed by a key in"},
		{"unsigned", received(t, unsigned, unsigned.TXT(), "169.254.1.2"), false, "not signed"},
		{"unknown key", received(t, other, other.TXT(), "169.254.1.2"), false, "not in testdata/acl"},
		{"tampered load", received(t, good, tamper(good.TXT(), "load", "0.01"), "169.254.1.2"), false, "signature does not match"},
		{"tampered host key", received(t, good, tamper(good.TXT(), "host-key", testHostKey(t, 7)), "169.254.1.2"), false, "signature does not match"},
		{"tampered addrs", received(t, good, tamper(good.TXT(), "addrs", "169.254.6.6"), "169.254.6.6"), false, "signature does not match"},
		{"extra key", received(t, good, append(good.TXT(), "x=1"), "169.254.1.2"), false, "signature does not match"},
		{"signature of another announcement", received(t, good, swapped, "169.254.1.2"), false, "signature does not match"},
		{"stranger claims our key", received(t, other, otherButOurKey, "169.254.1.2"), false, "signature does not match"},
		// ParseTXT does not decode the key's point (the ACL's keys
		// come decoded): one off the curve is refused here.
		{"signing key off the curve", received(t, good, tamper(good.TXT(), "signing-key", "ecdsa-ed25519:AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), "169.254.1.2"), false, "bad signing key"},
		{"stale", received(t, stale, stale.TXT(), "169.254.1.2"), false, "stale"},
		{"future", received(t, future, future.TXT(), "169.254.1.2"), false, "future"},
		{"no time", received(t, noTime, noTime.TXT(), "169.254.1.2"), false, "no time"},
		{"replay from another address", received(t, good, good.TXT(), "169.254.9.9"), false, "not among the signed addresses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := policy.Judge(tt.a, now)
			if ok != tt.ok || !strings.Contains(reason, tt.reason) {
				t.Errorf("Judge = %v, %q; want %v, …%q…", ok, reason, tt.ok, tt.reason)
			}
		})
	}
	// Verify says why, with sentinel errors callers can test.
	if err := received(t, unsigned, unsigned.TXT(), "169.254.1.2").Verify(); !errors.Is(err, ErrUnsigned) {
		t.Errorf("Verify(unsigned) = %v", err)
	}
	if err := received(t, good, tamper(good.TXT(), "load", "0.01"), "169.254.1.2").Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify(tampered) = %v", err)
	}
	// A corrupt signature is a parse error naming sig.
	bad := tamper(good.TXT(), "sig", base64.StdEncoding.EncodeToString([]byte("short")))
	if err := received(t, good, bad, "169.254.1.2").Verify(); err == nil {
		t.Error("Verify accepted a 5-byte signature")
	}
}

func TestTOFUPolicy(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state", "pins.json")
	p := &TOFUPolicy{File: file}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	a := testAnnouncement(t)
	if ok, reason := p.Judge(a, now); !ok || !strings.Contains(reason, "pinned on first use") {
		t.Fatalf("first use: %v %q", ok, reason)
	}
	data, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(data), a.HostKey) {
		t.Fatalf("pin file: %v\n%s", err, data)
	}
	// Same key (with a comment added): still trusted, by a fresh policy
	// reading the file.
	p2 := &TOFUPolicy{File: file}
	b := testAnnouncement(t)
	b.HostKey += " root@builder1"
	if ok, reason := p2.Judge(b, now.Add(time.Hour)); !ok || !strings.Contains(reason, "matches") {
		t.Errorf("same key: %v %q", ok, reason)
	}
	// Another host key under the same instance name: rejected.
	c := testAnnouncement(t)
	c.HostKey = testHostKey(t, 8)
	if ok, reason := p2.Judge(c, now); ok || !strings.Contains(reason, "differs from the one pinned") {
		t.Errorf("changed key: %v %q", ok, reason)
	}
	// Another instance gets its own pin.
	d := testAnnouncement(t)
	d.Instance = "builder2"
	d.HostKey = testHostKey(t, 8)
	if ok, _ := p2.Judge(d, now); !ok {
		t.Error("second instance not pinned")
	}
	// No temporary files left behind: only the pins and their lock.
	entries, _ := os.ReadDir(filepath.Dir(file))
	for _, e := range entries {
		if e.Name() != "pins.json" && e.Name() != "pins.json.lock" {
			t.Errorf("state directory holds %s", e.Name())
		}
	}
	// A corrupt pin file rejects, saying why.
	if err := os.WriteFile(file, []byte("{nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, reason := p2.Judge(a, now); ok || !strings.Contains(reason, "pins") {
		t.Errorf("corrupt file: %v %q", ok, reason)
	}
}

func TestParsePolicy(t *testing.T) {
	if _, err := ParsePolicy("acl", "testdata/acl", ""); err != nil {
		t.Error(err)
	}
	if _, err := ParsePolicy("acl", "testdata/missing", ""); err == nil {
		t.Error("missing ACL accepted")
	}
	if p, err := ParsePolicy("any", "", ""); err != nil || p == nil {
		t.Error(err)
	}
	if _, err := ParsePolicy("trusting", "", ""); err == nil || !strings.Contains(err.Error(), "acl, tofu or any") {
		t.Errorf("unknown policy: %v", err)
	}
}

// TestTOFUPolicyConcurrentPins: writers that share nothing but the file
// (as the hook and the watcher do, each with its own policy) pin
// different instances at the same time, and every pin survives.
func TestTOFUPolicyConcurrentPins(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pins.json")
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	const writers = 12
	key := testHostKey(t, 8)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &TOFUPolicy{File: file}
			a := &Announcement{Instance: fmt.Sprintf("builder%d", i)}
			a.HostKey = key
			<-start
			if ok, reason := p.Judge(a, now); !ok {
				t.Errorf("%s: %s", a.Instance, reason)
			}
		}()
	}
	close(start)
	wg.Wait()
	pins, err := (&TOFUPolicy{File: file}).read()
	if err != nil {
		t.Fatal(err)
	}
	for i := range writers {
		if _, ok := pins[fmt.Sprintf("builder%d", i)]; !ok {
			t.Errorf("pin of builder%d lost; file has %d pins", i, len(pins))
		}
	}
}

// TestACLPolicyMemoNeverTrustsUnchecked: the policy remembers signature
// checks, keyed by what was signed: once a genuine announcement was
// judged (and prepared), a tampered copy under the same key and
// signature is still rejected, and a genuine one still accepted.
func TestACLPolicyMemoNeverTrustsUnchecked(t *testing.T) {
	policy := &ACLPolicy{ACL: fixtureACL(t), File: "testdata/acl"}
	a := testAnnouncement(t)
	a.Time = time.Now().Truncate(time.Second)
	if err := a.Sign(fixtureKey(t)); err != nil {
		t.Fatal(err)
	}
	good := received(t, a, a.TXT(), "169.254.1.2")
	policy.prepare(good)
	for range 2 {
		if ok, reason := policy.Judge(good, time.Now()); !ok {
			t.Fatalf("genuine announcement rejected: %s", reason)
		}
	}
	txt := a.TXT()
	for i, s := range txt {
		if strings.HasPrefix(s, "load=") {
			txt[i] = "load=0.01"
		}
	}
	bad := received(t, a, txt, "169.254.1.2")
	policy.prepare(bad)
	for range 2 {
		if ok, reason := policy.Judge(bad, time.Now()); ok || !strings.Contains(reason, ErrBadSignature.Error()) {
			t.Fatalf("tampered announcement: ok %v, reason %q; want rejected for its signature", ok, reason)
		}
	}
	if ok, reason := policy.Judge(good, time.Now()); !ok {
		t.Fatalf("genuine announcement rejected after a tampered one: %s", reason)
	}
}

// TestReadACLPolicy: a file that cannot be read is an error at once;
// one that cannot be parsed is Wait's, and the policy accepts nothing;
// a good one judges as ParsePolicy's.
func TestReadACLPolicy(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadACLPolicy(filepath.Join(dir, "missing")); err == nil || !strings.HasPrefix(err.Error(), "read ACL: ") || strings.Count(err.Error(), "read ACL") != 1 {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("(acl (entry"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := ReadACLPolicy(bad)
	if err != nil {
		t.Fatalf("unparsable file: error before parsing: %v", err)
	}
	good := signedReceived(t)
	if ok, why := p.Judge(good, time.Now()); ok || !strings.Contains(why, "read ACL") {
		t.Errorf("policy of an unparsable ACL: %v, %q", ok, why)
	}
	if err := p.Wait(); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Wait: %v, want the parse error naming %s", err, bad)
	}
	p, err = ReadACLPolicy("testdata/acl")
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := p.Judge(good, time.Now()); !ok {
		t.Errorf("good announcement: %s", why)
	}
	if _, err := ParsePolicy("acl", bad, ""); err == nil {
		t.Error("ParsePolicy accepted an unparsable ACL")
	}
}
