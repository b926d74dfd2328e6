package pki

import (
	"bytes"
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	"filippo.io/edwards25519"

	"github.com/guix-offload/guix-offload/scm"

	"github.com/guix-offload/guix-offload/internal/boundedread"
)

// Key types, as returned by [PublicKey.Type].
const (
	// TypeECDSA is Guix's default: ECDSA on the Ed25519 curve, a key
	// (ecc (curve Ed25519) (q …)) without flags.
	TypeECDSA = "ecdsa-ed25519"
	// TypeEdDSA is a key with (flags eddsa): Ed25519 signatures (RFC 8032).
	TypeEdDSA = "eddsa-ed25519"
	// TypeRSA is an RSA key, as older Guix installations generated.
	TypeRSA = "rsa"
)

// PublicKey is a Guix signing public key.
type PublicKey struct {
	typ string
	q   []byte         // ECDSA and EdDSA: the 32-byte compressed point
	rsa *rsa.PublicKey // RSA
	// pt is q decoded, when the key was parsed: an ECDSA signature
	// check needs the point, and decoding it costs a square root.
	// Never modified once set.
	pt *edwards25519.Point
}

// PrivateKey is a Guix signing secret key (the content of
// /etc/guix/signing-key.sec).
type PrivateKey struct {
	pub   *PublicKey
	d     *[32]byte          // ECDSA: the secret scalar as written, big-endian
	ed    ed25519.PrivateKey // EdDSA
	isRSA bool
}

// Type returns [TypeECDSA], [TypeEdDSA] or [TypeRSA].
func (k *PublicKey) Type() string { return k.typ }

// Equal reports whether k and o are the same key of the same type.
func (k *PublicKey) Equal(o *PublicKey) bool {
	if k == nil || o == nil {
		return k == o
	}
	return k.typ == o.typ && bytes.Equal(k.node().canonical(), o.node().canonical())
}

// id identifies k as [PublicKey.Equal] compares keys: two keys are
// equal exactly when their ids are.
func (k *PublicKey) id() string {
	if k.typ == TypeECDSA || k.typ == TypeEdDSA {
		// Their S-expression is a function of the type and the point
		// (32 bytes, one encoding per point): no need to write it.
		return k.typ + "\x00" + string(k.q)
	}
	return k.typ + "\x00" + string(k.node().canonical())
}

// node returns the key's normalized S-expression: what libgcrypt itself
// writes for such a key.
func (k *PublicKey) node() node {
	switch k.typ {
	case TypeECDSA:
		return list(atom("public-key"), list(atom("ecc"),
			list(atom("curve"), atom("Ed25519")),
			list(atom("q"), bytesAtom(k.q))))
	case TypeEdDSA:
		return list(atom("public-key"), list(atom("ecc"),
			list(atom("curve"), atom("Ed25519")),
			list(atom("flags"), atom("eddsa")),
			list(atom("q"), bytesAtom(k.q))))
	default:
		return list(atom("public-key"), list(atom("rsa"),
			list(atom("n"), bytesAtom(signedMPI(k.rsa.N))),
			list(atom("e"), bytesAtom(signedMPI(big.NewInt(int64(k.rsa.E)))))))
	}
}

// signedMPI encodes x as libgcrypt writes a key's integers ("%m"):
// big-endian, with a leading zero octet when the top bit is set.
func signedMPI(x *big.Int) []byte {
	b := x.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

// MarshalSexp returns the key in libgcrypt's advanced form, as Guix writes
// signing-key.pub and ACL entries.
func (k *PublicKey) MarshalSexp() []byte { return k.node().advanced() }

// Fingerprint returns a short name for the key: the first 16 bytes of the
// SHA-256 digest of the key's canonical S-expression, in the normalized
// form libgcrypt writes (for Guix's default keys
// "(10:public-key(3:ecc(5:curve7:Ed25519)(1:q32:…)))"), as lowercase hex
// in groups of four separated by colons. It does not depend on how the
// file was written (advanced, canonical, base64).
func (k *PublicKey) Fingerprint() string {
	sum := sha256.Sum256(k.node().canonical())
	h := hex.EncodeToString(sum[:16])
	var b strings.Builder
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+4])
	}
	return b.String()
}

