package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guix-offload/guix-offload/internal/atomicfile"
	"github.com/guix-offload/guix-offload/internal/pki"

	"github.com/guix-offload/guix-offload/internal/boundedread"
)

// How fresh a signed announcement must be: signed at most MaxAge ago and
// at most MaxAhead in the future (clocks differ a little). Agents sign
// again well within MaxAge even when nothing changes.
const (
	MaxAge   = 10 * time.Minute
	MaxAhead = 2 * time.Minute
)

// Policy decides whether a master may use a discovered machine.
type Policy interface {
	// Judge says whether a is acceptable at time now, and why (or why
	// not), in a few words for people.
	Judge(a *Announcement, now time.Time) (ok bool, reason string)
}

// ParsePolicy returns the policy named name: "acl" (reading the ACL file
// aclFile), "tofu" (pinning host keys in stateFile) or "any".
func ParsePolicy(name, aclFile, stateFile string) (Policy, error) {
	switch name {
	case "acl", "":
		p, err := ReadACLPolicy(aclFile)
		if err == nil {
			err = p.Wait()
		}
		if err != nil {
			return nil, err
		}
		return p, nil
	case "tofu":
		return &TOFUPolicy{File: stateFile}, nil
	case "any":
		return AnyPolicy{}, nil
	}
	return nil, fmt.Errorf("unknown trust policy %q (want acl, tofu or any)", name)
}

// AnyPolicy accepts every well-formed announcement. Anyone on the LAN can
// then make the master offload to them: use it only on a network you
// control entirely.
type AnyPolicy struct{}

// Judge accepts a.
func (AnyPolicy) Judge(a *Announcement, now time.Time) (bool, string) {
	return true, "trust policy any"
}

// ACLPolicy accepts an announcement signed by a key in the ACL, signed
// recently (see [MaxAge], [MaxAhead]), whose signed addresses include the
// address a master would connect to (its Name).
type ACLPolicy struct {
	ACL  *pki.ACL
	File string // for messages

	// memo remembers what checking a signature found, so that judging
	// an announcement again (every [BrowseOptions.Recheck], or after
	// [ACLPolicy.prepare] checked it on another core) costs a SHA-256,
	// not a signature check. Its results depend only on the signed
	// bytes, the key and the signature: nothing is trusted that was not
	// verified in this process, or found in KnownGood.
	memo sigMemo

	// KnownGood, when not nil, holds the signatures found good in
	// earlier runs: those are not checked again, and those found good
	// now are added (the caller saves it).
	KnownGood *KnownGood

	// loading, when not nil, is closed once [ReadACLPolicy] has read
	// ACL, or failed to (loadErr).
	loading chan struct{}
	loadErr error
}

// ReadACLPolicy reads the ACL file and returns an ACL policy at once,
// parsing the file in the background: a judgment waits for it, so that
// a listing reads the network while a large ACL (a thousand keys, some
// milliseconds) is parsed. A file that cannot be read is an error at
// once; one that cannot be parsed is [ACLPolicy.Wait]'s, and until it is
// parsed, and after such a failure, the policy accepts nothing.
func ReadACLPolicy(aclFile string) (*ACLPolicy, error) {
	data, err := boundedread.ReadFile(aclFile, boundedread.ACL)
	if err != nil {
		return nil, fmt.Errorf("read ACL: %w", err)
	}
	p := &ACLPolicy{File: aclFile, loading: make(chan struct{})}
	go func() {
		defer close(p.loading)
		p.ACL, p.loadErr = pki.ParseACL(data, aclFile) // "read ACL: …"
	}()
	return p, nil
}

// Wait waits until the ACL of a [ReadACLPolicy] was read, and returns why
// it could not be; nil at once for a policy made with its ACL.
func (p *ACLPolicy) Wait() error {
	if p.loading == nil {
		return nil
	}
	<-p.loading
	return p.loadErr
}

// sigMemo holds signing keys parsed and signatures checked.
type sigMemo struct {
	mu   sync.Mutex
	keys map[string]keyResult
	sigs map[sigID]string // "" for a good signature, else why not
}

type keyResult struct {
	key *pki.PublicKey
	err error
}

// sigID is one signature check: the key, the signature and the digest.
type sigID struct {
	key, sig string
	hash     [32]byte
}

// maxMemo bounds each of the memo's maps; beyond it, they start again
// empty (a flood of distinct announcements costs checks, not memory).
const maxMemo = 4 * MaxInstances

