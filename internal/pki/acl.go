package pki

import (
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/guix-offload/guix-offload/scm"

	"github.com/guix-offload/guix-offload/internal/boundedread"
)

// DefaultACLFile is where guix-daemon keeps the keys it accepts archives
// from.
const DefaultACLFile = "/etc/guix/acl"

// ACL is Guix's access-control list: the public keys authorized to sign
// archives ("(tag (guix import))").
type ACL struct {
	keys []*PublicKey
	// index holds the keys' identities (see [PublicKey.id]), so that
	// Authorizes costs one lookup, not a comparison per entry: a master
	// with a thousand build machines judges a thousand announcements.
	index map[string]*PublicKey
	// Unsupported lists entries whose keys are well formed but of a kind
	// no Guix signature can be checked with here (another curve, DSA); they
	// authorize nothing.
	Unsupported []error
}

// Keys returns the authorized keys in file order.
func (a *ACL) Keys() []*PublicKey {
	if a == nil {
		return nil
	}
	return append([]*PublicKey(nil), a.keys...)
}

// Authorizes reports whether k is in the ACL. A nil ACL authorizes
// nothing.
func (a *ACL) Authorizes(k *PublicKey) bool {
	if a == nil || k == nil {
		return false
	}
	if a.index != nil {
		return a.index[k.id()] != nil
	}
	for _, e := range a.keys {
		if e.Equal(k) {
			return true
		}
	}
	return false
}

// KeyOfCompact returns the ACL's key whose [PublicKey.Compact] form is s,
// or nil when s is not the compact form of an elliptic-curve key in the
// ACL (RSA keys included: parse those with [ParseCompactPublicKey]). It
// decodes no point, so that a master judging a thousand announcements
// signed by keys of its ACL decodes a key only to check a signature it
// has not checked before.
func (a *ACL) KeyOfCompact(s string) *PublicKey {
	if a == nil || a.index == nil {
		return nil
	}
	typ, b64, ok := strings.Cut(s, ":")
	if !ok || (typ != TypeECDSA && typ != TypeEdDSA) || base64.StdEncoding.DecodedLen(len(b64)) > 33 {
		return nil
	}
	var q [33]byte
	n, err := base64.StdEncoding.Decode(q[:], []byte(b64))
	if err != nil || n != 32 {
		return nil
	}
	return a.index[typ+"\x00"+string(q[:32])]
}

// add appends k to the keys and the index.
func (a *ACL) add(k *PublicKey) {
	if a.index == nil {
		a.index = make(map[string]*PublicKey)
	}
	a.keys = append(a.keys, k)
	if a.index[k.id()] == nil {
		a.index[k.id()] = k
	}
}

// NewACL returns an ACL authorizing keys.
func NewACL(keys ...*PublicKey) *ACL {
	a := &ACL{index: make(map[string]*PublicKey)}
	for _, k := range keys {
		a.add(k)
	}
	return a
}

// MarshalSexp returns the ACL in the advanced form `guix archive
// --authorize` writes.
func (a *ACL) MarshalSexp() []byte {
	n := list(atom("acl"))
	for _, k := range a.keys {
		n.list = append(n.list, list(atom("entry"), k.node(),
			list(atom("tag"), list(atom("guix"), atom("import")))))
	}
	return n.advanced()
}

// ReadACL reads an ACL file such as /etc/guix/acl. A missing file is an
// error wrapping fs.ErrNotExist: Guix then trusts only the machine's own
// key, and the caller decides what that means.
func ReadACL(path string) (*ACL, error) {
	data, err := boundedread.ReadFile(path, boundedread.ACL)
	if err != nil {
		return nil, fmt.Errorf("read ACL: %w", err)
	}
	return ParseACL(data, path)
}

// ParseACL parses an (acl (entry PUBLIC-KEY (tag (guix import))) …)
// S-expression in any of libgcrypt's syntaxes. Like Guix, it rejects the
// whole list when an entry has another shape.
func ParseACL(data []byte, file string) (*ACL, error) {
	v, err := scm.ReadGcrypt(data, file)
	if err != nil {
		return nil, fmt.Errorf("read ACL: %w", err)
	}
	l := items(v)
	if len(l) == 0 || head(v) != "acl" {
		return nil, fmt.Errorf("read ACL: %s: expected (acl (entry …) …)", v.Pos())
	}
	a := &ACL{index: make(map[string]*PublicKey)}
	entries := l[1:]
	keys := publicKeysOf(entries)
	for i, e := range entries {
		el := items(e)
		if len(el) != 3 || head(e) != "entry" {
			return nil, fmt.Errorf("read ACL: %s: expected (entry (public-key …) (tag (guix import)))", e.Pos())
		}
		if !isGuixImportTag(el[2]) {
			return nil, fmt.Errorf("read ACL: %s: entry tag must be (tag (guix import))", el[2].Pos())
		}
		k, err := keys[i].key, keys[i].err
		if errors.Is(err, errUnsupported) {
			a.Unsupported = append(a.Unsupported, err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read ACL: %w", err)
		}
		a.add(k)
	}
	return a, nil
}

type keyOrError struct {
	key *PublicKey
	err error
}

// publicKeysOf parses the key of each well-shaped (entry KEY TAG) in
// entries, on every core for a long ACL; the caller still sees the
// results, and so the first error, in file order. An elliptic-curve key
// is not decoded (a square root each, some milliseconds for a thousand
// keys): it is when a signature is checked with it, and one whose point
// is not on the curve then verifies nothing.
func publicKeysOf(entries []scm.Value) []keyOrError {
	out := make([]keyOrError, len(entries))
	parse := func(i int) {
		if el := items(entries[i]); len(el) == 3 && head(entries[i]) == "entry" {
			out[i].key, out[i].err = publicKeyFrom(el[1], false)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(entries)/64)
	if workers < 2 {
		for i := range entries {
			parse(i)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(entries); i = int(next.Add(1) - 1) {
				parse(i)
			}
		}()
	}
	wg.Wait()
	return out
}

func isGuixImportTag(v scm.Value) bool {
	l := items(v)
	if len(l) != 2 || head(v) != "tag" {
		return false
	}
	t := items(l[1])
	if len(t) != 2 {
		return false
	}
	a, ok1 := scm.AtomBytes(t[0])
	b, ok2 := scm.AtomBytes(t[1])
	return ok1 && ok2 && string(a) == "guix" && string(b) == "import"
}
