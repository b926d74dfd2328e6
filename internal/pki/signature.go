package pki

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"

	"github.com/guix-offload/guix-offload/scm"
)

// Errors from [Verify], each wrapped with details. Callers branch on them
// with errors.Is.
var (
	// ErrMalformed: the signature is not a Guix signature S-expression
	// (signature (data …) (sig-val …) (public-key …)) that can be read.
	ErrMalformed = errors.New("malformed signature")
	// ErrUnknownSigner: the signature is by a key that is not in the ACL
	// (authorize it with 'guix archive --authorize').
	ErrUnknownSigner = errors.New("signed by a key that is not authorized in the ACL")
	// ErrHashMismatch: the signature is for other content than the one
	// checked (damaged or substituted data, or a signature of another item).
	ErrHashMismatch = errors.New("signature is not for this content (hash mismatch)")
	// ErrBadSignature: the signature value does not verify with the key
	// it names (forged or damaged signature).
	ErrBadSignature = errors.New("bad signature: it does not verify with the signer's key")
)

// Sign signs a SHA-256 digest and returns the signature S-expression as
// 'guix authenticate' writes it, byte for byte:
//
//	(signature (data (flags rfc6979) (hash sha256 #…#))
//	           (sig-val (ecdsa (r #…#) (s #…#)))
//	           (public-key (ecc (curve Ed25519) (q #…#))))
//
// in libgcrypt's advanced layout. ECDSA uses libgcrypt's RFC 6979
// deterministic nonce, so the result equals libgcrypt's for the same key
// and hash. EdDSA keys sign the digest as an Ed25519 message and record
// the data as libgcrypt needs it, (data (flags eddsa) (hash-algo sha512)
// (value #…#)); RSA keys cannot sign here.
func (k *PrivateKey) Sign(hash [32]byte) ([]byte, error) {
	var data, sigval node
	switch k.pub.typ {
	case TypeECDSA:
		r, s, err := ecdsaSign(k.d, hash[:])
		if err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
		data = list(atom("data"), list(atom("flags"), atom("rfc6979")),
			list(atom("hash"), atom("sha256"), bytesAtom(hash[:])))
		sigval = list(atom("sig-val"), list(atom("ecdsa"),
			list(atom("r"), bytesAtom(r.Bytes())), list(atom("s"), bytesAtom(s.Bytes()))))
	case TypeEdDSA:
		sig := ed25519.Sign(k.ed, hash[:])
		data = list(atom("data"), list(atom("flags"), atom("eddsa")),
			list(atom("hash-algo"), atom("sha512")), list(atom("value"), bytesAtom(hash[:])))
		sigval = list(atom("sig-val"), list(atom("eddsa"),
			list(atom("r"), bytesAtom(sig[:32])), list(atom("s"), bytesAtom(sig[32:]))))
	default:
		return nil, errors.New("sign: signing with RSA keys is not supported; generate an Ed25519 key with 'guix archive --generate-key'")
	}
	return list(atom("signature"), data, sigval, k.pub.node()).advanced(), nil
}

// SignRaw signs a SHA-256 digest and returns the bare signature for
// compact uses (DNS-SD TXT): for ECDSA keys r‖s, each 32 bytes big-endian;
// for EdDSA keys the 64-byte Ed25519 signature of the digest.
func (k *PrivateKey) SignRaw(hash [32]byte) ([]byte, error) {
	switch k.pub.typ {
	case TypeECDSA:
		r, s, err := ecdsaSign(k.d, hash[:])
		if err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out, nil
	case TypeEdDSA:
		return ed25519.Sign(k.ed, hash[:]), nil
	}
	return nil, errors.New("sign: RSA keys cannot sign announcements; generate an Ed25519 key with 'guix archive --generate-key'")
}

// VerifyRaw checks a signature made by [PrivateKey.SignRaw]. It returns
// nil or an error wrapping [ErrBadSignature] (or [ErrMalformed] for a
// signature of the wrong size).
func (k *PublicKey) VerifyRaw(hash [32]byte, sig []byte) error {
	switch k.typ {
	case TypeECDSA:
		if len(sig) != 64 {
			return fmt.Errorf("%w: ECDSA signature is %d bytes, want 64", ErrMalformed, len(sig))
		}
		p, err := k.point()
		if err != nil || !ecdsaVerify(p, hash[:], mpi(sig[:32]), mpi(sig[32:])) {
			return fmt.Errorf("%w (key %s)", ErrBadSignature, k.Fingerprint())
		}
		return nil
	case TypeEdDSA:
		if len(sig) != ed25519.SignatureSize {
			return fmt.Errorf("%w: EdDSA signature is %d bytes, want 64", ErrMalformed, len(sig))
		}
		if !ed25519.Verify(ed25519.PublicKey(k.q), hash[:], sig) {
			return fmt.Errorf("%w (key %s)", ErrBadSignature, k.Fingerprint())
		}
		return nil
	}
	return errors.New("verify: RSA keys cannot sign announcements")
}

// Signature is a parsed Guix signature S-expression.
type Signature struct {
	// Signer is the key named in the signature's (public-key …).
	Signer *PublicKey
	// Hash is the SHA-256 digest the signature claims to cover.
	Hash [32]byte

	params [][]byte // r, s for ECC; s for RSA
}

