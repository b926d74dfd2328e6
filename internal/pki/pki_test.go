package pki

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureHashBytes(t testing.TB) [32]byte {
	var h [32]byte
	b := mustHexTB(t, fixtureHash)
	copy(h[:], b)
	return h
}

func mustHexTB(t testing.TB, s string) []byte {
	t.Helper()
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'A' && c <= 'F':
				v |= byte(c - 'A' + 10)
			case c >= 'a' && c <= 'f':
				v |= byte(c - 'a' + 10)
			default:
				t.Fatalf("bad hex %q", s)
			}
		}
		b[i] = v
	}
	return b
}

func fixtureKeys(t testing.TB) (*PublicKey, *PrivateKey, *ACL) {
	t.Helper()
	pub, err := ParsePublicKey(readTestdata(t, "signing-key.pub"), "signing-key.pub")
	if err != nil {
		t.Fatal(err)
	}
	sec, err := ParsePrivateKey(readTestdata(t, "signing-key.sec"), "signing-key.sec")
	if err != nil {
		t.Fatal(err)
	}
	acl, err := ParseACL(readTestdata(t, "acl"), "acl")
	if err != nil {
		t.Fatal(err)
	}
	return pub, sec, acl
}

func TestFixtureKeys(t *testing.T) {
	pub, sec, acl := fixtureKeys(t)
	if pub.Type() != TypeECDSA {
		t.Errorf("type %q, want %q", pub.Type(), TypeECDSA)
	}
	if !sec.Public().Equal(pub) {
		t.Errorf("secret key's public half differs from signing-key.pub")
	}
	if !acl.Authorizes(pub) || len(acl.Keys()) != 1 {
		t.Errorf("ACL does not authorize exactly the fixture key: %v", acl.Keys())
	}
	// Our writer reproduces Guix's files byte for byte.
	if got, want := pub.MarshalSexp(), readTestdata(t, "signing-key.pub"); !bytes.Equal(got, want) {
		t.Errorf("MarshalSexp:\n%s\nwant:\n%s", got, want)
	}
	if got, err := sec.MarshalSexp(); err != nil || !bytes.Equal(got, readTestdata(t, "signing-key.sec")) {
		t.Errorf("private MarshalSexp: %v\n%s", err, got)
	}
	if got, want := acl.MarshalSexp(), readTestdata(t, "acl"); !bytes.Equal(got, want) {
		t.Errorf("ACL MarshalSexp:\n%s\nwant:\n%s", got, want)
	}
	// The fingerprint as documented: SHA-256 of the canonical form, first
	// 16 bytes, hex in groups of four.
	canon := append(append([]byte("(10:public-key(3:ecc(5:curve7:Ed25519)(1:q32:"), mustHexTB(t, fixtureQ)...), ")))"...)
	sum := sha256.Sum256(canon)
	want := ""
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			want += ":"
		}
		want += fmt.Sprintf("%02x%02x", sum[i], sum[i+1])
	}
	if fp := pub.Fingerprint(); fp != want {
		t.Errorf("fingerprint %q, want %q", fp, want)
	}
}

func TestSignReproducesGuix(t *testing.T) {
	_, sec, _ := fixtureKeys(t)
	got, err := sec.Sign(fixtureHashBytes(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := readTestdata(t, "signature-hello.txt.sexp"); !bytes.Equal(got, want) {
		t.Errorf("Sign:\n%q\nwant (libgcrypt):\n%q", got, want)
	}
}

func TestVerifyFixture(t *testing.T) {
	pub, _, acl := fixtureKeys(t)
	sig := readTestdata(t, "signature-hello.txt.sexp")
	signer, err := Verify(sig, fixtureHashBytes(t), acl)
	if err != nil {
		t.Fatal(err)
	}
	if !signer.Equal(pub) {
		t.Errorf("signer %v, want %v", signer, pub)
	}
}

// flipHexDigit returns sexp with the first hex digit after marker changed.
func flipHexDigit(t *testing.T, sexp []byte, marker string) []byte {
	t.Helper()
	i := bytes.Index(sexp, []byte(marker))
	if i < 0 {
		t.Fatalf("%q not in %s", marker, sexp)
	}
	out := bytes.Clone(sexp)
	j := i + len(marker) + 5 // a digit in the middle of the value
	out[j] = flipHex(out[j])
	return out
}

// flipHex flips the lowest bit of the value of a hexadecimal digit.
func flipHex(c byte) byte {
	i := strings.IndexByte("0123456789ABCDEF", c)
	if i < 0 {
		panic("not an upper-case hex digit: " + string(c))
	}
	return "0123456789ABCDEF"[i^1]
}

func TestVerifyTampered(t *testing.T) {
	pub, _, acl := fixtureKeys(t)
	hash := fixtureHashBytes(t)
	sig := readTestdata(t, "signature-hello.txt.sexp")
	otherHash := hash
	otherHash[31] ^= 1
	tests := []struct {
		name string
		sig  []byte
		hash [32]byte
		acl  *ACL
		want error
	}{
		{"content hash", sig, otherHash, acl, ErrHashMismatch},
		{"signed hash", flipHexDigit(t, sig, "(hash sha256 #"), hash, acl, ErrHashMismatch},
		{"r", flipHexDigit(t, sig, "(r #"), hash, acl, ErrBadSignature},
		{"s", flipHexDigit(t, sig, "(s #"), hash, acl, ErrBadSignature},
		{"signer key", flipHexDigit(t, sig, "(q #"), hash, acl, ErrUnknownSigner},
		{"empty ACL", sig, hash, NewACL(), ErrUnknownSigner},
		{"nil ACL", sig, hash, nil, ErrUnknownSigner},
		{"truncated", sig[:100], hash, acl, ErrMalformed},
		{"not a signature", readTestdata(t, "signing-key.pub"), hash, acl, ErrMalformed},
		{"no sig-val", bytes.Replace(sig, []byte("sig-val"), []byte("sig-xxx"), 1), hash, acl, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.sig, tt.hash, tt.acl)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrMalformed, ErrUnknownSigner, ErrHashMismatch, ErrBadSignature} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
		})
	}
	// A key flipped in the ACL no longer authorizes the signer.
	badACL, err := ParseACL(flipHexDigit(t, readTestdata(t, "acl"), "(q #"), "acl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(sig, hash, badACL); !errors.Is(err, ErrUnknownSigner) {
		t.Errorf("Verify with a tampered ACL key: %v, want ErrUnknownSigner", err)
	}
	if badACL.Authorizes(pub) {
		t.Errorf("tampered ACL authorizes the fixture key")
	}
}

