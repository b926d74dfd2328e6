package pki

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/edwards25519"
)

func TestCompactRoundTrip(t *testing.T) {
	pub, sec, _ := fixtureKeys(t)
	ed, err := ParsePrivateKey([]byte("(private-key (ecc (curve Ed25519) (flags eddsa) (d #000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F#)))"), "ed")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*PrivateKey{sec, ed} {
		t.Run(k.Public().Type(), func(t *testing.T) {
			c, err := k.Public().Compact()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(c, k.Public().Type()+":") || len(c) > 255 {
				t.Errorf("compact form %q", c)
			}
			back, err := ParseCompactPublicKey(c)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(k.Public()) {
				t.Errorf("round trip changed the key")
			}
			hash := sha256.Sum256([]byte("announcement"))
			sig, err := k.SignRaw(hash)
			if err != nil {
				t.Fatal(err)
			}
			if len(sig) != 64 {
				t.Errorf("raw signature is %d bytes", len(sig))
			}
			if err := back.VerifyRaw(hash, sig); err != nil {
				t.Errorf("VerifyRaw: %v", err)
			}
			hash[0] ^= 1
			if err := back.VerifyRaw(hash, sig); !errors.Is(err, ErrBadSignature) {
				t.Errorf("VerifyRaw of another hash: %v, want ErrBadSignature", err)
			}
			hash[0] ^= 1
			sig[10] ^= 1
			if err := back.VerifyRaw(hash, sig); !errors.Is(err, ErrBadSignature) {
				t.Errorf("VerifyRaw of a damaged signature: %v, want ErrBadSignature", err)
			}
			if err := back.VerifyRaw(hash, sig[:63]); !errors.Is(err, ErrMalformed) {
				t.Errorf("VerifyRaw of a short signature: %v, want ErrMalformed", err)
			}
		})
	}
	// The ECDSA and EdDSA keys of one point are different keys.
	other := &PublicKey{typ: TypeEdDSA, q: pub.q}
	if other.Equal(pub) {
		t.Errorf("EdDSA and ECDSA keys with the same q compare equal")
	}
	// EdDSA raw signatures are plain Ed25519 signatures of the digest.
	hash := sha256.Sum256([]byte("x"))
	sig, _ := ed.SignRaw(hash)
	if !ed25519.Verify(ed25519.PublicKey(ed.Public().q), hash[:], sig) {
		t.Errorf("EdDSA raw signature is not an Ed25519 signature of the digest")
	}
}

func TestParseCompactErrors(t *testing.T) {
	for _, s := range []string{
		"", "ecdsa-ed25519", "ecdsa-ed25519:!!!", "ecdsa-ed25519:AAAA",
		"dsa:AAAA", "rsa:KHB1YmxpYy1rZXkp",
	} {
		if k, err := ParseCompactPublicKey(s); err == nil {
			t.Errorf("ParseCompactPublicKey(%q) = %v, want an error", s, k)
		}
	}
}

// offCurve returns the compact form of 32 bytes that are a canonical
// encoding but no point of the curve.
func offCurve(t *testing.T) string {
	t.Helper()
	for y := byte(2); y < 255; y++ {
		q := make([]byte, 32)
		q[0] = y
		if _, err := edwards25519.NewIdentityPoint().SetBytes(q); err != nil {
			return TypeECDSA + ":" + base64.StdEncoding.EncodeToString(q)
		}
	}
	t.Fatal("no off-curve encoding found")
	return ""
}

// TestCheckCompact: CheckCompactPublicKey finds what ParseCompactPublicKey
// finds wrong, except a point off the curve.
func TestCheckCompact(t *testing.T) {
	pub, _, _ := fixtureKeys(t)
	good, err := pub.Compact()
	if err != nil {
		t.Fatal(err)
	}
	nonCanonical := make([]byte, 32)
	copy(nonCanonical, fieldPrime[:]) // y = p: reduced to 0 by SetBytes
	for _, s := range []string{
		"", "ecdsa-ed25519", "ecdsa-ed25519:!!!", "ecdsa-ed25519:AAAA",
		"dsa:AAAA", "rsa:KHB1YmxpYy1rZXkp", good,
		TypeECDSA + ":" + base64.StdEncoding.EncodeToString(nonCanonical),
	} {
		_, perr := ParseCompactPublicKey(s)
		if cerr := CheckCompactPublicKey(s); (cerr == nil) != (perr == nil) {
			t.Errorf("%q: CheckCompactPublicKey %v, ParseCompactPublicKey %v", s, cerr, perr)
		}
	}
	off := offCurve(t)
	if err := CheckCompactPublicKey(off); err != nil {
		t.Errorf("off-curve key: CheckCompactPublicKey %v, want nil (it decodes no point)", err)
	}
	if _, err := ParseCompactPublicKey(off); !errors.Is(err, errNotOnCurve) {
		t.Errorf("off-curve key: ParseCompactPublicKey %v", err)
	}
}

// TestKeyOfCompact: the ACL's own key for the compact form of one of
// its keys, nil for anything else.
func TestKeyOfCompact(t *testing.T) {
	pub, _, _ := fixtureKeys(t)
	acl := NewACL(pub)
	c, _ := pub.Compact()
	if k := acl.KeyOfCompact(c); k == nil || !k.Equal(pub) {
		t.Errorf("KeyOfCompact(%q) = %v, want the ACL's key", c, k)
	}
	other, err := GenerateKey(TypeECDSA, nil)
	if err != nil {
		t.Fatal(err)
	}
	oc, _ := other.Public().Compact()
	ed := TypeEdDSA + strings.TrimPrefix(c, TypeECDSA)
	for _, s := range []string{oc, ed, offCurve(t), "", "ecdsa-ed25519:", c + "AAAA", "rsa:KHB1YmxpYy1rZXkp", strings.TrimRight(c, "=")} {
		if k := acl.KeyOfCompact(s); k != nil {
			t.Errorf("KeyOfCompact(%q) = %v, want nil", s, k)
		}
	}
	if k := (*ACL)(nil).KeyOfCompact(c); k != nil {
		t.Errorf("nil ACL: %v", k)
	}
}

// TestACLOffCurveKey: an ACL entry whose point is not on the curve is
// read (as Guix reads it) and verifies nothing.
func TestACLOffCurveKey(t *testing.T) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(offCurve(t), TypeECDSA+":"))
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("(acl (entry (public-key (ecc (curve Ed25519) (q #%X#))) (tag (guix import))))", raw)
	acl, err := ParseACL([]byte(text), "acl")
	if err != nil {
		t.Fatalf("ParseACL: %v", err)
	}
	k := acl.Keys()[0]
	if err := k.VerifyRaw(sha256.Sum256([]byte("x")), make([]byte, 64)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifyRaw with an off-curve key: %v, want ErrBadSignature", err)
	}
}
