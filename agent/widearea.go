package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/guix-offload/guix-offload/discovery"
)

// WideAreaConfig is agent.toml's [wide-area] table: register this
// machine's DNS-SD records in a DNS zone with signed dynamic updates, so
// masters beyond the LAN find it (see docs/wide-area.md).
type WideAreaConfig struct {
	// Domain is the DNS-SD domain ("builders.example.org"); the records
	// go under _guix-offload._tcp.DOMAIN and guix-offload.DOMAIN.
	Domain string `toml:"domain"`
	// Server is the name server that takes the updates ("ns1.example.org",
	// "192.0.2.53" or "[2001:db8::53]:5353"); default: the zone's
	// primary, the MNAME of its SOA record (RFC 2136 §4).
	Server string `toml:"server"`
	// TSIGKey is the file with the key that signs the updates, as BIND's
	// tsig-keygen writes it.
	TSIGKey string `toml:"tsig-key"`
	// ResolvConf is the resolver configuration used to find the zone and
	// its primary; default /etc/resolv.conf.
	ResolvConf string `toml:"resolv-conf"`
}

// validate checks w, returning a [*ConfigError] naming the first bad key.
func (w *WideAreaConfig) validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: key, Err: fmt.Errorf(format, args...)}
	}
	if w.Domain == "" {
		return bad("domain", "missing: name the DNS domain to register in, such as \"builders.example.org\"")
	}
	if _, ok := dns.IsDomainName(w.Domain); !ok || strings.Trim(w.Domain, ".") == "" || strings.ContainsAny(w.Domain, " \\\"") {
		return bad("domain", "%q is not a DNS domain name", w.Domain)
	}
	if w.TSIGKey == "" {
		return bad("tsig-key", "missing: name the key file that 'tsig-keygen NAME > FILE' wrote")
	}
	if w.Server != "" {
		if _, err := serverAddress(w.Server); err != nil {
			return bad("server", "%v", err)
		}
	}
	return nil
}

// serverAddress turns a configured server into "host:port".
func serverAddress(s string) (string, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(ip, 53).String(), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, "53"
	}
	if _, ok := dns.IsDomainName(host); !ok || host == "" || strings.ContainsAny(host, " /") {
		return "", fmt.Errorf("%q is not a server name or address (host, IP or HOST:PORT)", s)
	}
	if p, err := net.LookupPort("udp", port); err != nil || p == 0 {
		return "", fmt.Errorf("%q: bad port %q", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

// Wide-area timing.
const (
	// WideAreaTTL is the time to live of the registered records: a
	// caching resolver keeps them at most this long after a change.
	WideAreaTTL = 120
	// wideAreaRetryMin and wideAreaRetryMax bound the backoff between
	// failed updates.
	wideAreaRetryMin = time.Second
	wideAreaRetryMax = 5 * time.Minute
	// updateTimeout bounds one update exchange.
	updateTimeout = 10 * time.Second
	// goodbyeTimeout bounds the deletion of the records on stop.
	goodbyeTimeout = 5 * time.Second
	// tsigFudge is the clock difference the server tolerates (RFC 8945
	// recommends 300 s).
	tsigFudge = 300
)

// WideAreaHostLabel is the subdomain of the DNS-SD domain that holds the
// agents' address records (the SRV targets).
const WideAreaHostLabel = "guix-offload"

// wideArea registers one machine's records in a DNS zone and keeps them
// current.
type wideArea struct {
	cfg    WideAreaConfig
	domain string // fully qualified, lower case
	log    *slog.Logger
	latest chan Service
	// bytes counts what the updates sent and received, for the
	// benchmark of the refresh traffic.
	bytes atomic.Int64

	zone   string // found once, then kept
	server string
}

func newWideArea(cfg WideAreaConfig, log *slog.Logger) *wideArea {
	return &wideArea{cfg: cfg, domain: strings.ToLower(dns.Fqdn(cfg.Domain)), log: log, latest: make(chan Service, 1)}
}

// publish hands w the service to register (or register again with its
// new TXT record); it never blocks, and only the latest one counts.
func (w *wideArea) publish(s Service) {
	for {
		select {
		case w.latest <- s:
			return
		default:
		}
		select {
		case <-w.latest:
		default:
		}
	}
}

// run registers what publish hands it until ctx is done, then deletes
// the records it registered.
func (w *wideArea) run(ctx context.Context) {
	var (
		registered *Service // what the zone holds
		pending    *Service
		retryAt    time.Time
		backoff    time.Duration
		failing    string
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if registered != nil {
				gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), goodbyeTimeout)
				err := w.remove(gctx, registered)
				cancel()
				if err != nil {
					w.log.Warn("wide-area: cannot delete the records; masters stop trusting them when their signature is stale", "domain", w.cfg.Domain, "error", err)
				} else {
					w.log.Info("wide-area: records deleted", "domain", w.cfg.Domain)
				}
			}
			return
		case s := <-w.latest:
			pending = &s
			if time.Now().Before(retryAt) {
				continue
			}
		case <-timer.C:
		}
		if pending == nil {
			continue
		}
		sent := w.bytes.Load()
		err := w.update(ctx, registered, pending)
		if ctx.Err() != nil {
			continue
		}
		if err != nil {
			backoff = min(max(2*backoff, wideAreaRetryMin), wideAreaRetryMax)
			retryAt = time.Now().Add(backoff)
			timer.Reset(backoff)
			if kind := failureKind(err); kind != failing {
				failing = kind
				w.log.Warn("wide-area: registration failed; retrying with backoff, multicast announcing goes on", "domain", w.cfg.Domain, "error", err)
			}
			continue
		}
		if registered == nil || failing != "" {
			w.log.Info("wide-area: registered", "domain", w.cfg.Domain, "zone", w.zone, "server", w.server,
				"instance", discovery.InstanceName(pending.Instance, w.domain))
		}
		w.log.Debug("wide-area: updated", "bytes", w.bytes.Load()-sent, "txt-only", txtOnly(registered, pending))
		failing, backoff, retryAt = "", 0, time.Time{}
		registered, pending = pending, nil
	}
}