// String returns the type and fingerprint, e.g.
// "ecdsa-ed25519 f71b:…", with the size for RSA keys.
func (k *PublicKey) String() string {
	if k.typ == TypeRSA {
		return fmt.Sprintf("%s-%d %s", k.typ, k.rsa.N.BitLen(), k.Fingerprint())
	}
	return k.typ + " " + k.Fingerprint()
}

// Public returns the public half of k.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// ParsePublicKey parses a (public-key …) S-expression in any of
// libgcrypt's syntaxes. file names the input in error messages.
func ParsePublicKey(data []byte, file string) (*PublicKey, error) {
	v, err := scm.ReadGcrypt(data, file)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	k, err := publicKeyFrom(v, true)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	return k, nil
}

// ParsePrivateKey parses a (private-key …) S-expression in any of
// libgcrypt's syntaxes. file names the input in error messages.
func ParsePrivateKey(data []byte, file string) (*PrivateKey, error) {
	v, err := scm.ReadGcrypt(data, file)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	k, err := privateKeyFrom(v)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	return k, nil
}

// ReadPublicKey reads a public key file such as
// /etc/guix/signing-key.pub.
func ReadPublicKey(path string) (*PublicKey, error) {
	data, err := boundedread.ReadFile(path, boundedread.Key)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	return ParsePublicKey(data, path)
}

// ReadPrivateKey reads a secret key file such as
// /etc/guix/signing-key.sec.
func ReadPrivateKey(path string) (*PrivateKey, error) {
	data, err := boundedread.ReadFile(path, boundedread.Key)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	return ParsePrivateKey(data, path)
}

// keyError is a problem with a key S-expression at a position.
func keyError(v scm.Value, format string, args ...any) error {
	return fmt.Errorf("%s: %s", v.Pos(), fmt.Sprintf(format, args...))
}

// errNotOnCurve marks a q that is not an Ed25519 point in canonical
// encoding.
var errNotOnCurve = errors.New("not a valid Ed25519 point")

// errUnsupported marks keys that are well formed but of a kind Guix
// offloading cannot use (another curve, DSA, …).
var errUnsupported = errors.New("unsupported key")

// algorithm returns the (ALGO …) list of a (public-key …) or
// (private-key …) expression and its parameters.
func algorithm(v scm.Value, want string) (scm.Value, string, error) {
	l := items(v)
	if len(l) == 0 {
		return nil, "", keyError(v, "expected a (%s …) list", want)
	}
	if h := head(v); h != want {
		return nil, "", keyError(v, "expected (%s …), found (%s …)", want, h)
	}
	if len(l) != 2 || len(items(l[1])) == 0 {
		return nil, "", keyError(v, "(%s …) must hold exactly one (ALGORITHM …) list", want)
	}
	return l[1], head(l[1]), nil
}

// eccType returns the key type of an (ecc …) parameter list: the curve
// must be Ed25519; (flags eddsa), or the algorithm name eddsa, selects
// EdDSA.
func eccType(params scm.Value, algo string) (string, error) {
	cv, curve := param(params, "curve")
	if cv == nil {
		return "", keyError(params, "(%s …) has no (curve …)", algo)
	}
	switch strings.ToLower(string(curve)) {
	case "ed25519", "1.3.6.1.4.1.11591.15.1":
	default:
		return "", fmt.Errorf("%w: %s: curve %q (Guix keys use Ed25519)", errUnsupported, cv.Pos(), curve)
	}
	eddsa := algo == "eddsa"
	for _, c := range items(params) {
		if head(c) != "flags" {
			continue
		}
		for _, f := range items(c)[1:] {
			if b, ok := scm.AtomBytes(f); ok && string(b) == "eddsa" {
				eddsa = true
			}
		}
	}
	if eddsa {
		return TypeEdDSA, nil
	}
	return TypeECDSA, nil
}

