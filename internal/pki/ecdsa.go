package pki

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"math/big"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// This file is ECDSA over the twisted Edwards curve Ed25519, the way
// libgcrypt does it for a key of curve Ed25519 without (flags eddsa), which
// is what `guix archive --generate-key` makes. It is not EdDSA: the secret
// d is a plain scalar, Q = d·G, and a signature is the ECDSA pair (r, s)
// where r is the affine x-coordinate of k·G reduced modulo the group order.

// groupOrder is n, the order of Ed25519's prime-order subgroup
// (2^252 + 27742317777372353535851937790883648493), 253 bits long.
var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

const orderBits = 253

// scalarFromBig reduces x modulo n into a Scalar. x must be non-negative
// and shorter than 64 bytes.
func scalarFromBig(x *big.Int) *edwards25519.Scalar {
	var wide [64]byte
	be := x.Bytes()
	if len(be) > 64 {
		x = new(big.Int).Mod(x, groupOrder)
		be = x.Bytes()
	}
	for i, b := range be {
		wide[len(be)-1-i] = b // little-endian
	}
	s, err := edwards25519.NewScalar().SetUniformBytes(wide[:])
	if err != nil {
		panic("pki: SetUniformBytes rejected 64 bytes") // cannot happen
	}
	return s
}

// bigFromScalar returns s as a big integer.
func bigFromScalar(s *edwards25519.Scalar) *big.Int {
	le := s.Bytes()
	be := make([]byte, len(le))
	for i, b := range le {
		be[len(le)-1-i] = b
	}
	return new(big.Int).SetBytes(be)
}

// affineX returns the affine x-coordinate of p as an integer in [0, p).
func affineX(p *edwards25519.Point) *big.Int {
	X, _, Z, _ := p.ExtendedCoordinates()
	var zinv, x field.Element
	zinv.Invert(Z)
	x.Multiply(X, &zinv)
	le := x.Bytes()
	be := make([]byte, len(le))
	for i, b := range le {
		be[len(le)-1-i] = b
	}
	return new(big.Int).SetBytes(be)
}

// hashToInt is libgcrypt's truncation of a digest to the order's bit
// length: the digest as a big-endian integer shifted right by the excess
// bits (3 for a 32-byte digest), not reduced.
func hashToInt(hash []byte) *big.Int {
	e := new(big.Int).SetBytes(hash)
	if excess := len(hash)*8 - orderBits; excess > 0 {
		e.Rsh(e, uint(excess))
	}
	return e
}

// ecdsaVerify reports whether (r, s) is a valid ECDSA signature of hash by
// the point q.
func ecdsaVerify(q *edwards25519.Point, hash []byte, r, s *big.Int) bool {
	if r.Sign() <= 0 || s.Sign() <= 0 || r.Cmp(groupOrder) >= 0 || s.Cmp(groupOrder) >= 0 {
		return false
	}
	// Everything here is public: variable-time arithmetic is fine, and
	// big.Int's inverse is several times faster than Scalar.Invert.
	w := scalarFromBig(new(big.Int).ModInverse(s, groupOrder))
	u1 := edwards25519.NewScalar().Multiply(scalarFromBig(hashToInt(hash)), w)
	u2 := edwards25519.NewScalar().Multiply(scalarFromBig(r), w)
	// X = u2·Q + u1·G
	X := edwards25519.NewIdentityPoint().VarTimeDoubleScalarBaseMult(u2, q, u1)
	if X.Equal(edwards25519.NewIdentityPoint()) == 1 {
		return false
	}
	return affineXModOrderIs(X, r)
}

// fieldOrder is p = 2^255 - 19, the order of the field of coordinates.
var fieldOrder = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))

// affineXModOrderIs reports whether the affine x-coordinate of p, reduced
// modulo n, is r (0 < r < n). Instead of inverting Z (a field
// exponentiation) it compares X with c·Z for every c < p with c ≡ r
// (mod n): there are at most eight, as p < 8n + n.
func affineXModOrderIs(p *edwards25519.Point, r *big.Int) bool {
	X, _, Z, _ := p.ExtendedCoordinates()
	c := new(big.Int).Set(r)
	var le [32]byte
	var ce, cz field.Element
	for c.Cmp(fieldOrder) < 0 {
		be := c.FillBytes(make([]byte, 32))
		for i, b := range be {
			le[31-i] = b
		}
		if _, err := ce.SetBytes(le[:]); err != nil {
			return false // cannot happen: c < p < 2^255
		}
		if cz.Multiply(&ce, Z).Equal(X) == 1 {
			return true
		}
		c.Add(c, groupOrder)
	}
	return false
}

