package pki

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadACLMissing(t *testing.T) {
	_, err := ReadACL(filepath.Join(t.TempDir(), "acl"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadACL of a missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestParseErrors: every rejection names FILE:LINE:COLUMN and the problem.
func TestParseErrors(t *testing.T) {
	const q = "#F71B36A417F93F8CBBE2EE22ED25D08E9AF0B6D813128D30991DDE62EFC9E609#"
	tests := []struct {
		name, input, want string
		parse             func([]byte, string) error
	}{
		{"unbalanced", "(public-key (ecc (curve Ed25519)", "k:1:1", pub},
		{"other curve", "(public-key (ecc (curve NIST-P256) (q #04#)))", "k:1:18: curve \"NIST-P256\"", pub},
		{"no q", "(public-key (ecc (curve Ed25519)))", "k:1:13: (ecc …) has no (q …)", pub},
		{"short q", "(public-key\n (ecc (curve Ed25519) (q #0102#)))", "k:2:23: bad q: point is 2 bytes", pub},
		{"dsa", "(public-key (dsa (p #01#)))", "algorithm \"dsa\"", pub},
		{"private as public", "(private-key (ecc (curve Ed25519) (d #01#)))", "k:1:1: expected (public-key …), found (private-key …)", pub},
		{"q of another d", "(private-key (ecc (curve Ed25519) (q " + q + ") (d #02#)))", "k:1:35: q does not belong to d", priv},
		{"zero d", "(private-key (ecc (curve Ed25519) (d #00#)))", "secret d is zero", priv},
		{"eddsa short d", "(private-key (ecc (curve Ed25519) (flags eddsa) (d #01#)))", "EdDSA secret d is 1 bytes", priv},
		{"acl tag", "(acl (entry (public-key (ecc (curve Ed25519) (q " + q + "))) (tag (guix export))))", "k:1:119: entry tag must be (tag (guix import))", acl},
		{"acl shape", "(acl (public-key (ecc (curve Ed25519) (q " + q + "))))", "k:1:6: expected (entry", acl},
		{"not acl", "(foo)", "k:1:1: expected (acl", acl},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse([]byte(tt.input), "k")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func pub(b []byte, f string) error  { _, err := ParsePublicKey(b, f); return err }
func priv(b []byte, f string) error { _, err := ParsePrivateKey(b, f); return err }
func acl(b []byte, f string) error  { _, err := ParseACL(b, f); return err }

// TestACLUnsupportedEntries: an entry Guix accepts but we cannot use
// authorizes nothing and does not spoil the others.
func TestACLUnsupportedEntries(t *testing.T) {
	pubKey, _, _ := fixtureKeys(t)
	data := "(acl (entry (public-key (ecc (curve NIST-P256) (q #04#))) (tag (guix import)))" +
		" (entry " + string(pubKey.MarshalSexp()) + " (tag (guix import))))"
	a, err := ParseACL([]byte(data), "acl")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Keys()) != 1 || !a.Authorizes(pubKey) || len(a.Unsupported) != 1 {
		t.Errorf("keys %v, unsupported %v", a.Keys(), a.Unsupported)
	}
}
