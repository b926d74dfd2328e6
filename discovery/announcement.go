package discovery

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/scm"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// ServiceType is the DNS-SD service type build machines announce.
const ServiceType = "_guix-offload._tcp"

// TXTVersion is the TXT schema version this package writes. Later
// versions only add keys; a reader ignores keys it does not know.
const TXTVersion = 1

// Limits on the TXT record: one string is at most 255 bytes (its length is
// one byte), and the whole record stays well inside one 1,400-byte
// multicast packet together with the PTR, SRV and address records.
const (
	MaxTXTString = 255
	MaxTXTTotal  = 1300
)

// Unknown is the value of [Announcement.Load] and [Announcement.FreeDisk]
// when the announcement does not carry them: [scm.Unknown].
const Unknown = scm.Unknown

// Announcement is what a build machine says about itself on the LAN: a
// machines.scm build-machine record plus what only the LAN knows. The
// embedded [scm.Machine] has Guix's defaults for what the TXT record does
// not carry (private-key, compression, daemon-socket); its Name is the
// address a master connects to, its Port the SRV port (the SSH port).
//
// The embedded Machine's Status is nil: the announcement's own Instance,
// Load and FreeDisk say what it says, and [Announcement.AsMachine] makes
// them the Status of the machine a master uses.
//
// Start with [ParseTXT] to decode a received record or fill one in and
// call [Announcement.Sign] and [Announcement.TXT] to send one.
type Announcement struct {
	scm.Machine

	// Instance is the DNS-SD instance name (by default the host name).
	Instance string `json:"instance"`
	// Addresses are the machine's addresses: on the sending side those
	// it serves SSH on (TXT "addrs", signed); on the receiving side those
	// the browser resolved from its A and AAAA records.
	Addresses []netip.Addr `json:"addresses"`
	// SignedAddresses is the TXT "addrs" list as received; when set, TXT
	// encodes it instead of Addresses.
	SignedAddresses []netip.Addr `json:"signed-addresses,omitempty"`
	// Load is the normalized 1-minute load average (÷ cores), or
	// [Unknown].
	Load float64 `json:"load"`
	// FreeDisk is the free space in the store's file system in MiB, or
	// [Unknown].
	FreeDisk int64 `json:"free-disk"`
	// SigningKey is the machine's Guix archive-signing public key in
	// pki's compact form, empty when unsigned.
	SigningKey string `json:"signing-key"`
	// Time is when the announcement was signed (TXT "ts", Unix seconds);
	// zero when absent.
	Time time.Time `json:"ts,omitzero"`
	// Sig is the base64 signature over [Announcement.SignedHash], empty
	// when unsigned.
	Sig string `json:"-"`
	// TXTVers is the schema version the sender wrote.
	TXTVers int `json:"-"`

	// Filled in by the browser and the trust policy.

	// Trusted says whether the trust policy accepts the machine.
	Trusted bool `json:"trusted"`
	// TrustReason says why the policy accepts or rejects it.
	TrustReason string `json:"trust-reason"`
	// Source says where the announcement came from: "mdns:eth0",
	// "dns:example.org", or both joined by a comma when two sources saw
	// the same machine; a snapshot keeps what the watcher saw.
	Source string `json:"source"`
	// Seen is when the browser last received the announcement.
	Seen time.Time `json:"seen,omitzero"`
	// Ignored, when not empty, says why the announcement could not be
	// used at all (a malformed TXT record, naming the field); only
	// Instance, Port, Addresses and Source are then set.
	Ignored string `json:"ignored,omitempty"`
	// Impostor says that the announcement claims the instance name of a
	// machine the trust policy accepts, and is not that machine's: it
	// is listed apart from the machine and never trusted.
	Impostor bool `json:"impostor,omitempty"`

	// raw is the TXT record as received, kept so that the signature is
	// checked over exactly what was signed, unknown keys included.
	raw []string
	// rawHash is SignedHash over raw for the instance name and port
	// rawHashFor holds: ParseTXT computes it for a signed record (on
	// the core that parses it), so that checking and judging it again
	// does not.
	rawHash    [32]byte
	rawHashFor *hashInput
}

// hashInput is what [Announcement.SignedHash] hashes besides the record.
type hashInput struct {
	instance string
	port     int
}

