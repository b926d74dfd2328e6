package pki

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
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
