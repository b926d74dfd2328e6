package hook

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Unknown marks a load or free disk space nobody advertised.
const Unknown = -1

// Machine is a build machine the hook may offload to: an entry of
// machines.scm or a discovered machine the trust policy accepted.
type Machine struct {
	Name              string
	Port              int
	User              string
	PrivateKey        string
	HostKey           string // OpenSSH public key line, pinned for SSH
	Systems           []string
	Features          []string
	ParallelBuilds    int
	Speed             float64
	OverloadThreshold *float64 // nil: ignore load (#f)

	// Load is the advertised normalized load, FreeDisk the advertised
	// free store space in MiB; Unknown for static machines nobody
	// announces.
	Load     float64
	FreeDisk int64

	// Origin says where the machine comes from, for messages:
	// "machines.scm" or "discovered".
	Origin string
	// Instance is the DNS-SD instance name of a discovered machine.
	Instance string
	// Signed is when a discovered machine's announcement was signed
	// (zero when unsigned); under trust "acl" it must be recent.
	Signed time.Time
}

// Key is HOST:PORT, the name of the machine's slot directory in Guix's
// layout.
func (m *Machine) Key() string { return m.Name + ":" + strconv.Itoa(m.port()) }

// Addr is HOST:PORT suitable for dialing.
func (m *Machine) Addr() string { return net.JoinHostPort(m.Name, strconv.Itoa(m.port())) }

func (m *Machine) port() int {
	if m.Port == 0 {
		return 22
	}
	return m.Port
}

// Label names the machine in messages: its name, plus its instance when
// discovered under another name.
func (m *Machine) Label() string {
	if m.Instance != "" && m.Instance != m.Name {
		return fmt.Sprintf("'%s' (%s)", m.Instance, m.Key())
	}
	return fmt.Sprintf("'%s'", m.Key())
}

// hostKeyID is the host key without its comment, for comparing.
func hostKeyID(line string) string {
	typ, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok {
		return ""
	}
	rest = strings.TrimLeft(rest, " \t")
	if i := strings.IndexAny(rest, " \t"); i >= 0 {
		rest = rest[:i]
	}
	if rest == "" {
		return ""
	}
	return typ + " " + rest
}

// Merge returns the static machines followed by the discovered ones that
// no static machine already names. A static entry wins over a discovered
// one with the same host key or the same name and port; when their host
// keys match it then takes the announcement's load and free disk space,
// which machines.scm cannot say (a same-named announcement with another
// host key is another host, whose load says nothing about this one).
// Among discovered machines the first of a name and port wins. Merge does
// not modify its arguments (a static machine that takes an announcement's
// load is a copy).
func Merge(static, discovered []*Machine) []*Machine {
	out := make([]*Machine, 0, len(static)+len(discovered))
	byKey := make(map[string]int, len(static)+len(discovered))
	byHost := make(map[string]int, len(static))
	for i, m := range static {
		out = append(out, m)
		byKey[m.Key()] = i
		if id := hostKeyID(m.HostKey); id != "" {
			byHost[id] = i
		}
	}
	for _, d := range discovered {
		i, ok := byKey[d.Key()]
		if !ok {
			i, ok = byHost[hostKeyID(d.HostKey)]
		}
		if ok {
			s := out[i]
			sameHost := hostKeyID(s.HostKey) != "" && hostKeyID(s.HostKey) == hostKeyID(d.HostKey)
			if s.Origin == OriginStatic && sameHost && s.Load == Unknown && s.FreeDisk == Unknown {
				c := *s
				c.Load, c.FreeDisk = d.Load, d.FreeDisk
				out[i] = &c
			}
			continue
		}
		byKey[d.Key()] = len(out)
		out = append(out, d)
	}
	return out
}

// Origins of machines.
const (
	OriginStatic     = "machines.scm"
	OriginDiscovered = "discovered"
)

// Matches reports whether m builds system with every feature, as Guix's
// machine-matches? does; when not, it says why.
func (m *Machine) Matches(system string, features []string) (bool, string) {
	if !slices.Contains(m.Systems, system) {
		return false, "does not build " + system
	}
	var missing []string
	for _, f := range features {
		if !slices.Contains(m.Features, f) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return false, "lacks feature " + strings.Join(missing, ",")
	}
	return true, ""
}
