package pki

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// runGuile runs testdata/guile/interop.scm with real libgcrypt.
func runGuile(t *testing.T, guile string, args ...string) string {
	t.Helper()
	script, err := filepath.Abs("testdata/guile/interop.scm")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(guile, append([]string{"--no-auto-compile", script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && strings.Contains(stderr.String(), "no code for module (gcrypt") {
		testenv.Skip(t, "guile-gcrypt is not installed (Debian package guile-gcrypt)")
	}
	if err != nil {
		t.Fatalf("guile %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLibgcryptToGo: keys made as 'guix archive --generate-key' makes
// them and signatures made as 'guix authenticate' makes them, by real
// libgcrypt, read and verified here in both advanced and canonical form;
// for ECDSA our signer must produce libgcrypt's exact bytes.
func TestLibgcryptToGo(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0 and guile-gcrypt")
	dir := t.TempDir()
	runGuile(t, guile, "gen", dir)
	for _, kind := range []string{"ecdsa", "eddsa", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			var pub *PublicKey
			for _, suffix := range []string{"", ".canon"} {
				p, err := ParsePublicKey(readFile(t, dir, kind+".pub"+suffix), kind+".pub"+suffix)
				if err != nil {
					t.Fatal(err)
				}
				sec, err := ParsePrivateKey(readFile(t, dir, kind+".sec"+suffix), kind+".sec"+suffix)
				if err != nil {
					t.Fatal(err)
				}
				if !sec.Public().Equal(p) {
					t.Fatalf("%s.sec%s: public half differs from %s.pub", kind, suffix, kind)
				}
				if pub != nil && !pub.Equal(p) {
					t.Fatalf("canonical and advanced forms differ")
				}
				pub = p
				// Our writer matches libgcrypt's advanced printer.
				if got, want := p.MarshalSexp(), readFile(t, dir, kind+".pub"); !bytes.Equal(got, want) {
					t.Errorf("MarshalSexp:\n%s\nlibgcrypt:\n%s", got, want)
				}
				if kind != "rsa" {
					if got, err := sec.MarshalSexp(); err != nil || !bytes.Equal(got, readFile(t, dir, kind+".sec")) {
						t.Errorf("private MarshalSexp: %v\n%s\nlibgcrypt:\n%s", err, got, readFile(t, dir, kind+".sec"))
					}
				}
				acl := NewACL(p)
				for i := 0; i < 3; i++ {
					base := fmt.Sprintf("%s.%d", kind, i)
					var hash [32]byte
					h, err := hex.DecodeString(strings.TrimSpace(string(readFile(t, dir, base+".hash"))))
					if err != nil || len(h) != 32 {
						t.Fatalf("%s.hash: %v", base, err)
					}
					copy(hash[:], h)
					for _, sigFile := range []string{base + ".sig", base + ".sig.canon"} {
						sig := readFile(t, dir, sigFile)
						signer, err := Verify(sig, hash, acl)
						if err != nil {
							t.Fatalf("Verify %s: %v", sigFile, err)
						}
						if !signer.Equal(p) {
							t.Errorf("%s: signer %v", sigFile, signer)
						}
						other := hash
						other[i] ^= 0x80
						if _, err := Verify(sig, other, acl); !errors.Is(err, ErrHashMismatch) {
							t.Errorf("%s with another hash: %v", sigFile, err)
						}
						if _, err := Verify(sig, hash, NewACL()); !errors.Is(err, ErrUnknownSigner) {
							t.Errorf("%s with an empty ACL: %v", sigFile, err)
						}
						if !strings.HasSuffix(sigFile, ".canon") {
							if _, err := Verify(flipHexDigit(t, sig, "(s #"), hash, acl); !errors.Is(err, ErrBadSignature) {
								t.Errorf("%s with one bit of s flipped: %v", sigFile, err)
							}
						}
					}
					if kind == "ecdsa" {
						mine, err := sec.Sign(hash)
						if err != nil {
							t.Fatal(err)
						}
						if want := readFile(t, dir, base+".sig"); !bytes.Equal(mine, want) {
							t.Errorf("Sign differs from libgcrypt:\n%s\nlibgcrypt:\n%s", mine, want)
						}
					}
				}
			}
		})
	}
}

// TestGoToLibgcrypt: signatures made here, with keys made here and by
// libgcrypt, verified by libgcrypt as Guix's valid-signature? does;
// tampered ones refused.
func TestGoToLibgcrypt(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0 and guile-gcrypt")
	dir := t.TempDir()
	runGuile(t, guile, "gen", dir)
	goDir := filepath.Join(dir, "go")
	if err := os.Mkdir(goDir, 0o755); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*PrivateKey{}
	for _, kind := range []string{"ecdsa", "eddsa"} {
		k, err := ParsePrivateKey(readFile(t, dir, kind+".sec"), kind+".sec")
		if err != nil {
			t.Fatal(err)
		}
		keys["libgcrypt-"+kind] = k
	}
	for _, typ := range []string{TypeECDSA, TypeEdDSA} {
		k, err := GenerateKey(typ, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Round trip through our own files first.
		text, err := k.MarshalSexp()
		if err != nil {
			t.Fatal(err)
		}
		if k, err = ParsePrivateKey(text, "generated"); err != nil {
			t.Fatal(err)
		}
		keys["go-"+typ] = k
	}
	want := map[string]string{}
	for name, k := range keys {
		for i := 0; i < 4; i++ {
			hash := sha256.Sum256([]byte(fmt.Sprintf("%s %d", name, i)))
			sig, err := k.Sign(hash)
			if err != nil {
				t.Fatal(err)
			}
			file := fmt.Sprintf("%s.%d", name, i)
			os.WriteFile(filepath.Join(goDir, file+".sig"), sig, 0o644)
			want[file+".sig"] = "valid"
			// One bit of r, then of the signed hash: libgcrypt must refuse.
			for _, marker := range []string{"(r #", "(value #", "(hash sha256 #"} {
				if j := bytes.Index(sig, []byte(marker)); j >= 0 {
					bad := bytes.Clone(sig)
					p := j + len(marker) + 7
					bad[p] = flipHex(bad[p])
					tag := strings.Trim(strings.Fields(marker)[0], "(")
					os.WriteFile(filepath.Join(goDir, file+"-bad-"+tag+".sig"), bad, 0o644)
					want[file+"-bad-"+tag+".sig"] = "invalid"
				}
			}
		}
	}
	out := runGuile(t, guile, "verify", dir)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	for file, verdict := range want {
		if got[file] != verdict {
			t.Errorf("libgcrypt says %s is %q, want %q", file, got[file], verdict)
		}
	}
	if len(got) != len(want) {
		t.Errorf("libgcrypt checked %d files, want %d:\n%s", len(got), len(want), out)
	}
}