// decodePoint accepts libgcrypt's encodings of an Ed25519 point: the
// 32-byte compressed form, the same prefixed with 0x40, or 0x04‖x‖y with
// big-endian coordinates; it returns the 32-byte compressed form and,
// when decode is true, the point, which must then be on the curve
// (finding out costs a square root).
func decodePoint(q []byte, decode bool) ([]byte, *edwards25519.Point, error) {
	switch {
	case len(q) == 33 && q[0] == 0x40:
		q = q[1:]
	case len(q) == 65 && q[0] == 0x04:
		// y little-endian with the sign of x in the top bit.
		enc := make([]byte, 32)
		for i := 0; i < 32; i++ {
			enc[i] = q[64-i]
		}
		enc[31] |= (q[32] & 1) << 7
		q = enc
	}
	if len(q) != 32 {
		return nil, nil, fmt.Errorf("point is %d bytes, want 32", len(q))
	}
	var p *edwards25519.Point
	if decode {
		var err error
		if p, err = edwards25519.NewIdentityPoint().SetBytes(q); err != nil {
			return nil, nil, errNotOnCurve
		}
	}
	if !canonicalPoint(q) {
		// Guix compares keys as written; a second spelling of a point
		// must not pass for the key in the ACL.
		return nil, nil, fmt.Errorf("%w (non-canonical encoding)", errNotOnCurve)
	}
	return bytes.Clone(q), p, nil
}

// point returns k's point, decoded once when k was parsed, or now (the
// keys of an ACL are decoded when used: see [ParseACL]).
func (k *PublicKey) point() (*edwards25519.Point, error) {
	if k.pt != nil {
		return k.pt, nil
	}
	return edwards25519.NewIdentityPoint().SetBytes(k.q)
}

// fieldPrime is 2^255 - 19, little-endian.
var fieldPrime = [32]byte{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}

// canonicalPoint reports whether q, the encoding of a point that
// SetBytes accepted, is the one Point.Bytes writes for it, without the
// field inversion that re-encoding costs. SetBytes also accepts a y of
// p or more (reduced), and x = 0 with the sign bit set; x is 0 exactly
// when y = ±1. Any other accepted encoding round-trips.
func canonicalPoint(q []byte) bool {
	var y [32]byte
	copy(y[:], q)
	sign := y[31] >> 7
	y[31] &= 0x7f
	// y < p, comparing little-endian from the top byte.
	less := false
	for i := 31; i >= 0; i-- {
		if y[i] != fieldPrime[i] {
			less = y[i] < fieldPrime[i]
			break
		}
	}
	if !less {
		return false
	}
	if sign == 1 {
		one := [32]byte{1}
		minusOne := fieldPrime
		minusOne[0]--
		if y == one || y == minusOne {
			return false
		}
	}
	return true
}

// mpi returns the big-endian integer of an atom (libgcrypt's unsigned
// reading: leading zero octets allowed).
func mpi(b []byte) *big.Int { return new(big.Int).SetBytes(b) }

// publicKeyFrom reads a (public-key …); decode says whether to decode an
// elliptic-curve point now (see [decodePoint]).
func publicKeyFrom(v scm.Value, decode bool) (*PublicKey, error) {
	params, algo, err := algorithm(v, "public-key")
	if err != nil {
		return nil, err
	}
	switch algo {
	case "ecc", "ecdsa", "eddsa":
		typ, err := eccType(params, algo)
		if err != nil {
			return nil, err
		}
		qv, q := param(params, "q")
		if qv == nil {
			return nil, keyError(params, "(%s …) has no (q …)", algo)
		}
		enc, pt, err := decodePoint(q, decode)
		if err != nil {
			return nil, fmt.Errorf("%s: bad q: %w", qv.Pos(), err)
		}
		return &PublicKey{typ: typ, q: enc, pt: pt}, nil
	case "rsa":
		pub, err := rsaPublic(params)
		if err != nil {
			return nil, err
		}
		return &PublicKey{typ: TypeRSA, rsa: pub}, nil
	}
	return nil, fmt.Errorf("%w: %s: algorithm %q (Guix keys are ecc or rsa)", errUnsupported, params.Pos(), algo)
}

func rsaPublic(params scm.Value) (*rsa.PublicKey, error) {
	nv, n := param(params, "n")
	ev, e := param(params, "e")
	if nv == nil || ev == nil {
		return nil, keyError(params, "(rsa …) needs (n …) and (e …)")
	}
	N, E := mpi(n), mpi(e)
	if N.BitLen() < 1024 || N.BitLen() > 16384 || N.Bit(0) == 0 {
		return nil, keyError(nv, "RSA modulus of %d bits is not usable", N.BitLen())
	}
	if !E.IsInt64() || E.Int64() < 3 || E.Int64() > 1<<31-1 || E.Bit(0) == 0 {
		return nil, keyError(ev, "RSA exponent is not usable")
	}
	return &rsa.PublicKey{N: N, E: int(E.Int64())}, nil
}

