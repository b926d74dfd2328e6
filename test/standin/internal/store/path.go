package store

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"sort"
	"strings"
)

// base32Chars is Nix's base-32 alphabet (no e, o, u, t).
const base32Chars = "0123456789abcdfghijklmnpqrsvwxyz"

// base32 encodes h the way Nix prints hashes in store paths: five bits at
// a time from the end.
func base32(h []byte) string {
	n := (len(h)*8-1)/5 + 1
	out := make([]byte, 0, n)
	for i := n - 1; i >= 0; i-- {
		b := i * 5
		j, k := b/8, uint(b%8)
		c := h[j] >> k
		if j+1 < len(h) {
			c |= h[j+1] << (8 - k)
		}
		out = append(out, base32Chars[c&0x1f])
	}
	return string(out)
}

// TextPath is the store path the daemon gives a text file named name
// holding content that refers to refs (add-text-to-store), as computed in
// nix/libstore/store-api.cc: the "text" store path of the content's
// SHA-256, folded to 160 bits.
func TextPath(storeDir, name, content string, refs []string) string {
	sum := sha256.Sum256([]byte(content))
	refs = append([]string(nil), refs...)
	sort.Strings(refs)
	typ := "text"
	for _, r := range refs {
		typ += ":" + r
	}
	s := typ + ":sha256:" + hex.EncodeToString(sum[:]) + ":" + storeDir + ":" + name
	h := sha256.Sum256([]byte(s))
	var folded [20]byte
	for i, b := range h {
		folded[i%20] ^= b
	}
	return filepath.Join(storeDir, base32(folded[:])+"-"+name)
}

// ValidName reports whether name may follow the hash part of a store path.
func ValidName(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("+-._?=", c)) {
			return false
		}
	}
	return true
}
