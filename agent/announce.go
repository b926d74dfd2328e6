package agent

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/guix-offload/guix-offload/discovery"
)

// Service is one DNS-SD service instance to advertise.
type Service struct {
	// Type is the service type; empty means discovery.ServiceType.
	Type string
	// Instance is the instance name ("builder1").
	Instance string
	// Host is the SRV target host name ("builder1.local.").
	Host string
	// Port is the SRV port, the SSH port.
	Port int
	// TXT is the TXT record.
	TXT []string
	// Interfaces are where to advertise.
	Interfaces []net.Interface
	// Addrs are the host's addresses (A and AAAA records); the TXT
	// "addrs" lists the same.
	Addrs []netip.Addr
}

// Announcer starts advertising services. [MDNSAnnouncer] is the real
// one; tests use fakes.
type Announcer interface {
	// Announce starts advertising s (probing and announcing in the
	// background) and returns its registration.
	Announce(s Service) (Registration, error)
}

// Registration is one advertised service.
type Registration interface {
	// SetText replaces the TXT record and announces the new one (with
	// the cache-flush bit, so browsers replace the old one).
	SetText(txt []string)
	// Shutdown sends a goodbye (TTL 0) for every record and stops
	// answering. It returns when the goodbye is sent and is safe to call
	// twice.
	Shutdown()
	// Announced is closed once the service was first announced (after
	// probing): from then on browsers find it.
	Announced() <-chan struct{}
}

// TTL is the time to live of the announced records. RFC 6762 §10
// recommends 120 s for records naming a host; we use it for all, so a
// machine that vanishes without a goodbye (power cut) leaves browsers'
// caches within two minutes.
const TTL = 120

// MDNSAnnouncer advertises with the multicast DNS responder of package
// discovery ([discovery.Respond]): it probes, announces with the
// cache-flush bit, answers queries on the chosen interfaces (Avahi's
// included), announces TXT updates and says goodbye on Shutdown.
type MDNSAnnouncer struct {
	// Logger receives the responder's warnings; nil discards them.
	Logger *slog.Logger
}

// Announce implements [Announcer].
func (m MDNSAnnouncer) Announce(s Service) (Registration, error) {
	// The host name and addresses are ours, not the kernel's: the A and
	// AAAA records are exactly the signed "addrs", and two agents on one
	// kernel (network namespaces) do not both claim its host name.
	r, err := discovery.Respond(discovery.ResponderConfig{
		Service: s.Type, Instance: s.Instance, Host: s.Host, Port: s.Port, TXT: s.TXT,
		Addrs: s.Addrs, Interfaces: s.Interfaces, TTL: TTL, Logger: m.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("advertise %s on %s: %w", s.Instance, ifaceNames(s.Interfaces), err)
	}
	return r, nil
}

// Iface is a network interface with its addresses.
type Iface struct {
	net.Interface
	Addrs []netip.Addr
}

// SystemInterfaces lists this network namespace's interfaces.
func SystemInterfaces() ([]Iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	out := make([]Iface, 0, len(ifs))
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue // vanished meanwhile
		}
		it := Iface{Interface: ifi}
		for _, a := range addrs {
			if p, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(p.IP); ok {
					it.Addrs = append(it.Addrs, ip.Unmap())
				}
			}
		}
		out = append(out, it)
	}
	return out, nil
}

// usable reports whether mDNS can run on ifc: up with a carrier, multicast, not
// loopback, with an address to announce.
func usable(ifc Iface) bool {
	f := ifc.Flags
	return f&net.FlagUp != 0 && f&net.FlagRunning != 0 && f&net.FlagMulticast != 0 && f&net.FlagLoopback == 0 && len(servedAddrs(ifc)) > 0
}

// servedAddrs returns the addresses of ifc worth announcing: IPv4, then
// global IPv6, then IPv6 link-local.
func servedAddrs(ifc Iface) []netip.Addr {
	var v4, v6, ll []netip.Addr
	for _, a := range ifc.Addrs {
		switch {
		case a.IsLoopback() || a.IsMulticast() || a.IsUnspecified():
		case a.Is4():
			v4 = append(v4, a)
		case a.IsLinkLocalUnicast():
			ll = append(ll, a.WithZone(""))
		case a.IsGlobalUnicast():
			v6 = append(v6, a)
		}
	}
	return slices.Concat(v4, v6, ll)
}

// chooseInterfaces picks the interfaces to advertise on: the configured
// ones that exist and are usable, or every usable one. missing lists
// configured names that are absent or unusable.
func chooseInterfaces(all []Iface, configured []string) (chosen []Iface, missing []string) {
	if len(configured) == 0 {
		for _, ifc := range all {
			if usable(ifc) {
				chosen = append(chosen, ifc)
			}
		}
		return chosen, nil
	}
	for _, name := range configured {
		i := slices.IndexFunc(all, func(ifc Iface) bool { return ifc.Name == name })
		if i < 0 || !usable(all[i]) {
			missing = append(missing, name)
			continue
		}
		chosen = append(chosen, all[i])
	}
	return chosen, missing
}

// maxAddrsText is the longest "addrs=…" TXT string: one TXT string holds
// at most 255 bytes.
const maxAddrsText = discovery.MaxTXTString

// addressesOf returns the addresses to announce for ifaces, without
// duplicates, as many as fit in one TXT string; dropped counts the rest.
func addressesOf(ifaces []Iface) (addrs []netip.Addr, dropped int) {
	n := len("addrs=")
	for _, ifc := range ifaces {
		for _, a := range servedAddrs(ifc) {
			if slices.Contains(addrs, a) {
				continue
			}
			l := len(a.String())
			if len(addrs) > 0 {
				l++ // comma
			}
			if n+l > maxAddrsText {
				dropped++
				continue
			}
			n += l
			addrs = append(addrs, a)
		}
	}
	return addrs, dropped
}

// ifaceKey identifies a set of interfaces and their addresses; when it
// changes the agent registers anew.
func ifaceKey(ifaces []Iface) string {
	var b strings.Builder
	for _, ifc := range ifaces {
		fmt.Fprintf(&b, "%s#%d=", ifc.Name, ifc.Index)
		for _, a := range servedAddrs(ifc) {
			b.WriteString(a.String() + ",")
		}
		b.WriteString(";")
	}
	return b.String()
}

func ifaceNames(ifs []net.Interface) string {
	names := make([]string, len(ifs))
	for i, ifc := range ifs {
		names[i] = ifc.Name
	}
	return strings.Join(names, ",")
}

// HostSuffix ends the SRV target's host label: "builder1-guix-offload.local.".
const HostSuffix = "-guix-offload"

// hostLabel turns an instance name into a DNS host label for the SRV
// target: lower case letters, digits and hyphens.
func hostLabel(instance string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(instance) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		s = "guix-builder"
	}
	if limit := 63 - len(HostSuffix); len(s) > limit {
		s = strings.TrimRight(s[:limit], "-")
	}
	return s
}