// failureKind says which failure err is, for logging each kind once:
// the messages of network errors name an ephemeral port that changes
// with every attempt.
func failureKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errBadKey):
		return "bad key"
	case errors.As(err, &ne):
		return "unreachable"
	}
	return err.Error()
}

// locate finds the zone of the domain and the server to update.
func (w *wideArea) locate(ctx context.Context) error {
	if w.zone != "" {
		return nil
	}
	var server string
	var ex func(context.Context, *dns.Msg) (*dns.Msg, error)
	if w.cfg.Server != "" {
		s, err := serverAddress(w.cfg.Server)
		if err != nil {
			return err
		}
		server = s
		ex = func(ctx context.Context, m *dns.Msg) (*dns.Msg, error) { return discovery.Exchange(ctx, server, m) }
	} else {
		res, err := discovery.ReadResolver(w.cfg.ResolvConf)
		if err != nil {
			return fmt.Errorf("find the primary name server: %w (or set server in [wide-area])", err)
		}
		ex = res.Exchange
	}
	z, err := discovery.FindZone(ctx, ex, w.domain)
	if err != nil {
		return err
	}
	if server == "" {
		addrs, err := discovery.LookupAddrs(ctx, ex, z.SOA.Ns)
		if err != nil {
			return fmt.Errorf("find the address of %s, the primary of zone %s: %w (or set server in [wide-area])", z.SOA.Ns, z.Name, err)
		}
		server = netip.AddrPortFrom(addrs[0], 53).String()
	}
	w.zone, w.server = z.Name, server
	return nil
}

// names returns the instance name and the host name (SRV target) of s.
func (w *wideArea) names(s *Service) (inst, host string) {
	return discovery.InstanceName(s.Instance, w.domain), hostLabel(s.Instance) + "." + WideAreaHostLabel + "." + w.domain
}