// AsMachine returns the machine a master may use from the announcement
// a (which its trust policy accepted): the announced build-machine
// record with what the announcement says at run time as its
// [scm.Machine.Status]. It is the one conversion from an announcement to
// a machine. The name is the announced one, else the first address; the
// user is the announced one, else user; the private key is privateKey
// (the announcement's own is this process's default, which means
// nothing to the master). An announcement without a host key (which is
// what SSH pins), a name or a user gives no machine: ok is false.
func (a *Announcement) AsMachine(user, privateKey string) (m *scm.Machine, ok bool) {
	if a.HostKey == "" || a.Ignored != "" || a.Impostor {
		return nil, false
	}
	c := a.Machine.Clone()
	c.PrivateKey = privateKey
	if c.Name == "" && len(a.Addresses) > 0 {
		c.Name = a.Addresses[0].String()
	}
	if c.User == "" {
		c.User = user
	}
	if c.Name == "" || c.User == "" {
		return nil, false
	}
	c.Status = &scm.Status{Instance: a.Instance, Load: a.Load, FreeDisk: a.FreeDisk, Signed: a.Time}
	return &c, true
}

// ListKey identifies a in a listing: its instance name without case,
// apart from the trusted machine of that name when a is an impostor.
func (a *Announcement) ListKey() string {
	k := strings.ToLower(a.Instance)
	if a.Impostor {
		k += "\x00impostor"
	}
	return k
}

// TXTError is a malformed or oversized TXT record. Field names the
// offending key ("TXT" for the record as a whole).
type TXTError struct {
	Field string
	Err   error
}

func (e *TXTError) Error() string {
	return fmt.Sprintf("TXT %s: %v", e.Field, e.Err)
}

func (e *TXTError) Unwrap() error { return e.Err }

func txtErr(field, format string, args ...any) error {
	return &TXTError{Field: field, Err: fmt.Errorf(format, args...)}
}

// ErrMissing is wrapped by a [TXTError] for a required key that is absent.
var ErrMissing = errors.New("missing")

// TXT encodes a as the strings of a DNS-SD TXT record, in a fixed order.
// It does not check the size limits: [Announcement.Check] does.
func (a *Announcement) TXT() []string {
	txt := []string{
		"txtvers=" + strconv.Itoa(TXTVersion),
		"systems=" + strings.Join(a.Systems, ","),
		"parallel-builds=" + strconv.Itoa(a.ParallelBuilds),
		"speed=" + formatFloat(a.Speed),
	}
	if len(a.Features) > 0 {
		txt = append(txt, "features="+strings.Join(a.Features, ","))
	}
	txt = append(txt,
		"user="+a.User,
		"host-key="+a.HostKey,
	)
	if a.OverloadThreshold == nil {
		txt = append(txt, "overload-threshold=#f")
	} else {
		txt = append(txt, "overload-threshold="+formatFloat(*a.OverloadThreshold))
	}
	if a.Load >= 0 {
		txt = append(txt, "load="+strconv.FormatFloat(a.Load, 'f', 2, 64))
	}
	if a.FreeDisk >= 0 {
		txt = append(txt, "free-disk="+strconv.FormatInt(a.FreeDisk, 10))
	}
	if addrs := a.signedAddrs(); len(addrs) > 0 {
		s := make([]string, len(addrs))
		for i, ad := range addrs {
			s[i] = ad.WithZone("").String()
		}
		txt = append(txt, "addrs="+strings.Join(s, ","))
	}
	if a.SigningKey != "" {
		txt = append(txt, "signing-key="+a.SigningKey)
	}
	if !a.Time.IsZero() {
		txt = append(txt, "ts="+strconv.FormatInt(a.Time.Unix(), 10))
	}
	if a.Sig != "" {
		txt = append(txt, "sig="+a.Sig)
	}
	return txt
}

// signedAddrs returns what TXT "addrs" carries: SignedAddresses when set
// (a received announcement), else Addresses (one being composed).
func (a *Announcement) signedAddrs() []netip.Addr {
	if len(a.SignedAddresses) > 0 {
		return a.SignedAddresses
	}
	return a.Addresses
}

// Check reports whether a encodes to a TXT record that [ParseTXT]
// accepts, within the size limits; the error names the field.
func (a *Announcement) Check() error {
	_, err := ParseTXT(a.Instance, a.Port, a.TXT())
	return err
}

func formatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

