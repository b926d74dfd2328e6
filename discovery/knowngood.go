package discovery

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"github.com/guix-offload/guix-offload/internal/atomicfile"
	"github.com/guix-offload/guix-offload/internal/boundedread"
)

// KnownGood is a file of signatures that an [ACLPolicy] checked and found
// good in earlier runs, so that listing the same announcements again
// costs a SHA-256 each instead of a signature check (about a tenth of a
// millisecond): what makes `discover --domain` over a zone of a thousand
// machines quick from its second run on.
//
// An entry is the SHA-256 of the signing key, the signature and the
// digest it signs, nothing else: it says "this signature of these bytes
// by this key is valid", a fact that does not age. Whether the ACL
// authorizes the key, how old the signature is and where the
// announcement came from are judged again on every use. A file that
// someone else could have written is not believed ([OpenKnownGood]):
// whoever can write it can make the policy accept any announcement
// signed with a key in the ACL.
type KnownGood struct {
	file string
	mu   sync.Mutex
	old  map[[32]byte]struct{} // read from file
	now  map[[32]byte]struct{} // used or found in this run
	news bool                  // now has entries old lacks
}

// knownGoodMagic is the file's first line.
const knownGoodMagic = "guix-offload-known-good-signatures 1"

// maxKnownGood bounds the entries kept: those of this run first, then
// older ones. A zone can hold at most [MaxInstances] of ours at a time;
// four times that leaves room for every re-signing between two runs.
const maxKnownGood = 4 * MaxInstances

// knownGoodLimit caps the file read: a line is 65 bytes.
const knownGoodLimit = (maxKnownGood + 1) * 80

// ErrKnownGoodUnsafe is wrapped by [OpenKnownGood]'s error for a file or
// directory that someone other than this user (or root, for the
// directory) owns or may write.
var ErrKnownGoodUnsafe = errors.New("writable by others")

// OpenKnownGood reads the known-good signatures of file. A missing file
// is an empty set (Save creates it). The file must be a regular file
// owned by this user, writable by nobody else, in a directory owned by
// this user or root and writable by nobody else (or sticky); otherwise the error
// wraps [ErrKnownGoodUnsafe] and the caller should check every signature
// (and not Save). A damaged file is an error naming its line; the caller
// may start again with [NewKnownGood].
func OpenKnownGood(file string) (*KnownGood, error) {
	k := NewKnownGood(file)
	if err := checkOwner(filepath.Dir(file), true); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := checkOwner(file, false); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return k, nil
		}
		return nil, err
	}
	data, err := boundedread.ReadFile(file, knownGoodLimit)
	if err != nil {
		return nil, fmt.Errorf("read known-good signatures: %w", err)
	}
	k.old, err = parseKnownGood(data, file)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// DefaultKnownGoodFile is where `guix-offload discover` keeps the
// signatures it found good: good-signatures in the guix-offload directory
// of $XDG_CACHE_HOME, else of ~/.cache; "" when getenv has neither.
func DefaultKnownGoodFile(getenv func(string) string) string {
	dir := getenv("XDG_CACHE_HOME")
	if !filepath.IsAbs(dir) {
		dir = getenv("HOME")
		if !filepath.IsAbs(dir) {
			return ""
		}
		dir = filepath.Join(dir, ".cache")
	}
	return filepath.Join(dir, "guix-offload", "good-signatures")
}

// NewKnownGood is an empty set of known-good signatures that Save writes
// to file.
func NewKnownGood(file string) *KnownGood {
	return &KnownGood{file: file, old: map[[32]byte]struct{}{}, now: map[[32]byte]struct{}{}}
}