// key parses the compact key s, or returns it parsed already.
func (m *sigMemo) key(s string) (*pki.PublicKey, error) {
	m.mu.Lock()
	r, ok := m.keys[s]
	m.mu.Unlock()
	if ok {
		return r.key, r.err
	}
	r.key, r.err = pki.ParseCompactPublicKey(s)
	m.mu.Lock()
	if m.keys == nil || len(m.keys) >= maxMemo {
		m.keys = make(map[string]keyResult)
	}
	m.keys[s] = r
	m.mu.Unlock()
	return r.key, r.err
}

// verify checks a's signature by its SigningKey, or returns what
// checking the same signature of the same bytes found before, in this
// process or (a good one) in kg.
func (m *sigMemo) verify(a *Announcement, kg *KnownGood) string {
	id := sigID{key: a.SigningKey, sig: a.Sig, hash: a.SignedHash()}
	m.mu.Lock()
	reason, ok := m.sigs[id]
	m.mu.Unlock()
	if ok {
		return reason
	}
	if !kg.has(id) {
		// The key decoded once per process ([sigMemo.key]), and only
		// for a signature to check.
		key, err := m.key(a.SigningKey)
		if err == nil {
			err = a.verifyWith(key, id.hash)
		} else {
			err = fmt.Errorf("bad signing key: %w", err)
		}
		if err != nil {
			reason = err.Error()
		} else {
			kg.add(id)
		}
	}
	m.mu.Lock()
	if m.sigs == nil || len(m.sigs) >= maxMemo {
		m.sigs = make(map[sigID]string)
	}
	m.sigs[id] = reason
	m.mu.Unlock()
	return reason
}

// Judge checks a's signature, time and address.
func (p *ACLPolicy) Judge(a *Announcement, now time.Time) (bool, string) {
	if reason := p.checkSigner(a); reason != "" {
		return false, reason
	}
	if ok, reason := CheckTime(a.Time, now); !ok {
		return false, reason
	}
	if reason := checkAddress(a); reason != "" {
		return false, reason
	}
	return true, "signed by a key in " + p.file()
}

// JudgeSigned is [ACLPolicy.Judge] without the time: it checks a's
// signature, that the ACL authorizes its key, and that a's Name (the
// address a master connects to) is among its signed addresses. Its
// judgment depends only on a and the ACL, so a caller may keep it; the
// time, which changes with every call, is then [CheckTime]'s to judge.
func (p *ACLPolicy) JudgeSigned(a *Announcement) (bool, string) {
	if reason := p.checkSigner(a); reason != "" {
		return false, reason
	}
	if reason := checkAddress(a); reason != "" {
		return false, reason
	}
	return true, "signed by a key in " + p.file()
}

// checkSigner says why a is not signed by a key in the ACL.
// The ACL is checked before the signature: that is cheap, the signature
// is not (about a tenth of a millisecond), and a flood of announcements
// signed by strangers should cost little.
func (p *ACLPolicy) checkSigner(a *Announcement) string {
	if a.Sig == "" || a.SigningKey == "" {
		return ErrUnsigned.Error()
	}
	if err := p.Wait(); err != nil {
		return err.Error()
	}
	// A key of the ACL is found by its compact form, without decoding
	// it; any other is decoded (once) only to say what is wrong with it.
	if p.ACL.KeyOfCompact(a.SigningKey) == nil {
		k, err := p.memo.key(a.SigningKey)
		if err != nil {
			return fmt.Sprintf("bad signing key: %v", err)
		}
		if !p.ACL.Authorizes(k) {
			return fmt.Sprintf("signing key is not in %s", p.file())
		}
	}
	return p.memo.verify(a, p.KnownGood)
}

// prepare does the costly part of judging a ahead of [ACLPolicy.Judge]:
// it checks the signature when the ACL authorizes the key (see
// [preparer]).
func (p *ACLPolicy) prepare(a *Announcement) { p.checkSigner(a) }

// preparer is a [Policy] that can do the costly, time-independent part
// of judging an announcement ahead, safely from several goroutines at
// once, so that a source reading many announcements together spreads
// that work over the cores; the judgment itself stays [Policy.Judge]'s.
type preparer interface {
	prepare(a *Announcement)
}

func (p *ACLPolicy) file() string {
	if p.File == "" {
		return "the ACL"
	}
	return p.File
}

// CheckTime reports whether an announcement signed at signed (its TXT
// "ts") is recent enough at now to be believed (see [MaxAge],
// [MaxAhead]), and when not, why.
func CheckTime(signed, now time.Time) (bool, string) {
	if signed.IsZero() {
		return false, "signed announcement has no time (ts)"
	}
	if age := now.Sub(signed); age > MaxAge {
		return false, fmt.Sprintf("signature is stale: signed %s ago, more than %s", age.Round(time.Second), MaxAge)
	}
	if ahead := signed.Sub(now); ahead > MaxAhead {
		return false, fmt.Sprintf("signature is from the future: %s ahead (is a clock wrong?)", ahead.Round(time.Second))
	}
	return true, ""
}