// TestSyntaxes reads every file in canonical form, as |base64| atoms and
// with "quoted strings", as libgcrypt accepts them.
func TestSyntaxes(t *testing.T) {
	pub, sec, acl := fixtureKeys(t)
	hash := fixtureHashBytes(t)
	for _, name := range []string{"signing-key.pub", "signing-key.sec", "acl", "signature-hello.txt.sexp"} {
		n := readNode(t, readTestdata(t, name))
		forms := map[string][]byte{
			"canonical": n.canonical(),
			"base64":    base64Form(n),
			"quoted":    quotedForm(n),
		}
		for form, data := range forms {
			t.Run(name+"/"+form, func(t *testing.T) {
				switch name {
				case "signing-key.pub":
					k, err := ParsePublicKey(data, name)
					if err != nil || !k.Equal(pub) {
						t.Fatalf("ParsePublicKey(%q) = %v, %v", data, k, err)
					}
				case "signing-key.sec":
					k, err := ParsePrivateKey(data, name)
					if err != nil || !k.Public().Equal(sec.Public()) {
						t.Fatalf("ParsePrivateKey(%q) = %v, %v", data, k, err)
					}
				case "acl":
					a, err := ParseACL(data, name)
					if err != nil || !a.Authorizes(pub) {
						t.Fatalf("ParseACL(%q) = %v, %v", data, a, err)
					}
				default:
					if _, err := Verify(data, hash, acl); err != nil {
						t.Fatalf("Verify(%q): %v", data, err)
					}
				}
			})
		}
	}
}

func readNode(t *testing.T, data []byte) node {
	t.Helper()
	v, err := readGcrypt(data)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := toNode(v)
	if !ok {
		t.Fatal("not convertible")
	}
	return n
}

// base64Form writes n in advanced form with every atom as |base64|.
func base64Form(n node) []byte {
	if !n.isList {
		return []byte("|" + base64.StdEncoding.EncodeToString(n.atom) + "|")
	}
	var b bytes.Buffer
	b.WriteString("(")
	for i, c := range n.list {
		if i > 0 {
			b.WriteString(" ")
		}
		b.Write(base64Form(c))
	}
	b.WriteString(")")
	return b.Bytes()
}

// quotedForm writes n with every atom as a "quoted string", binary octets
// as \xHH or octal escapes.
func quotedForm(n node) []byte {
	if !n.isList {
		var b strings.Builder
		b.WriteByte('"')
		for i, c := range n.atom {
			switch {
			case c == '"' || c == '\\':
				b.WriteString(`\` + string(rune(c)))
			case c >= 0x20 && c < 0x7f:
				b.WriteByte(c)
			case i%2 == 0:
				b.WriteString(`\x` + strings.ToLower(string("0123456789ABCDEF"[c>>4])+string("0123456789ABCDEF"[c&15])))
			default:
				b.WriteString(`\` + string(rune('0'+c>>6)) + string(rune('0'+(c>>3)&7)) + string(rune('0'+c&7)))
			}
		}
		b.WriteByte('"')
		return []byte(b.String())
	}
	var b bytes.Buffer
	b.WriteString("(\n")
	for _, c := range n.list {
		b.Write(quotedForm(c))
		b.WriteString("\n")
	}
	b.WriteString(")")
	return b.Bytes()
}