func privateKeyFrom(v scm.Value) (*PrivateKey, error) {
	params, algo, err := algorithm(v, "private-key")
	if err != nil {
		return nil, err
	}
	switch algo {
	case "ecc", "ecdsa", "eddsa":
		typ, err := eccType(params, algo)
		if err != nil {
			return nil, err
		}
		dv, d := param(params, "d")
		if dv == nil {
			return nil, keyError(params, "(%s …) has no (d …)", algo)
		}
		k := &PrivateKey{}
		var q []byte
		switch typ {
		case TypeEdDSA:
			if len(d) != ed25519.SeedSize {
				return nil, keyError(dv, "EdDSA secret d is %d bytes, want 32", len(d))
			}
			k.ed = ed25519.NewKeyFromSeed(d)
			q = bytes.Clone(k.ed.Public().(ed25519.PublicKey))
		default:
			trimmed := bytes.TrimLeft(d, "\x00")
			if len(trimmed) > 32 {
				return nil, keyError(dv, "secret d is %d bytes, want at most 32", len(trimmed))
			}
			k.d = new([32]byte)
			copy(k.d[32-len(trimmed):], trimmed)
			ds := scalarFromBE(k.d[:])
			if ds.Equal(edwards25519.NewScalar()) == 1 {
				return nil, keyError(dv, "secret d is zero modulo the group order")
			}
			q = edwards25519.NewIdentityPoint().ScalarBaseMult(ds).Bytes()
		}
		if qv, qb := param(params, "q"); qv != nil {
			enc, _, err := decodePoint(qb, true)
			if err != nil {
				return nil, keyError(qv, "bad q: %v", err)
			}
			if !bytes.Equal(enc, q) {
				if substituted(dv) {
					return nil, keyError(dv, "q does not belong to d: the secret d was written as a quoted string by a program "+
						"not in a UTF-8 locale, which replaced its octets 0xA1-0xFF by \"?\"; the key is lost: "+
						"make a new one with 'guix archive --generate-key' in a UTF-8 locale")
				}
				return nil, keyError(qv, "q does not belong to d: the key file is damaged")
			}
		}
		k.pub = &PublicKey{typ: typ, q: q}
		return k, nil
	case "rsa":
		pub, err := rsaPublic(params)
		if err != nil {
			return nil, err
		}
		if dv, _ := param(params, "d"); dv == nil {
			return nil, keyError(params, "(rsa …) private key has no (d …)")
		}
		return &PrivateKey{pub: &PublicKey{typ: TypeRSA, rsa: pub}, isRSA: true}, nil
	}
	return nil, fmt.Errorf("%w: %s: algorithm %q (Guix keys are ecc or rsa)", errUnsupported, params.Pos(), algo)
}

// substituted reports whether the (d …) list dv holds a quoted string
// with a "?": what Guile writes, in a locale whose encoding is ASCII, for
// the octets 0xA1–0xFF that libgcrypt leaves unescaped in a quoted string.
func substituted(dv scm.Value) bool {
	l := items(dv)
	if len(l) < 2 {
		return false
	}
	s, ok := l[1].(scm.String)
	return ok && strings.Contains(s.S, "?")
}

// Compact returns the key in the short form used in DNS-SD TXT records:
// "ecdsa-ed25519:" or "eddsa-ed25519:" followed by the standard base64 of
// the 32-byte point; for RSA keys "rsa:" and the base64 of the canonical
// S-expression, which fails when that exceeds 255 bytes (any real RSA
// key): a TXT string holds at most 255.
func (k *PublicKey) Compact() (string, error) {
	switch k.typ {
	case TypeECDSA, TypeEdDSA:
		return k.typ + ":" + base64.StdEncoding.EncodeToString(k.q), nil
	}
	s := TypeRSA + ":" + base64.StdEncoding.EncodeToString(k.node().canonical())
	if len(s) > 255 {
		return "", fmt.Errorf("compact RSA key is %d bytes, more than a TXT string's 255; use an Ed25519 signing key ('guix archive --generate-key')", len(s))
	}
	return s, nil
}