// checkAddress says why a is not served from an address it signed.
func checkAddress(a *Announcement) string {
	if len(a.SignedAddresses) == 0 {
		return "announcement signs no addresses (addrs)"
	}
	if a.Name == "" {
		return "no address resolved"
	}
	for _, ad := range a.Addresses {
		if ad.String() == a.Name && slices.Contains(a.SignedAddresses, ad.WithZone("")) {
			return ""
		}
	}
	return fmt.Sprintf("address %s is not among the signed addresses %s (a replay from another host?)", a.Name, joinAddrs(a))
}

func joinAddrs(a *Announcement) string {
	s := make([]string, len(a.SignedAddresses))
	for i, ad := range a.SignedAddresses {
		s[i] = ad.String()
	}
	return strings.Join(s, ",")
}

// TOFUPolicy ("trust on first use") accepts an instance whose host key is
// the one it carried when first seen; it pins that key in File (a JSON
// object keyed by instance name, replaced atomically). Pins are per
// instance name: an instance under a name not pinned yet is trusted on
// first sight. A changed host key is rejected until the pin is removed
// from File by hand.
//
// Several processes (the hook, `guix-offload discover --watch`) may pin
// at once: each read-modify-write of File holds an exclusive flock(2) on
// File+".lock", so no pin is lost.
type TOFUPolicy struct {
	File string

	mu sync.Mutex
}

type pin struct {
	HostKey   string    `json:"host-key"`
	FirstSeen time.Time `json:"first-seen"`
}

// pinLockWait bounds how long Judge waits for another process's lock on
// the pins: a stuck process must not hold up the hook's reply.
const pinLockWait = 10 * time.Second

// Judge pins a's host key on first sight and compares it afterwards.
func (p *TOFUPolicy) Judge(a *Announcement, now time.Time) (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A pin, once written, is only ever replaced by hand: when it is
	// there already, no lock is needed to compare with it.
	pins, err := p.read()
	if err != nil {
		return false, err.Error()
	}
	if ok, reason, pinned := p.compare(pins, a); pinned {
		return ok, reason
	}
	unlock, err := p.lock()
	if err != nil {
		return false, err.Error()
	}
	defer unlock()
	// Read again under the lock: another process may have pinned this
	// instance, or others, since.
	if pins, err = p.read(); err != nil {
		return false, err.Error()
	}
	if ok, reason, pinned := p.compare(pins, a); pinned {
		return ok, reason
	}
	pins[a.Instance] = pin{HostKey: a.HostKey, FirstSeen: now.UTC()}
	if err := p.write(pins); err != nil {
		return false, err.Error()
	}
	return true, "host key pinned on first use in " + p.File
}

// compare judges a against its pin, and says whether there is one.
func (p *TOFUPolicy) compare(pins map[string]pin, a *Announcement) (ok bool, reason string, pinned bool) {
	old, pinned := pins[a.Instance]
	if !pinned {
		return false, "", false
	}
	if hostKeyBlob(old.HostKey) != hostKeyBlob(a.HostKey) {
		return false, fmt.Sprintf("host key differs from the one pinned in %s on %s; remove the pin if the machine was reinstalled", p.File, old.FirstSeen.Format(time.DateOnly)), true
	}
	return true, "host key matches the pin in " + p.File, true
}

// lock takes the exclusive lock on File+".lock" (created when missing),
// waiting at most [pinLockWait], and returns its release.
func (p *TOFUPolicy) lock() (unlock func(), err error) {
	path := p.File + ".lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock pins: %w", err)
	}
	// Read-only is enough for flock, and lets any user who may read the
	// pins take the lock.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock pins: %w", err)
	}
	deadline := time.Now().Add(pinLockWait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock pins %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock pins %s: held by another process for more than %s", path, pinLockWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *TOFUPolicy) read() (map[string]pin, error) {
	pins := make(map[string]pin)
	data, err := boundedread.ReadFile(p.File, boundedread.Snapshot)
	if errors.Is(err, fs.ErrNotExist) {
		return pins, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pins: %w", err)
	}
	if err := json.Unmarshal(data, &pins); err != nil {
		return nil, fmt.Errorf("read pins %s: %w", p.File, err)
	}
	return pins, nil
}

func (p *TOFUPolicy) write(pins map[string]pin) error {
	data, err := json.MarshalIndent(pins, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(p.File, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write pins: %w", err)
	}
	return nil
}

// hostKeyBlob returns "type base64" without a comment.
func hostKeyBlob(k string) string {
	f := strings.Fields(k)
	if len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return k
}
