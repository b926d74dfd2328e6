package pki

import (
	"bytes"
	"encoding/hex"
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
//
// d.* is a key whose secret d is quoted, q-* one whose point q is (in
// its .pub, .sec and a one-entry ACL as Guix writes it); q.sig is what
// 'guix authenticate sign' prints for the SHA-256 in q.hash with q-*.sec.

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

// TestQuotedPoint: a key whose q libgcrypt prints quoted (about one in
// 8,000), in a key file, the ACL and a signature 'guix authenticate'
// made (ISO-8859-1, q.sig over the SHA-256 in q.hash).
func TestQuotedPoint(t *testing.T) {
	files := func(kind string) map[string][]byte {
		m := map[string][]byte{}
		for _, enc := range []string{"latin1", "utf8"} {
			name := "q-" + enc + "." + kind
			m[name] = readTestdata(t, "quoted/"+name)
		}
		return m
	}
	want := readTestdata(t, "quoted/q-latin1.pub")
	if !bytes.Contains(want, []byte(`(q "`)) {
		t.Fatal("testdata/quoted/q-latin1.pub no longer holds a quoted q")
	}
	pub, err := ParsePublicKey(want, "q-latin1.pub")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files("pub") {
		k, err := ParsePublicKey(data, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !k.Equal(pub) || !bytes.Equal(k.MarshalSexp(), want) {
			t.Errorf("%s: read as %v, written as\n%q\nlibgcrypt:\n%q", name, k, k.MarshalSexp(), want)
		}
	}
	var sec *PrivateKey
	for name, data := range files("sec") {
		k, err := ParsePrivateKey(data, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !k.Public().Equal(pub) {
			t.Errorf("%s: public half %v, want %v", name, k.Public(), pub)
		}
		if got, err := k.MarshalSexp(); err != nil || !bytes.Equal(got, readTestdata(t, "quoted/q-latin1.sec")) {
			t.Errorf("%s: MarshalSexp: %v\n%q", name, err, got)
		}
		sec = k
	}
	sig := readTestdata(t, "quoted/q.sig")
	var hash [32]byte
	if _, err := hex.Decode(hash[:], bytes.TrimSpace(readTestdata(t, "quoted/q.hash"))); err != nil {
		t.Fatal(err)
	}
	for name, data := range files("acl") {
		acl, err := ParseACL(data, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !acl.Authorizes(pub) || len(acl.Keys()) != 1 {
			t.Errorf("%s: keys %v, want %v", name, acl.Keys(), pub)
		}
		if got := acl.MarshalSexp(); !bytes.Equal(got, files("acl")["q-latin1.acl"]) {
			t.Errorf("%s: MarshalSexp:\n%q", name, got)
		}
		if signer, err := Verify(sig, hash, acl); err != nil || !signer.Equal(pub) {
			t.Errorf("q.sig with %s: %v, %v", name, signer, err)
		}
	}
	// Our signature is libgcrypt's, quoted q included.
	if mine, err := sec.Sign(hash); err != nil || !bytes.Equal(mine, sig) {
		t.Errorf("Sign: %v\n%q\nlibgcrypt:\n%q", err, mine, sig)
	}
}

// TestWriteReadsBack: raw octets that all look like UTF-8 pairs would be
// read as UTF-8; such atoms are written #HEX#, and read back as written.
func TestWriteReadsBack(t *testing.T) {
	for _, a := range [][]byte{[]byte("ab\xc3\xa9cd"), []byte("ab\xc3\xa9c\xffd"), []byte("abc")} {
		acl := list(atom("x"), bytesAtom(a)).advanced()
		v, err := readGcrypt(acl)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := toNode(v)
		if !bytes.Equal(got.list[1].atom, a) {
			t.Errorf("%q written as %q, read back as %q", a, acl, got.list[1].atom)
		}
	}
	if got := string(list(atom("x"), bytesAtom([]byte("ab\xc3\xa9cd"))).advanced()); got != "(x #6162C3A96364#)\n" {
		t.Errorf("ambiguous atom written as %q", got)
	}
	if got := string(list(atom("x"), bytesAtom([]byte("ab\xc3\xa9c\xffd"))).advanced()); got != "(x \"ab\xc3\xa9c\xffd\")\n" {
		t.Errorf("atom written as %q, not as libgcrypt prints it", got)
	}
}