// CheckCompactPublicKey reports what [ParseCompactPublicKey] would find
// wrong with s, except that it does not check that an elliptic-curve
// point is on the curve: that costs a square root, which a key that is
// only compared with an ACL's ([ACL.KeyOfCompact]) need not pay.
func CheckCompactPublicKey(s string) error {
	typ, b64, ok := strings.Cut(s, ":")
	if !ok || (typ != TypeECDSA && typ != TypeEdDSA) {
		_, err := ParseCompactPublicKey(s)
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return fmt.Errorf("parse compact key %q: bad base64: %w", truncate(s), err)
	}
	if len(raw) != 32 {
		// Other encodings: the whole check.
		_, err := ParseCompactPublicKey(s)
		return err
	}
	if !canonicalPoint(raw) {
		return fmt.Errorf("parse compact key %q: %w (non-canonical encoding)", truncate(s), errNotOnCurve)
	}
	return nil
}

// ParseCompactPublicKey parses the output of [PublicKey.Compact].
func ParseCompactPublicKey(s string) (*PublicKey, error) {
	typ, b64, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("parse compact key %q: no TYPE: prefix", truncate(s))
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return nil, fmt.Errorf("parse compact key %q: bad base64: %w", truncate(s), err)
	}
	switch typ {
	case TypeECDSA, TypeEdDSA:
		enc, pt, err := decodePoint(raw, true)
		if err != nil {
			return nil, fmt.Errorf("parse compact key %q: %w", truncate(s), err)
		}
		return &PublicKey{typ: typ, q: enc, pt: pt}, nil
	case TypeRSA:
		k, err := ParsePublicKey(raw, "compact key")
		if err != nil {
			return nil, err
		}
		if k.typ != TypeRSA {
			return nil, fmt.Errorf("parse compact key: rsa: prefix on a %s key", k.typ)
		}
		return k, nil
	}
	return nil, fmt.Errorf("parse compact key %q: unknown type %q (want %s, %s or %s)", truncate(s), typ, TypeECDSA, TypeEdDSA, TypeRSA)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// GenerateKey makes a new key pair of type [TypeECDSA] (what 'guix archive
// --generate-key' makes) or [TypeEdDSA], reading randomness from rand
// (crypto/rand.Reader when nil).
func GenerateKey(typ string, rand io.Reader) (*PrivateKey, error) {
	if rand == nil {
		rand = cryptorand.Reader
	}
	switch typ {
	case TypeECDSA:
		var wide [64]byte
		if _, err := io.ReadFull(rand, wide[:]); err != nil {
			return nil, fmt.Errorf("generate key: %w", err)
		}
		s, _ := edwards25519.NewScalar().SetUniformBytes(wide[:])
		if s.Equal(edwards25519.NewScalar()) == 1 {
			return nil, errors.New("generate key: zero scalar (broken random source)")
		}
		d := new([32]byte)
		le := s.Bytes()
		for i, b := range le {
			d[31-i] = b
		}
		q := edwards25519.NewIdentityPoint().ScalarBaseMult(s).Bytes()
		return &PrivateKey{d: d, pub: &PublicKey{typ: typ, q: q}}, nil
	case TypeEdDSA:
		_, priv, err := ed25519.GenerateKey(rand)
		if err != nil {
			return nil, fmt.Errorf("generate key: %w", err)
		}
		return &PrivateKey{ed: priv, pub: &PublicKey{typ: typ, q: bytes.Clone(priv.Public().(ed25519.PublicKey))}}, nil
	}
	return nil, fmt.Errorf("generate key: cannot generate %q keys (want %s or %s)", typ, TypeECDSA, TypeEdDSA)
}

// MarshalSexp returns the secret key in libgcrypt's advanced form, as
// Guix writes signing-key.sec. RSA keys cannot be written.
func (k *PrivateKey) MarshalSexp() ([]byte, error) {
	var d []byte
	switch k.pub.typ {
	case TypeECDSA:
		d = bytes.TrimLeft(k.d[:], "\x00")
		if len(d) > 0 && d[0]&0x80 != 0 { // libgcrypt writes d as a signed integer
			d = append([]byte{0}, d...)
		}
	case TypeEdDSA:
		d = k.ed.Seed()
	default:
		return nil, errors.New("write private key: RSA keys cannot be written")
	}
	pub := k.pub.node()
	params := pub.list[1]
	params.list = append(params.list, list(atom("d"), bytesAtom(d)))
	return list(atom("private-key"), params).advanced(), nil
}
