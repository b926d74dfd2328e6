package discovery

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/scm"
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
	// Source says where the announcement came from, such as
	// "mdns:eth0" or "cache".
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
	total := 0
	values := make(map[string]string, len(txt))
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

	a := &Announcement{
		Machine:  scm.DefaultMachine(),
		Instance: instance,
		Load:     Unknown,
		FreeDisk: Unknown,
		raw:      append([]string(nil), txt...),
	}
	a.Port = port

	v, ok := values["txtvers"]
	if !ok {
		return nil, txtErr("txtvers", "%w", ErrMissing)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return nil, txtErr("txtvers", "%q is not a version number", v)
	}
	a.TXTVers = n

	v, ok = values["systems"]
	if !ok {
		return nil, txtErr("systems", "%w", ErrMissing)
	}
	if a.Systems, err = parseList(v, true); err != nil {
		return nil, &TXTError{Field: "systems", Err: err}
	}

	if v, ok := values["parallel-builds"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 4096 {
			return nil, txtErr("parallel-builds", "%q is not a count from 1 to 4096", v)
		}
		a.ParallelBuilds = n
	}
	if v, ok := values["speed"]; ok {
		f, err := parseFloat(v)
		if err != nil || f <= 0 {
			return nil, txtErr("speed", "%q is not a positive number", v)
		}
		a.Speed = f
	}
	if v, ok := values["features"]; ok && v != "" {
		if a.Features, err = parseList(v, false); err != nil {
			return nil, &TXTError{Field: "features", Err: err}
		}
	}

	v, ok = values["user"]
	if !ok {
		return nil, txtErr("user", "%w", ErrMissing)
	}
	if v == "" || strings.ContainsAny(v, " @:/\\\"'") {
		return nil, txtErr("user", "%q is not a user name", v)
	}
	a.User = v

	v, ok = values["host-key"]
	if !ok {
		return nil, txtErr("host-key", "%w", ErrMissing)
	}
	if err := checkHostKey(v); err != nil {
		return nil, &TXTError{Field: "host-key", Err: err}
	}
	a.HostKey = v

	if v, ok := values["overload-threshold"]; ok {
		if v == "#f" {
			a.OverloadThreshold = nil
		} else {
			f, err := parseFloat(v)
			if err != nil || f < 0 {
				return nil, txtErr("overload-threshold", "%q is not a non-negative number or #f", v)
			}
			a.OverloadThreshold = &f
		}
	}
	if v, ok := values["load"]; ok {
		f, err := parseFloat(v)
		if err != nil || f < 0 {
			return nil, txtErr("load", "%q is not a non-negative number", v)
		}
		a.Load = f
	}
	if v, ok := values["free-disk"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, txtErr("free-disk", "%q is not a number of MiB", v)
		}
		a.FreeDisk = n
	}
	if v, ok := values["addrs"]; ok && v != "" {
		for _, s := range strings.Split(v, ",") {
			ad, err := netip.ParseAddr(s)
			if err != nil {
				return nil, txtErr("addrs", "%q is not an IP address", s)
			}
			a.SignedAddresses = append(a.SignedAddresses, ad.WithZone(""))
		}
	}
	if v, ok := values["signing-key"]; ok {
		if err := checkSigningKey(v); err != nil {
			return nil, &TXTError{Field: "signing-key", Err: err}
		}
		a.SigningKey = v
	}
	if v, ok := values["ts"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 1<<40 {
			return nil, txtErr("ts", "%q is not a time in Unix seconds", v)
		}
		a.Time = time.Unix(n, 0).UTC()
	}
	if v, ok := values["sig"]; ok {
		if err := checkSig(v); err != nil {
			return nil, &TXTError{Field: "sig", Err: err}
		}
		a.Sig = v
	}
	return a, nil
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
	}
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
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].key < pairs[j].key })
	var b strings.Builder
	b.WriteString("guix-offload-announcement\n")
	b.WriteString("instance=" + a.Instance + "\n")
	b.WriteString("port=" + strconv.Itoa(a.Port) + "\n")
	for _, p := range pairs {
		b.WriteString(p.s + "\n")
	}
	return sha256.Sum256([]byte(b.String()))
}
