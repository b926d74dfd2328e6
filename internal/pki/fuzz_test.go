package pki

import (
	"strings"
	"testing"
)

// Seeds live in testdata/fuzz/FuzzX; these add the fixtures.
func addFixtureSeeds(f *testing.F) {
	for _, name := range []string{"signing-key.pub", "signing-key.sec", "acl", "signature-hello.txt.sexp",
		"quoted/d-latin1.sec", "quoted/d-utf8.sec", "quoted/d.pub", "quoted/q-utf8.acl", "quoted/q-latin1.acl", "quoted/q.sig"} {
		f.Add(readTestdata(f, name))
	}
}

func FuzzParsePublicKey(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePublicKey(data, "fuzz")
		if err != nil {
			return
		}
		// What we write, we read back as the same key.
		back, err := ParsePublicKey(k.MarshalSexp(), "marshaled")
		if err != nil || !back.Equal(k) {
			t.Fatalf("round trip of %q: %v", data, err)
		}
		_ = k.Fingerprint()
		if c, err := k.Compact(); err == nil {
			if back, err := ParseCompactPublicKey(c); err != nil || !back.Equal(k) {
				t.Fatalf("compact round trip of %q: %v", c, err)
			}
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePrivateKey(data, "fuzz")
		if err != nil {
			return
		}
		var hash [32]byte
		sig, err := k.Sign(hash)
		if err != nil {
			return // RSA
		}
		if _, err := Verify(sig, hash, NewACL(k.Public())); err != nil {
			t.Fatalf("own signature does not verify: %v\n%s", err, sig)
		}
	})
}

func FuzzParseACL(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseACL(data, "fuzz")
		if err != nil {
			return
		}
		back, err := ParseACL(a.MarshalSexp(), "marshaled")
		if err != nil || len(back.Keys()) != len(a.Keys()) {
			t.Fatalf("round trip: %v", err)
		}
		for _, k := range a.Keys() {
			if !back.Authorizes(k) {
				t.Fatalf("round trip lost %v", k)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	addFixtureSeeds(f)
	acl, err := ParseACL(readTestdata(f, "acl"), "acl")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignature(data, "fuzz")
		if err != nil {
			return
		}
		if _, err := Verify(data, s.Hash, acl); err == nil && !acl.Authorizes(s.Signer) {
			t.Fatalf("verified a signature by a key outside the ACL")
		}
	})
}

// FuzzCheckCompactPublicKey: CheckCompactPublicKey accepts whatever
// ParseCompactPublicKey accepts, and an ACL finds its own keys only.
func FuzzCheckCompactPublicKey(f *testing.F) {
	f.Add("ecdsa-ed25519:AAAA")
	f.Add("ecdsa-ed25519:" + strings.Repeat("A", 43) + "=")
	f.Add("eddsa-ed25519:" + strings.Repeat("A", 43))
	f.Add("rsa:KHB1YmxpYy1rZXkp")
	f.Fuzz(func(t *testing.T, s string) {
		k, perr := ParseCompactPublicKey(s)
		if cerr := CheckCompactPublicKey(s); perr == nil && cerr != nil {
			t.Fatalf("%q parses but CheckCompactPublicKey says %v", s, cerr)
		}
		if perr != nil {
			return
		}
		acl := NewACL(k)
		if got := acl.KeyOfCompact(s); got != nil && !got.Equal(k) {
			t.Fatalf("KeyOfCompact(%q) = another key", s)
		}
	})
}
