package discovery

import (
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// Errors of [Announcement.Verify]; a policy's reason wraps them.
var (
	ErrUnsigned     = errors.New("announcement is not signed")
	ErrBadSignature = errors.New("signature does not match the announcement")
)

// Sign signs a with key: it sets SigningKey to key's public key and Sig
// to the signature over [Announcement.SignedHash]. Set Time, Addresses
// and every other field first; any change afterwards needs a new
// signature. Sign fails when the announcement would not fit in a TXT
// record (see [Announcement.Check]).
func (a *Announcement) Sign(key *pki.PrivateKey) error {
	a.raw, a.rawHashFor = nil, nil
	compact, err := key.Public().Compact()
	if err != nil {
		return fmt.Errorf("sign announcement: %w", err)
	}
	a.SigningKey = compact
	// A placeholder of the final size, so the size check is exact.
	a.Sig = base64.StdEncoding.EncodeToString(make([]byte, 64))
	if err := a.Check(); err != nil {
		a.Sig = ""
		return fmt.Errorf("sign announcement: %w", err)
	}
	a.Sig = ""
	h := a.SignedHash()
	sig, err := key.SignRaw(h)
	if err != nil {
		return fmt.Errorf("sign announcement: %w", err)
	}
	a.Sig = base64.StdEncoding.EncodeToString(sig)
	return a.Check()
}

// Verify checks that a carries a signature by its own SigningKey over
// what it says. It does not say whether that key is trusted: see
// [ACLPolicy].
func (a *Announcement) Verify() error {
	if a.Sig == "" || a.SigningKey == "" {
		return ErrUnsigned
	}
	key, err := pki.ParseCompactPublicKey(a.SigningKey)
	if err != nil {
		return fmt.Errorf("parse signing key: %w", err)
	}
	return a.verifyWith(key, a.SignedHash())
}

// verifyWith checks a's signature by key (parsed from a.SigningKey)
// over h (a.SignedHash()).
func (a *Announcement) verifyWith(key *pki.PublicKey, h [32]byte) error {
	sig, err := base64.StdEncoding.DecodeString(a.Sig)
	if err != nil {
		return fmt.Errorf("decode signature: %w", err)
	}
	if err := key.VerifyRaw(h, sig); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}

// checkHostKey accepts an OpenSSH public key line ("type base64
// [comment]").
func checkHostKey(v string) error {
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(v)); err != nil {
		return fmt.Errorf("not an OpenSSH public key: %w", err)
	}
	return nil
}

func checkSig(v string) error {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return fmt.Errorf("not base64: %w", err)
	}
	if len(b) == 0 || len(b) > 512 {
		return fmt.Errorf("%d bytes; want 1 to 512", len(b))
	}
	return nil
}