// orderBytes is n as 32 big-endian bytes.
var orderBytes = groupOrder.FillBytes(make([]byte, 32))

// scalarFromBE reduces a big-endian integer of at most 64 bytes modulo n,
// in constant time.
func scalarFromBE(be []byte) *edwards25519.Scalar {
	var wide [64]byte
	for i, b := range be {
		wide[len(be)-1-i] = b
	}
	s, err := edwards25519.NewScalar().SetUniformBytes(wide[:])
	if err != nil {
		panic("pki: SetUniformBytes rejected 64 bytes") // cannot happen
	}
	return s
}

// inOrderRange reports, in constant time, whether the 32-byte big-endian
// k is in [1, n-1].
func inOrderRange(k *[32]byte) bool {
	borrow, nonzero := 0, 0
	for i := 31; i >= 0; i-- {
		d := int(k[i]) - int(orderBytes[i]) - borrow
		borrow = (d >> 8) & 1
		nonzero |= int(k[i])
	}
	return borrow == 1 && nonzero != 0
}

// bits2octets is RFC 6979's bits2octets: the truncated hash reduced once
// modulo n, as 32 bytes.
func bits2octets(hash []byte) []byte {
	z := hashToInt(hash)
	if z.Cmp(groupOrder) >= 0 {
		z.Sub(z, groupOrder)
	}
	return z.FillBytes(make([]byte, 32))
}

// rfc6979Nonce returns libgcrypt's deterministic nonce, big-endian, for
// the secret d and a SHA-256 digest (RFC 6979 §3.2 with HMAC-SHA-256). x is
// int2octets(d): libgcrypt uses d as written, without reducing it modulo n,
// so we do too. The first extra candidates are skipped, as libgcrypt does
// when a nonce yields r = 0 or s = 0.
func rfc6979Nonce(x *[32]byte, hash []byte, extra int) [32]byte {
	h := bits2octets(hash)
	mac := func(key []byte, parts ...[]byte) []byte {
		m := hmac.New(sha256.New, key)
		for _, p := range parts {
			m.Write(p)
		}
		return m.Sum(nil)
	}
	V := make([]byte, sha256.Size)
	for i := range V {
		V[i] = 1
	}
	K := make([]byte, sha256.Size)
	K = mac(K, V, []byte{0}, x[:], h)
	V = mac(K, V)
	K = mac(K, V, []byte{1}, x[:], h)
	V = mac(K, V)
	for {
		// One HMAC output (256 bits) covers the 253-bit order; bits2int
		// keeps its leftmost 253 bits.
		V = mac(K, V)
		var k [32]byte
		for i := 31; i >= 0; i-- {
			k[i] = V[i] >> 3
			if i > 0 {
				k[i] |= V[i-1] << 5
			}
		}
		if inOrderRange(&k) {
			if extra == 0 {
				return k
			}
			extra--
		}
		K = mac(K, V, []byte{0})
		V = mac(K, V)
	}
}

// ecdsaSign signs hash with the secret d (32 bytes big-endian, as
// written in the key file) and returns r and s.
func ecdsaSign(d *[32]byte, hash []byte) (r, s *big.Int, err error) {
	ds := scalarFromBE(d[:])
	e := scalarFromBig(hashToInt(hash))
	for extra := 0; extra < 16; extra++ {
		k := rfc6979Nonce(d, hash, extra)
		ks := scalarFromBE(k[:])
		R := edwards25519.NewIdentityPoint().ScalarBaseMult(ks)
		r = affineX(R)
		r.Mod(r, groupOrder)
		if r.Sign() == 0 {
			continue
		}
		// s = k⁻¹ (e + d·r) mod n
		sum := edwards25519.NewScalar().MultiplyAdd(ds, scalarFromBig(r), e)
		ss := edwards25519.NewScalar().Multiply(edwards25519.NewScalar().Invert(ks), sum)
		s = bigFromScalar(ss)
		if s.Sign() == 0 {
			continue
		}
		return r, s, nil
	}
	return nil, nil, errors.New("no usable nonce") // probability ~2^-4000
}