// checkOwner says why path is not safe to believe: not ours (for a
// directory, not ours nor root's), or writable by group or others (for a
// directory, unless sticky), or (for a file) not a regular file. It does not follow a final symbolic
// link.
func checkOwner(path string, dir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot tell its owner", path)
	}
	uid := uint32(os.Geteuid())
	switch {
	case dir && !fi.IsDir():
		return fmt.Errorf("%s: not a directory", path)
	case !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("%s: %w", path, boundedread.ErrNotRegular)
	case st.Uid != uid && !(dir && st.Uid == 0):
		return fmt.Errorf("%s: owned by uid %d, not by this user (uid %d): %w; remove it", path, st.Uid, uid, ErrKnownGoodUnsafe)
	case fi.Mode().Perm()&0o022 != 0 && !(dir && fi.Mode()&fs.ModeSticky != 0):
		// A sticky directory such as /tmp lets nobody else replace
		// our file.
		return fmt.Errorf("%s: mode %#o: %w; run 'chmod go-w %s'", path, fi.Mode().Perm(), ErrKnownGoodUnsafe, path)
	}
	return nil
}

// parseKnownGood parses the file's contents; name is for messages.
func parseKnownGood(data []byte, name string) (map[[32]byte]struct{}, error) {
	out := make(map[[32]byte]struct{})
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 || string(lines[0]) != knownGoodMagic {
		return nil, fmt.Errorf("%s:1: not a known-good signatures file (want first line %q); remove it", name, knownGoodMagic)
	}
	for i, line := range lines[1:] {
		var id [32]byte
		if len(line) != 2*len(id) {
			return nil, fmt.Errorf("%s:%d: not a signature digest (64 hex digits); remove the file", name, i+2)
		}
		if _, err := hex.Decode(id[:], line); err != nil {
			return nil, fmt.Errorf("%s:%d: not a signature digest: %w; remove the file", name, i+2, err)
		}
		if len(out) < maxKnownGood {
			out[id] = struct{}{}
		}
	}
	return out, nil
}

// knownGoodID is what an entry of the file is for the check id.
func knownGoodID(id sigID) [32]byte {
	h := sha256.New()
	h.Write([]byte("guix-offload signature\x00"))
	h.Write([]byte(id.key))
	h.Write([]byte{0})
	h.Write([]byte(id.sig))
	h.Write([]byte{0})
	h.Write(id.hash[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// has reports whether the check id was found good before; it then
// counts as used in this run.
func (k *KnownGood) has(id sigID) bool {
	if k == nil {
		return false
	}
	e := knownGoodID(id)
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.now[e]; ok {
		return true
	}
	if _, ok := k.old[e]; ok {
		k.now[e] = struct{}{}
		return true
	}
	return false
}

// add records that the check id found a good signature.
func (k *KnownGood) add(id sigID) {
	if k == nil {
		return
	}
	e := knownGoodID(id)
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.now[e]; ok {
		return
	}
	if _, ok := k.old[e]; !ok {
		k.news = true
	}
	if len(k.now) >= maxKnownGood {
		// A watcher running for days sees every machine re-sign
		// every few minutes: the older half goes.
		k.old, k.now = k.now, make(map[[32]byte]struct{})
	}
	k.now[e] = struct{}{}
}

// Save writes the file, mode 0600, in a directory made (mode 0700) when
// missing, when this run found signatures it did not hold: first those
// used or found in this run, then older ones, [maxKnownGood] at most.
func (k *KnownGood) Save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.news {
		return nil
	}
	var ids [][32]byte
	for e := range k.now {
		ids = append(ids, e)
	}
	for e := range k.old {
		if len(ids) >= maxKnownGood {
			break
		}
		if _, ok := k.now[e]; !ok {
			ids = append(ids, e)
		}
	}
	if len(ids) > maxKnownGood {
		ids = ids[:maxKnownGood]
	}
	slices.SortFunc(ids, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	var b bytes.Buffer
	b.Grow(len(knownGoodMagic) + 1 + 65*len(ids))
	b.WriteString(knownGoodMagic + "\n")
	for _, e := range ids {
		b.WriteString(hex.EncodeToString(e[:]))
		b.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(k.file), 0o700); err != nil {
		return fmt.Errorf("save known-good signatures: %w", err)
	}
	if err := atomicfile.Write(k.file, b.Bytes(), atomicfile.Private); err != nil {
		return fmt.Errorf("save known-good signatures: %w", err)
	}
	k.news = false
	return nil
}
