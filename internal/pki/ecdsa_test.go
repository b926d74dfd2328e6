package pki

import (
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
	r2, s2, err := ecdsaSign(d, hash)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Cmp(r) != 0 || s2.Cmp(s) != 0 {
		t.Errorf("sign: got r=%X s=%X, want r=%s s=%s", r2, s2, fixtureR, fixtureS)
	}
}
