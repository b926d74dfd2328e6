package pki

import (
	"bytes"
	"strings"
	"testing"
)

// The keys under testdata/quoted were made by real libgcrypt 1.10 through
// guile-gcrypt ('guix archive --generate-key' parameters) and picked, out
// of thousands, because libgcrypt prints an atom of theirs as a quoted
// string holding octets 0xA1–0xFF (its printer's rule; about one key in
// 3,400 for d). Each was then written by Guile's display as Guix writes
// key files:
//
//	*-latin1.*   ISO-8859-1 port: libgcrypt's octets as printed, what
//	             'guix authenticate' prints and reads
//	*-utf8.*     UTF-8 locale: each such octet as two bytes, what
//	             'guix archive --generate-key' or --authorize writes
//	d-c-locale.sec  C locale: each such octet as "?" (the secret is lost)

// TestQuotedSecret: the secret d, quoted with raw high octets and a
// \x00, read the same from both spellings; our writer prints it as
// libgcrypt does.
func TestQuotedSecret(t *testing.T) {
	pub, err := ParsePublicKey(readTestdata(t, "quoted/d.pub"), "d.pub")
	if err != nil {
		t.Fatal(err)
	}
	latin1 := readTestdata(t, "quoted/d-latin1.sec")
	utf8 := readTestdata(t, "quoted/d-utf8.sec")
	if !bytes.Contains(latin1, []byte(`(d "`)) || !bytes.Contains(latin1, []byte(`\x00"`)) || bytes.Equal(latin1, utf8) {
		t.Fatal("testdata/quoted no longer holds a quoted d in two spellings")
	}
	for name, data := range map[string][]byte{"d-latin1.sec": latin1, "d-utf8.sec": utf8} {
		k, err := ParsePrivateKey(data, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !k.Public().Equal(pub) {
			t.Errorf("%s: public half %v, want %v", name, k.Public(), pub)
		}
		if got, err := k.MarshalSexp(); err != nil || !bytes.Equal(got, latin1) {
			t.Errorf("%s: MarshalSexp: %v\n%q\nlibgcrypt:\n%q", name, err, got, latin1)
		}
		// Our signatures with it are libgcrypt's (checked against
		// libgcrypt for fresh keys in guile_test.go) and verify.
		var hash [32]byte
		sig, err := k.Sign(hash)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(sig, hash, NewACL(pub)); err != nil {
			t.Errorf("%s: own signature: %v", name, err)
		}
	}
	_, err = ParsePrivateKey(readTestdata(t, "quoted/d-c-locale.sec"), "d-c-locale.sec")
	if err == nil || !strings.Contains(err.Error(), "d-c-locale.sec:5:") || !strings.Contains(err.Error(), "UTF-8 locale") {
		t.Errorf("key written in the C locale: %v", err)
	}
}