// ParseTXT decodes the TXT record txt of the DNS-SD instance instance
// whose SRV record names port. Unknown keys are ignored (but covered by
// the signature). A malformed, duplicated or oversized field, or a
// missing required one (txtvers, systems, user, host-key), is a
// [*TXTError] naming the field. The result has Guix's defaults for what
// the record does not carry; Name and Addresses are left for the caller
// (the browser) to fill in from the address records.
func ParseTXT(instance string, port int, txt []string) (*Announcement, error) {
	if instance == "" || len(instance) > 63 {
		return nil, txtErr("instance", "name must be 1 to 63 bytes, not %d", len(instance))
	}
	if i := strings.IndexFunc(instance, isControl); i >= 0 {
		return nil, txtErr("instance", "control character %q in name", instance[i])
	}
	if port < 1 || port > 65535 {
		return nil, txtErr("port", "SRV port %d out of range", port)
	}
	values, err := splitTXT(txt)
	if err != nil {
		return nil, err
	}
	a := &Announcement{
		Machine:  scm.DefaultMachine(),
		Instance: instance,
		Load:     Unknown,
		FreeDisk: Unknown,
		raw:      append([]string(nil), txt...),
	}
	a.Port = port
	// The keys in the order their problems are reported.
	for _, decode := range []func(txtValues, *Announcement) error{
		decodeVersion, decodeOffer, decodeLogin, decodeState, decodeSignature,
	} {
		if err := decode(values, a); err != nil {
			return nil, err
		}
	}
	if a.Sig != "" {
		a.rawHash = a.hashTXT(a.raw)
		a.rawHashFor = &hashInput{a.Instance, a.Port}
	}
	return a, nil
}

// txtValues are the keys of a TXT record (lower-cased) and their values.
type txtValues map[string]string

// splitTXT splits the strings of a TXT record into keys and values,
// checking the sizes, that there is no control character, no empty and
// no repeated key.
func splitTXT(txt []string) (txtValues, error) {
	total := 0
	values := make(txtValues, len(txt))
	for _, s := range txt {
		total += 1 + len(s)
		if s == "" {
			continue // an empty TXT record is one empty string
		}
		key, value, _ := strings.Cut(s, "=")
		field := strings.ToLower(key)
		if len(s) > MaxTXTString {
			return nil, txtErr(printable(field), "string is %d bytes, more than %d", len(s), MaxTXTString)
		}
		if key == "" {
			return nil, txtErr("TXT", "string %q has an empty key", truncate(s))
		}
		if i := strings.IndexFunc(s, isControl); i >= 0 {
			return nil, txtErr(printable(field), "control character %q", s[i])
		}
		if _, dup := values[field]; dup {
			return nil, txtErr(field, "key appears twice")
		}
		values[field] = value
	}
	if total > MaxTXTTotal {
		return nil, txtErr("TXT", "record is %d bytes, more than %d", total, MaxTXTTotal)
	}
	return values, nil
}

// required returns the value of key, or a [TXTError] wrapping
// [ErrMissing].
func (v txtValues) required(key string) (string, error) {
	s, ok := v[key]
	if !ok {
		return "", txtErr(key, "%w", ErrMissing)
	}
	return s, nil
}

// number returns the value of key as a float in [min, ∞) (above it when
// open), or else the error; ok is false when key is absent.
func (v txtValues) number(key string, min float64, open bool, want string) (f float64, ok bool, err error) {
	s, ok := v[key]
	if !ok {
		return 0, false, nil
	}
	f, err = parseFloat(s)
	if err != nil || f < min || open && f == min {
		return 0, true, txtErr(key, "%q is not %s", s, want)
	}
	return f, true, nil
}

// decodeVersion decodes txtvers.
func decodeVersion(v txtValues, a *Announcement) error {
	s, err := v.required("txtvers")
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return txtErr("txtvers", "%q is not a version number", s)
	}
	a.TXTVers = n
	return nil
}

// decodeOffer decodes what the machine offers: systems, parallel-builds,
// speed, features.
func decodeOffer(v txtValues, a *Announcement) error {
	s, err := v.required("systems")
	if err != nil {
		return err
	}
	if a.Systems, err = parseList(s, true); err != nil {
		return &TXTError{Field: "systems", Err: err}
	}
	if s, ok := v["parallel-builds"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 4096 {
			return txtErr("parallel-builds", "%q is not a count from 1 to 4096", s)
		}
		a.ParallelBuilds = n
	}
	if f, ok, err := v.number("speed", 0, true, "a positive number"); err != nil {
		return err
	} else if ok {
		a.Speed = f
	}
	if s, ok := v["features"]; ok && s != "" {
		if a.Features, err = parseList(s, false); err != nil {
			return &TXTError{Field: "features", Err: err}
		}
	}
	return nil
}

// decodeLogin decodes how a master logs in: user and host-key.
func decodeLogin(v txtValues, a *Announcement) error {
	s, err := v.required("user")
	if err != nil {
		return err
	}
	if s == "" || strings.ContainsAny(s, " @:/\\\"'") {
		return txtErr("user", "%q is not a user name", s)
	}
	a.User = s
	if s, err = v.required("host-key"); err != nil {
		return err
	}
	if err := checkHostKey(s); err != nil {
		return &TXTError{Field: "host-key", Err: err}
	}
	a.HostKey = s
	return nil
}