// ParseSignature reads a (signature (data …) (sig-val …) (public-key …))
// S-expression without checking it. Errors wrap [ErrMalformed], or
// [ErrUnknownSigner] when the signer's key is damaged (no ACL holds it).
func ParseSignature(sig []byte, file string) (*Signature, error) {
	v, err := scm.ReadGcrypt(sig, file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if head(v) != "signature" {
		return nil, fmt.Errorf("%w: %s: expected (signature (data …) (sig-val …) (public-key …))", ErrMalformed, v.Pos())
	}
	data, sigval, pk := findToken(v, "data"), findToken(v, "sig-val"), findToken(v, "public-key")
	if data == nil || sigval == nil || pk == nil {
		return nil, fmt.Errorf("%w: %s: signature lacks (data …), (sig-val …) or (public-key …)", ErrMalformed, v.Pos())
	}
	signer, err := publicKeyFrom(pk, true)
	if errors.Is(err, errNotOnCurve) {
		// Guix compares the key with the ACL before anything else; a
		// damaged key is in no ACL.
		return nil, fmt.Errorf("%w: the signer's key is damaged: %w", ErrUnknownSigner, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: signer's key: %w", ErrMalformed, err)
	}
	out := &Signature{Signer: signer}
	var digest []byte
	if h := findToken(data, "hash"); h != nil {
		hl := items(h)
		if len(hl) != 3 {
			return nil, fmt.Errorf("%w: %s: expected (hash sha256 #…#)", ErrMalformed, h.Pos())
		}
		algo, _ := scm.AtomBytes(hl[1])
		if string(algo) != "sha256" {
			return nil, fmt.Errorf("%w: %s: hash algorithm %q, want sha256", ErrMalformed, hl[1].Pos(), algo)
		}
		digest, _ = scm.AtomBytes(hl[2])
	} else if signer.typ == TypeEdDSA {
		if _, digest = param(data, "value"); digest == nil {
			return nil, fmt.Errorf("%w: %s: (data …) has no (hash …) or (value …)", ErrMalformed, data.Pos())
		}
	} else {
		return nil, fmt.Errorf("%w: %s: (data …) has no (hash sha256 #…#)", ErrMalformed, data.Pos())
	}
	if len(digest) != 32 {
		return nil, fmt.Errorf("%w: %s: signed hash is %d bytes, want 32", ErrMalformed, data.Pos(), len(digest))
	}
	copy(out.Hash[:], digest)

	alg := items(sigval)
	if len(alg) != 2 {
		return nil, fmt.Errorf("%w: %s: expected (sig-val (ALGORITHM …))", ErrMalformed, sigval.Pos())
	}
	var names []string
	switch want := map[string]string{TypeECDSA: "ecdsa", TypeEdDSA: "eddsa", TypeRSA: "rsa"}[signer.typ]; {
	case head(alg[1]) != want:
		return nil, fmt.Errorf("%w: %s: (sig-val (%s …)) for a %s key", ErrMalformed, alg[1].Pos(), head(alg[1]), signer.typ)
	case want == "rsa":
		names = []string{"s"}
	default:
		names = []string{"r", "s"}
	}
	for _, n := range names {
		pv, b := param(alg[1], n)
		if pv == nil {
			return nil, fmt.Errorf("%w: %s: (sig-val (%s …)) has no (%s …)", ErrMalformed, alg[1].Pos(), head(alg[1]), n)
		}
		out.params = append(out.params, b)
	}
	return out, nil
}

// Verify checks a Guix signature S-expression (as carried by an export
// stream or a narinfo) for a SHA-256 digest against an ACL, as Guix does
// before it imports anything: the signer must be in acl, the signature
// must be for hash, and it must verify with the signer's key. It returns
// the signer's key whenever the signature could be read, also with an
// error, so callers can name it. Errors wrap [ErrMalformed],
// [ErrUnknownSigner], [ErrHashMismatch] or [ErrBadSignature], checked in
// that order.
func Verify(sig []byte, hash [32]byte, acl *ACL) (*PublicKey, error) {
	s, err := ParseSignature(sig, "signature")
	if err != nil {
		return nil, err
	}
	if !acl.Authorizes(s.Signer) {
		return s.Signer, fmt.Errorf("%w: %s", ErrUnknownSigner, s.Signer)
	}
	if s.Hash != hash {
		return s.Signer, fmt.Errorf("%w: signed %x, content has %x", ErrHashMismatch, s.Hash, hash)
	}
	if !s.valid() {
		return s.Signer, fmt.Errorf("%w (key %s)", ErrBadSignature, s.Signer.Fingerprint())
	}
	return s.Signer, nil
}

// valid checks the signature value against Hash and Signer.
func (s *Signature) valid() bool {
	k := s.Signer
	switch k.typ {
	case TypeECDSA:
		p, err := k.point()
		return err == nil && ecdsaVerify(p, s.Hash[:], mpi(s.params[0]), mpi(s.params[1]))
	case TypeEdDSA:
		r, sv := leftPad(s.params[0], 32), leftPad(s.params[1], 32)
		if r == nil || sv == nil {
			return false
		}
		return ed25519.Verify(ed25519.PublicKey(k.q), s.Hash[:], append(r, sv...))
	case TypeRSA:
		sig := leftPad(new(big.Int).SetBytes(s.params[0]).Bytes(), k.rsa.Size())
		return sig != nil && rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, s.Hash[:], sig) == nil
	}
	return false
}

// leftPad returns b left-padded with zeros to n bytes, or nil when it is
// longer (after dropping leading zeros).
func leftPad(b []byte, n int) []byte {
	b = bytes.TrimLeft(b, "\x00")
	if len(b) > n {
		return nil
	}
	return append(make([]byte, n-len(b)), b...)
}