// update sends the DNS UPDATE that makes the zone hold s, given that it
// holds prev (nil: nothing yet, or not known).
func (w *wideArea) update(ctx context.Context, prev, s *Service) error {
	if err := w.locate(ctx); err != nil {
		return err
	}
	inst, host := w.names(s)
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: WideAreaTTL}
	}
	m := new(dns.Msg)
	m.SetUpdate(w.zone)
	txt := &dns.TXT{Hdr: hdr(inst, dns.TypeTXT), Txt: s.TXT}
	if txtOnly(prev, s) {
		// Only the TXT record changed (load, free space, signature
		// time): the smallest update.
		m.RemoveRRset([]dns.RR{&dns.TXT{Hdr: hdr(inst, dns.TypeTXT)}})
		m.Insert([]dns.RR{txt})
	} else {
		m.RemoveRRset([]dns.RR{
			&dns.SRV{Hdr: hdr(inst, dns.TypeSRV)}, &dns.TXT{Hdr: hdr(inst, dns.TypeTXT)},
			&dns.A{Hdr: hdr(host, dns.TypeA)}, &dns.AAAA{Hdr: hdr(host, dns.TypeAAAA)},
		})
		rrs := []dns.RR{
			&dns.PTR{Hdr: hdr(discovery.ServiceName(w.domain), dns.TypePTR), Ptr: inst},
			&dns.SRV{Hdr: hdr(inst, dns.TypeSRV), Port: uint16(s.Port), Target: host},
			txt,
		}
		for _, a := range publicAddrs(s.Addrs) {
			if a.Is4() {
				rrs = append(rrs, &dns.A{Hdr: hdr(host, dns.TypeA), A: a.AsSlice()})
			} else {
				rrs = append(rrs, &dns.AAAA{Hdr: hdr(host, dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
		m.Insert(rrs)
	}
	return w.send(ctx, m)
}

// txtOnly reports whether going from prev to s changes only the TXT
// record (the load, free space or signature time).
func txtOnly(prev, s *Service) bool {
	return prev != nil && prev.Port == s.Port && slices.Equal(prev.Addrs, s.Addrs) && prev.Instance == s.Instance
}

// remove deletes the records of s: its SRV, TXT and address records and
// its own PTR record (others' PTR records share the name).
func (w *wideArea) remove(ctx context.Context, s *Service) error {
	if err := w.locate(ctx); err != nil {
		return err
	}
	inst, host := w.names(s)
	m := new(dns.Msg)
	m.SetUpdate(w.zone)
	m.Remove([]dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: discovery.ServiceName(w.domain), Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: inst}})
	m.RemoveName([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: inst}}, &dns.ANY{Hdr: dns.RR_Header{Name: host}}})
	return w.send(ctx, m)
}

// publicAddrs leaves out IPv6 link-local addresses: without the
// interface they belong to they mean nothing beyond the link.
func publicAddrs(addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if a.Is6() && a.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.WithZone(""))
	}
	return out
}

// errBadKey is wrapped by the error of an update that the server did
// not accept the key of.
var errBadKey = errors.New("bad TSIG key")

// send signs m with the TSIG key and sends it to the server over TCP
// (a signed TXT record does not fit a classic 512-byte UDP message).
func (w *wideArea) send(ctx context.Context, m *dns.Msg) error {
	// The key file is read for every update, so a key fixed or replaced
	// on disk is used without a restart.
	key, err := ReadTSIGKey(w.cfg.TSIGKey)
	if err != nil {
		return err
	}
	m.SetTsig(key.Name, key.Algorithm, tsigFudge, time.Now().Unix())
	c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{key.Name: key.Secret}}
	ctx, cancel := context.WithTimeout(ctx, updateTimeout)
	defer cancel()
	resp, _, err := c.ExchangeContext(ctx, m, w.server)
	if resp != nil {
		w.bytes.Add(int64(resp.Len()))
	}
	w.bytes.Add(int64(m.Len()))
	hint := fmt.Sprintf("check that %s holds the key named %q in the server's configuration (same secret and algorithm), and that this machine's clock is right", w.cfg.TSIGKey, strings.TrimSuffix(key.Name, "."))
	switch {
	case errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrAuth) || errors.Is(err, dns.ErrSecret) || errors.Is(err, dns.ErrTime) || errors.Is(err, dns.ErrKeyAlg):
		return fmt.Errorf("%w: server %s did not accept or sign with key %q (%v): %s", errBadKey, w.server, strings.TrimSuffix(key.Name, "."), err, hint)
	case err != nil:
		w.zone = "" // find the server again: it may have moved
		return fmt.Errorf("cannot reach name server %s: %w", w.server, err)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeNotAuth:
		return fmt.Errorf("%w: server %s refused key %q (NOTAUTH): %s", errBadKey, w.server, strings.TrimSuffix(key.Name, "."), hint)
	case dns.RcodeRefused:
		return fmt.Errorf("server %s refused the update (REFUSED): the zone %s must let key %q update _guix-offload._tcp.%s (any type) and %s.%s (A, AAAA) in its update-policy (see docs/wide-area.md)",
			w.server, w.zone, strings.TrimSuffix(key.Name, "."), w.domain, WideAreaHostLabel, w.domain)
	case dns.RcodeNotZone:
		zone := w.zone
		w.zone = ""
		return fmt.Errorf("server %s is not authoritative for zone %s (NOTZONE): set server to the zone's primary", w.server, zone)
	}
	if resp.Rcode == dns.RcodeServerFailure {
		return fmt.Errorf("server %s answered the update with SERVFAIL: its log says why (BIND 9.18.28 and later refuse a 101st machine unless the zone sets max-records-per-type, see docs/wide-area.md)", w.server)
	}
	return fmt.Errorf("server %s answered the update with %s", w.server, dns.RcodeToString[resp.Rcode])
}
