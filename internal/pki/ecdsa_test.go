package pki

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"testing"

	"filippo.io/edwards25519"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The numbers of ../shared/fixtures/signature-hello.txt.sexp and
// signing-key.sec, made by real Guix and libgcrypt.
const (
	fixtureQ    = "F71B36A417F93F8CBBE2EE22ED25D08E9AF0B6D813128D30991DDE62EFC9E609"
	fixtureD    = "7A274B0E33FDF6E9505449882B6100A829AB6830BBA585F3DAAF0E205775E760"
	fixtureHash = "9659E7DD4539743A4A32D1F69355E205D2EC961C2066BCFD3DA38114D790A6E2"
	fixtureR    = "0A4F3AA58C52831D8491CAE36B59A17B77825E4B4108ED3EA3DDD3989A8B82F0"
	fixtureS    = "02CD76DEC2350E8A422A78C1384671CFD2C8BA9DC132492F9C86BB9FA060E149"
)

func TestECDSAFixtureMath(t *testing.T) {
	q, err := edwards25519.NewIdentityPoint().SetBytes(mustHex(t, fixtureQ))
	if err != nil {
		t.Fatal(err)
	}
	d := new(big.Int).SetBytes(mustHex(t, fixtureD))
	dG := edwards25519.NewIdentityPoint().ScalarBaseMult(scalarFromBig(d))
	if dG.Equal(q) != 1 {
		t.Errorf("Q != d·G")
	}
	hash := mustHex(t, fixtureHash)
	r := new(big.Int).SetBytes(mustHex(t, fixtureR))
	s := new(big.Int).SetBytes(mustHex(t, fixtureS))
	if !ecdsaVerify(q, hash, r, s) {
		t.Errorf("genuine signature does not verify")
	}
	var d32 [32]byte
	d.FillBytes(d32[:])
	r2, s2, err := ecdsaSign(&d32, hash)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Cmp(r) != 0 || s2.Cmp(s) != 0 {
		t.Errorf("sign: got r=%X s=%X, want r=%s s=%s", r2, s2, fixtureR, fixtureS)
	}
}

func TestInOrderRange(t *testing.T) {
	one := new(big.Int).SetInt64(1)
	for _, tt := range []struct {
		k    *big.Int
		want bool
	}{
		{new(big.Int), false},
		{one, true},
		{new(big.Int).Sub(groupOrder, one), true},
		{groupOrder, false},
		{new(big.Int).Add(groupOrder, one), false},
		{new(big.Int).Lsh(one, 255), false},
		{new(big.Int).Lsh(one, 251), true},
	} {
		var k [32]byte
		tt.k.FillBytes(k[:])
		if got := inOrderRange(&k); got != tt.want {
			t.Errorf("inOrderRange(%x) = %v, want %v", tt.k, got, tt.want)
		}
	}
}

func TestNonCanonicalPointRejected(t *testing.T) {
	// y = p + 1 (encodes the same point as y = 1, the identity) is not
	// canonical.
	enc := make([]byte, 32)
	for i := range enc {
		enc[i] = 0xff
	}
	enc[0] = 0xee // p+1 = 2^255 - 18, little-endian
	enc[31] = 0x7f
	for _, decode := range []bool{true, false} {
		if _, _, err := decodePoint(enc, decode); err == nil {
			t.Errorf("decodePoint(decode %v) accepted a non-canonical encoding", decode)
		}
	}
}

// TestCanonicalPointMatchesRoundTrip checks the cheap canonical-encoding
// test against re-encoding the decoded point, on random encodings and on
// the edge cases (y at and above p, x = 0 with the sign bit).
func TestCanonicalPointMatchesRoundTrip(t *testing.T) {
	var cases [][]byte
	for _, y := range []byte{0x00, 0x01, 0xec, 0xed, 0xee, 0xef, 0xff} {
		for _, sign := range []byte{0, 0x80} {
			enc := make([]byte, 32)
			for i := range enc {
				enc[i] = 0xff
			}
			enc[0], enc[31] = y, 0x7f|sign
			cases = append(cases, enc)
			small := make([]byte, 32)
			small[0], small[31] = y, sign
			cases = append(cases, small)
		}
	}
	for i := 0; i < 4000; i++ {
		enc := make([]byte, 32)
		if _, err := rand.Read(enc); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, enc)
	}
	accepted := 0
	for _, enc := range cases {
		p, err := edwards25519.NewIdentityPoint().SetBytes(enc)
		if err != nil {
			continue
		}
		accepted++
		if got, want := canonicalPoint(enc), bytes.Equal(p.Bytes(), enc); got != want {
			t.Errorf("canonicalPoint(%x) = %v, round trip says %v", enc, got, want)
		}
	}
	if accepted < 1000 {
		t.Fatalf("only %d encodings were points", accepted)
	}
}

func BenchmarkVerifyRawECDSA(b *testing.B) {
	k, err := GenerateKey(TypeECDSA, nil)
	if err != nil {
		b.Fatal(err)
	}
	hash := [32]byte{1, 2, 3}
	sig, err := k.SignRaw(hash)
	if err != nil {
		b.Fatal(err)
	}
	pub := k.Public()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := pub.VerifyRaw(hash, sig); err != nil {
			b.Fatal(err)
		}
	}
}
