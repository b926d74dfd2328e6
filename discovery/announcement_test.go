package discovery

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testHostKey returns a real OpenSSH ed25519 public key line, made from a
// fixed seed so tests are reproducible.
func testHostKey(t testing.TB, seed byte) string {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	pub := ed25519.NewKeyFromSeed(s).Public()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func testAnnouncement(t testing.TB) *Announcement {
	t.Helper()
	thr := 0.7
	a := &Announcement{Instance: "builder1", Load: 0.35, FreeDisk: 52341}
	a.Port = 2222
	a.Systems = []string{"x86_64-linux", "i686-linux"}
	a.ParallelBuilds = 4
	a.Speed = 2
	a.Features = []string{"kvm", "big-parallel"}
	a.User = "offload"
	a.HostKey = testHostKey(t, 1)
	a.OverloadThreshold = &thr
	a.Addresses = []netip.Addr{netip.MustParseAddr("169.254.1.2"), netip.MustParseAddr("fe80::1")}
	a.Time = time.Unix(1_800_000_000, 0).UTC()
	return a
}

func TestTXTRoundTrip(t *testing.T) {
	a := testAnnouncement(t)
	txt := a.TXT()
	want := []string{
		"txtvers=1",
		"systems=x86_64-linux,i686-linux",
		"parallel-builds=4",
		"speed=2.0",
		"features=kvm,big-parallel",
		"user=offload",
		"host-key=" + a.HostKey,
		"overload-threshold=0.7",
		"load=0.35",
		"free-disk=52341",
		"addrs=169.254.1.2,fe80::1",
		"ts=1800000000",
	}
	if !reflect.DeepEqual(txt, want) {
		t.Fatalf("TXT() =\n%q\nwant\n%q", txt, want)
	}
	b, err := ParseTXT(a.Instance, a.Port, txt)
	if err != nil {
		t.Fatal(err)
	}
	if b.Instance != "builder1" || b.Port != 2222 || b.User != "offload" || b.HostKey != a.HostKey ||
		!reflect.DeepEqual(b.Systems, a.Systems) || !reflect.DeepEqual(b.Features, a.Features) ||
		b.ParallelBuilds != 4 || b.Speed != 2 || *b.OverloadThreshold != 0.7 || b.Load != 0.35 ||
		b.FreeDisk != 52341 || !b.Time.Equal(a.Time) || b.TXTVers != 1 ||
		!reflect.DeepEqual(b.SignedAddresses, a.Addresses) {
		t.Errorf("ParseTXT(TXT()) = %+v\nwant %+v", b, a)
	}
	// Guix's defaults for what the TXT record does not carry.
	if b.Compression == "" || b.DaemonSocket == "" {
		t.Errorf("defaults not applied: %+v", b.Machine)
	}
	if err := a.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestParseTXTDefaultsAndUnknownKeys(t *testing.T) {
	hk := testHostKey(t, 2)
	a, err := ParseTXT("b", 22, []string{"txtvers=1", "systems=aarch64-linux", "user=u", "host-key=" + hk, "future-key=whatever", "flag"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ParallelBuilds != 1 || a.Speed != 1 || a.OverloadThreshold == nil || *a.OverloadThreshold != 0.8 ||
		a.Load != Unknown || a.FreeDisk != Unknown || a.SigningKey != "" || !a.Time.IsZero() || len(a.Features) != 0 {
		t.Errorf("defaults: %+v", a)
	}
	b, err := ParseTXT("b", 22, []string{"txtvers=1", "systems=aarch64-linux", "user=u", "host-key=" + hk, "overload-threshold=#f"})
	if err != nil {
		t.Fatal(err)
	}
	if b.OverloadThreshold != nil {
		t.Errorf("overload-threshold=#f gave %v", *b.OverloadThreshold)
	}
	if got := b.TXT(); !strings.Contains(strings.Join(got, " "), "overload-threshold=#f") {
		t.Errorf("TXT() lost #f: %q", got)
	}
}

func TestParseTXTErrors(t *testing.T) {
	hk := testHostKey(t, 3)
	base := []string{"txtvers=1", "systems=x86_64-linux", "user=offload", "host-key=" + hk}
	with := func(extra ...string) []string {
		out := append([]string(nil), base...)
		for _, e := range extra {
			k, _, _ := strings.Cut(e, "=")
			replaced := false
			for i, s := range out {
				if strings.HasPrefix(s, k+"=") {
					out[i] = e
					replaced = true
				}
			}
			if !replaced {
				out = append(out, e)
			}
		}
		return out
	}
	without := func(key string) []string {
		var out []string
		for _, s := range base {
			if !strings.HasPrefix(s, key+"=") {
				out = append(out, s)
			}
		}
		return out
	}
	tests := []struct {
		name     string
		instance string
		port     int
		txt      []string
		field    string
	}{
		{"no txtvers", "b", 22, without("txtvers"), "txtvers"},
		{"bad txtvers", "b", 22, with("txtvers=one"), "txtvers"},
		{"no systems", "b", 22, without("systems"), "systems"},
		{"empty systems", "b", 22, with("systems="), "systems"},
		{"bad system", "b", 22, with("systems=x86_64-linux,a b"), "systems"},
		{"empty system", "b", 22, with("systems=x86_64-linux,,"), "systems"},
		{"no user", "b", 22, without("user"), "user"},
		{"bad user", "b", 22, with("user=a b"), "user"},
		{"no host key", "b", 22, without("host-key"), "host-key"},
		{"bad host key", "b", 22, with("host-key=ssh-ed25519 AAAAnotbase64!"), "host-key"},
		{"parallel-builds zero", "b", 22, with("parallel-builds=0"), "parallel-builds"},
		{"parallel-builds text", "b", 22, with("parallel-builds=four"), "parallel-builds"},
		{"speed negative", "b", 22, with("speed=-1"), "speed"},
		{"speed NaN", "b", 22, with("speed=NaN"), "speed"},
		{"speed Inf", "b", 22, with("speed=+Inf"), "speed"},
		{"load", "b", 22, with("load=high"), "load"},
		{"free-disk", "b", 22, with("free-disk=-5"), "free-disk"},
		{"overload", "b", 22, with("overload-threshold=yes"), "overload-threshold"},
		{"features", "b", 22, with("features=kvm;rm -rf"), "features"},
		{"addrs", "b", 22, with("addrs=169.254.1.2,nowhere"), "addrs"},
		{"ts", "b", 22, with("ts=yesterday"), "ts"},
		{"sig not base64", "b", 22, with("sig=!!!"), "sig"},
		{"signing-key", "b", 22, with("signing-key=nonsense"), "signing-key"},
		{"duplicate", "b", 22, append(with(), "user=other"), "user"},
		{"duplicate case", "b", 22, append(with(), "USER=other"), "user"},
		{"control char", "b", 22, with("load=0.1\n"), "load"},
		{"empty key", "b", 22, with("=x"), "TXT"},
		{"oversized string", "b", 22, with("features=" + strings.Repeat("k", 250)), "features"},
		{"oversized record", "b", 22, with("x1="+strings.Repeat("a", 250), "x2="+strings.Repeat("a", 250), "x3="+strings.Repeat("a", 250), "x4="+strings.Repeat("a", 250), "x5="+strings.Repeat("a", 250)), "TXT"},
		{"instance empty", "", 22, base, "instance"},
		{"instance long", strings.Repeat("i", 64), 22, base, "instance"},
		{"instance newline", "a\nb", 22, base, "instance"},
		{"port zero", "b", 0, base, "port"},
		{"port big", "b", 70000, base, "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseTXT(tt.instance, tt.port, tt.txt)
			var te *TXTError
			if !errors.As(err, &te) {
				t.Fatalf("ParseTXT = %+v, %v; want a *TXTError", a, err)
			}
			if te.Field != tt.field {
				t.Errorf("error %q names field %q, want %q", err, te.Field, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %q", err, tt.field)
			}
		})
	}
}

func TestCheckOversizedHostKey(t *testing.T) {
	a := testAnnouncement(t)
	// An RSA host key does not fit in one TXT string.
	a.HostKey = "ssh-rsa " + strings.Repeat("A", 400)
	err := a.Check()
	var te *TXTError
	if !errors.As(err, &te) || te.Field != "host-key" {
		t.Fatalf("Check = %v, want a host-key TXTError", err)
	}
}

func TestSignedHashCoversEverythingButSig(t *testing.T) {
	a := testAnnouncement(t)
	h := a.SignedHash()
	b, err := ParseTXT(a.Instance, a.Port, append(a.TXT(), "sig=AAAA"))
	if err != nil {
		t.Fatal(err)
	}
	if b.SignedHash() != h {
		t.Error("sig changes the signed hash")
	}
	// Order of the TXT strings does not matter.
	txt := a.TXT()
	for i, j := 0, len(txt)-1; i < j; i, j = i+1, j-1 {
		txt[i], txt[j] = txt[j], txt[i]
	}
	c, err := ParseTXT(a.Instance, a.Port, txt)
	if err != nil {
		t.Fatal(err)
	}
	if c.SignedHash() != h {
		t.Error("TXT order changes the signed hash")
	}
	// Everything else does: the instance, the port, each value, and
	// unknown keys.
	changes := map[string]func(*Announcement){
		"instance": func(x *Announcement) { x.Instance = "builder2" },
		"port":     func(x *Announcement) { x.Port = 22 },
		"load":     func(x *Announcement) { x.Load = 0.36 },
		"host-key": func(x *Announcement) { x.HostKey = testHostKey(t, 9) },
		"addrs":    func(x *Announcement) { x.Addresses = x.Addresses[:1] },
		"ts":       func(x *Announcement) { x.Time = x.Time.Add(time.Second) },
	}
	for name, change := range changes {
		x := testAnnouncement(t)
		change(x)
		if x.SignedHash() == h {
			t.Errorf("changing %s does not change the signed hash", name)
		}
	}
	d, err := ParseTXT(a.Instance, a.Port, append(a.TXT(), "future=1"))
	if err != nil {
		t.Fatal(err)
	}
	if d.SignedHash() == h {
		t.Error("an unknown key is not covered by the signed hash")
	}
}

// TestWriteJSONLong: a long list, encoded on every core, prints exactly
// what one json.Encoder prints.
func TestWriteJSONLong(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 65, 500} {
		var as []*Announcement
		for i := range n {
			a := testAnnouncement(t)
			a.Instance = fmt.Sprintf("b<%d>&\u2028", i)
			a.Load = float64(i) / 7
			a.Trusted = i%3 == 0
			as = append(as, a)
		}
		var got, want bytes.Buffer
		if err := Write(&got, "json", as); err != nil {
			t.Fatal(err)
		}
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if as == nil {
			as = []*Announcement{}
		}
		if err := enc.Encode(as); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%d machines: differs from json.Encoder:\n%s\nwant:\n%s", n, got.Bytes()[:min(got.Len(), 600)], want.Bytes()[:min(want.Len(), 600)])
		}
	}
}