// decodeState decodes what changes while the machine runs:
// overload-threshold, load, free-disk.
func decodeState(v txtValues, a *Announcement) error {
	if s, ok := v["overload-threshold"]; ok && s == "#f" {
		a.OverloadThreshold = nil
	} else if f, ok, err := v.number("overload-threshold", 0, false, "a non-negative number or #f"); err != nil {
		return err
	} else if ok {
		a.OverloadThreshold = &f
	}
	if f, ok, err := v.number("load", 0, false, "a non-negative number"); err != nil {
		return err
	} else if ok {
		a.Load = f
	}
	if s, ok := v["free-disk"]; ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return txtErr("free-disk", "%q is not a number of MiB", s)
		}
		a.FreeDisk = n
	}
	return nil
}

// decodeSignature decodes what the signature covers and is: addrs,
// signing-key, ts, sig.
func decodeSignature(v txtValues, a *Announcement) error {
	if s, ok := v["addrs"]; ok && s != "" {
		for _, s := range strings.Split(s, ",") {
			ad, err := netip.ParseAddr(s)
			if err != nil {
				return txtErr("addrs", "%q is not an IP address", s)
			}
			a.SignedAddresses = append(a.SignedAddresses, ad.WithZone(""))
		}
	}
	if s, ok := v["signing-key"]; ok {
		// Whether its point is on the curve is found out when a
		// signature is checked with it (see ACLPolicy.checkSigner).
		if err := pki.CheckCompactPublicKey(s); err != nil {
			return &TXTError{Field: "signing-key", Err: err}
		}
		a.SigningKey = s
	}
	if s, ok := v["ts"]; ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > 1<<40 {
			return txtErr("ts", "%q is not a time in Unix seconds", s)
		}
		a.Time = time.Unix(n, 0).UTC()
	}
	if s, ok := v["sig"]; ok {
		if err := checkSig(s); err != nil {
			return &TXTError{Field: "sig", Err: err}
		}
		a.Sig = s
	}
	return nil
}

// parseList parses a comma-separated list of system types or features:
// letters, digits and "._+-", no empty items, no duplicates.
func parseList(v string, nonEmpty bool) ([]string, error) {
	if v == "" {
		if nonEmpty {
			return nil, errors.New("empty list")
		}
		return nil, nil
	}
	items := strings.Split(v, ",")
	seen := make(map[string]bool, len(items))
	out := items[:0]
	for _, it := range items {
		if it == "" {
			return nil, fmt.Errorf("empty item in %q", v)
		}
		for _, r := range it {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+-", r)) {
				return nil, fmt.Errorf("character %q in %q", r, it)
			}
		}
		if seen[it] {
			continue
		}
		seen[it] = true
		out = append(out, it)
	}
	return out, nil
}

func parseFloat(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f > 1e6 {
		return 0, errors.New("out of range")
	}
	return f, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if isControl(r) {
			return '?'
		}
		return r
	}, s)
	return truncate(s)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// SignedHash is the message the signature covers: SHA-256 over a header
// naming the scheme, the instance name, the SRV port, and every TXT
// string but sig, sorted by key, each followed by a newline. A received
// announcement is hashed over the strings exactly as received (unknown
// keys included); a composed one over [Announcement.TXT].
func (a *Announcement) SignedHash() [32]byte {
	txt := a.raw
	if txt == nil {
		txt = a.TXT()
	} else if f := a.rawHashFor; f != nil && f.instance == a.Instance && f.port == a.Port {
		return a.rawHash
	}
	return a.hashTXT(txt)
}

// hashTXT is [Announcement.SignedHash] over the strings txt.
func (a *Announcement) hashTXT(txt []string) [32]byte {
	type pair struct{ key, s string }
	pairs := make([]pair, 0, len(txt))
	for _, s := range txt {
		if s == "" {
			continue
		}
		k, _, _ := strings.Cut(s, "=")
		k = strings.ToLower(k)
		if k == "sig" {
			continue
		}
		pairs = append(pairs, pair{k, s})
	}
	// By key; [ParseTXT] rejects a key that appears twice, and the
	// string breaks ties between copies of one otherwise.
	slices.SortFunc(pairs, func(x, y pair) int {
		if c := strings.Compare(x.key, y.key); c != 0 {
			return c
		}
		return strings.Compare(x.s, y.s)
	})
	var b strings.Builder
	b.WriteString("guix-offload-announcement\n")
	b.WriteString("instance=" + a.Instance + "\n")
	b.WriteString("port=" + strconv.Itoa(a.Port) + "\n")
	for _, p := range pairs {
		b.WriteString(p.s + "\n")
	}
	return sha256.Sum256([]byte(b.String()))
}
