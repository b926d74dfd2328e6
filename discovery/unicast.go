package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DefaultResolvConf is the resolver configuration that [Unicast] and
// [Resolver] read unless told otherwise.
const DefaultResolvConf = "/etc/resolv.conf"

// Unicast DNS timing.
const (
	// DefaultUnicastPoll is how often [Unicast] asks each zone for its
	// SOA serial; the zone is read again only when the serial changed.
	DefaultUnicastPoll = 5 * time.Second
	// browseDomainsEvery is how often the browse domains a network
	// offers are looked up again.
	browseDomainsEvery = 5 * time.Minute
	// queryTimeout bounds one DNS exchange.
	queryTimeout = 3 * time.Second
	// unicastParallel is how many queries one listing has in flight.
	unicastParallel = 32
	// ednsSize is the UDP payload size we advertise (EDNS0): a signed
	// TXT record is larger than DNS's classic 512 bytes.
	ednsSize = 4096
)

// Resolver sends DNS queries to the name servers of a resolv.conf file
// (recursion desired), each answer read over UDP with EDNS0 and again
// over TCP when truncated.
type Resolver struct {
	// Servers are "host:port" addresses, tried in order.
	Servers []string
	// Search are the search domains (fully qualified).
	Search []string
}

// ReadResolver reads a resolv.conf file (path "" means
// [DefaultResolvConf]).
func ReadResolver(path string) (*Resolver, error) {
	if path == "" {
		path = DefaultResolvConf
	}
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read resolver configuration %s: %w", path, err)
	}
	r := &Resolver{}
	for _, s := range cc.Servers {
		r.Servers = append(r.Servers, net.JoinHostPort(s, cc.Port))
	}
	for _, s := range cc.Search {
		if s = strings.ToLower(dns.Fqdn(s)); s != "." && !slices.Contains(r.Search, s) {
			r.Search = append(r.Search, s)
		}
	}
	if len(r.Servers) == 0 {
		return nil, fmt.Errorf("read resolver configuration %s: no nameserver line", path)
	}
	return r, nil
}

// Exchange sends m to the resolver's servers in turn until one answers.
func (r *Resolver) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	var errs []error
	for _, s := range r.Servers {
		m.RecursionDesired = true
		resp, err := Exchange(ctx, s, m)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// Exchange sends the query m to server ("host:port") over UDP with
// EDNS0, and again over TCP when the answer is truncated. A TSIG-signed
// m needs a client with the secret: this is for plain queries.
func Exchange(ctx context.Context, server string, m *dns.Msg) (*dns.Msg, error) {
	if m.IsEdns0() == nil {
		m.SetEdns0(ednsSize, false)
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	c := &dns.Client{Net: "udp", UDPSize: ednsSize}
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("ask %s about %s: %w", server, questionString(m), err)
	}
	return resp, nil
}

func questionString(m *dns.Msg) string {
	if len(m.Question) == 0 {
		return "nothing"
	}
	q := m.Question[0]
	return q.Name + " " + dns.TypeToString[q.Qtype]
}

// Zone is where the records of a DNS-SD domain live: the zone that
// holds the domain, and its SOA.
type Zone struct {
	// Name is the zone's apex, fully qualified ("example.org.").
	Name string
	// SOA is its start-of-authority record: Ns (MNAME) names the
	// primary server (RFC 2136 §4), Serial changes with every update.
	SOA *dns.SOA
}

// FindZone finds the zone that holds domain by asking ex for its SOA:
// the answer names it, or the SOA in the authority section of a
// negative answer does.
func FindZone(ctx context.Context, ex func(context.Context, *dns.Msg) (*dns.Msg, error), domain string) (*Zone, error) {
	domain = strings.ToLower(dns.Fqdn(domain))
	m := new(dns.Msg)
	m.SetQuestion(domain, dns.TypeSOA)
	resp, err := ex(ctx, m)
	if err != nil {
		return nil, err
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("find the zone of %s: server answered %s", domain, dns.RcodeToString[resp.Rcode])
	}
	for _, sec := range [][]dns.RR{resp.Answer, resp.Ns} {
		for _, rr := range sec {
			if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(strings.ToLower(soa.Hdr.Name), domain) {
				return &Zone{Name: strings.ToLower(soa.Hdr.Name), SOA: soa}, nil
			}
		}
	}
	return nil, fmt.Errorf("find the zone of %s: no SOA record in the answer (is %s a DNS domain that exists?)", domain, domain)
}

// LookupAddrs returns the IPv4 and IPv6 addresses of host.
func LookupAddrs(ctx context.Context, ex func(context.Context, *dns.Msg) (*dns.Msg, error), host string) ([]netip.Addr, error) {
	var out []netip.Addr
	var errs []error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(host), t)
		resp, err := ex(ctx, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, addrsOf(resp.Answer, host)...)
	}
	if len(out) == 0 {
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, fmt.Errorf("%s has no address record", host)
	}
	return out, nil
}

// addrsOf returns the addresses in the A and AAAA records of host in rrs.
func addrsOf(rrs []dns.RR, host string) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		if !strings.EqualFold(rr.Header().Name, dns.Fqdn(host)) {
			continue
		}
		var ip netip.Addr
		switch rr := rr.(type) {
		case *dns.A:
			ip, _ = netip.AddrFromSlice(rr.A.To4())
		case *dns.AAAA:
			ip, _ = netip.AddrFromSlice(rr.AAAA.To16())
		}
		if ip.IsValid() && !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	return out
}

// Unicast is the wide-area DNS-SD [Source] (RFC 6763 over unicast DNS):
// it lists [ServiceType] in each domain from the zone's authoritative
// servers (with one zone transfer when they allow it, else with
// queries: PTR, then SRV, TXT and addresses of each instance), then
// asks for the zone's SOA serial every Poll and reads again only what
// changed (through an incremental zone transfer, IXFR, when the server
// allows one; else the whole listing).
type Unicast struct {
	// Domains are the DNS-SD domains to browse ("builders.example.org").
	// Empty means the browse domains the network offers (RFC 6763 §11):
	// the targets of the b._dns-sd._udp and lb._dns-sd._udp PTR records
	// under the resolver's search domains.
	Domains []string
	// ResolvConf is the resolver configuration; "" means
	// [DefaultResolvConf].
	ResolvConf string
	// Servers, when set, are asked directly ("host:port") instead of
	// the zones' authoritative servers found through the resolver.
	Servers []string
	// Poll is how often each zone's serial is checked; 0 means
	// [DefaultUnicastPoll].
	Poll time.Duration
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Trust, when set, is the policy that will judge what Run sends:
	// the costly part of its judgment (checking signatures) is then
	// done while reading, on every core (see [preparer]).
	Trust Policy

	// markListed makes Run send a listedKind event once every domain
	// was listed (or failed) the first time.
	markListed bool
}

// uDomain is what Run knows about one browsed domain.
type uDomain struct {
	name    string // "builders.example.org."
	service string // "_guix-offload._tcp.builders.example.org."
	zone    *Zone
	server  string // the server asked
	serial  uint32
	listed  bool
	warned  string
	inst    map[string]*uInstance // by lower-case instance name
}

type uInstance struct {
	key string
	ann *Announcement
	// host is the SRV target, lower case, so a change of its address
	// records finds the instance.
	host string
}

// Run browses until ctx is done (then it returns nil). A domain that
// cannot be reached is one warning, and tried again every Poll.
func (u *Unicast) Run(ctx context.Context, events chan<- Event) error {
	log := u.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	poll := u.Poll
	if poll <= 0 {
		poll = DefaultUnicastPoll
	}
	var res *Resolver
	if len(u.Servers) == 0 || len(u.Domains) == 0 {
		r, err := ReadResolver(u.ResolvConf)
		if err != nil {
			if len(u.Domains) > 0 {
				return err
			}
			// No resolver, no browse domains: nothing to browse.
			log.Debug("wide-area: no browse domains", "err", err)
			if u.markListed {
				select {
				case events <- Event{Kind: listedKind}:
				case <-ctx.Done():
				}
			}
			<-ctx.Done()
			return nil
		}
		res = r
	}
	domains := make(map[string]*uDomain)
	setDomains := func(names []string) {
		for _, n := range names {
			n = strings.ToLower(dns.Fqdn(n))
			if domains[n] == nil {
				domains[n] = &uDomain{name: n, service: ServiceType + "." + n, inst: map[string]*uInstance{}}
			}
		}
	}
	setDomains(u.Domains)
	var nextBrowse time.Time
	markListed := u.markListed
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		if len(u.Domains) == 0 && !u.now().Before(nextBrowse) {
			nextBrowse = u.now().Add(browseDomainsEvery)
			bd := BrowseDomains(ctx, res)
			if len(bd) > 0 {
				log.Debug("wide-area: browse domains", "domains", strings.Join(bd, ","))
			}
			setDomains(bd)
		}
		names := make([]string, 0, len(domains))
		for n := range domains {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			d := domains[n]
			evs, err := u.refresh(ctx, res, d, func(ev Event) bool { return emit(ctx, events, []Event{ev}) })
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				// Network errors name an ephemeral port that changes
				// with every attempt: warn once for all of them.
				kind := err.Error()
				var ne net.Error
				if errors.As(err, &ne) {
					kind = "unreachable"
				}
				if kind != d.warned {
					d.warned = kind
					log.Warn(fmt.Sprintf("wide-area: browse %s: %v (trying again every %s)", d.name, err, poll))
				}
				continue
			}
			if d.warned != "" {
				d.warned = ""
				log.Warn(fmt.Sprintf("wide-area: browse %s: works again", d.name))
			}
			if !emit(ctx, events, evs) {
				return nil
			}
		}
		if markListed {
			markListed = false
			if !emit(ctx, events, []Event{{Kind: listedKind}}) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (u *Unicast) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

// BrowseDomains returns the DNS-SD browse domains the network offers
// (RFC 6763 §11): the targets of the PTR records b._dns-sd._udp.D and
// lb._dns-sd._udp.D for each search domain D of res, without
// duplicates, in order. Lookups that fail count as none.
func BrowseDomains(ctx context.Context, res *Resolver) []string {
	if res == nil {
		return nil
	}
	var out []string
	for _, d := range res.Search {
		for _, prefix := range []string{"b._dns-sd._udp.", "lb._dns-sd._udp."} {
			m := new(dns.Msg)
			m.SetQuestion(prefix+d, dns.TypePTR)
			resp, err := res.Exchange(ctx, m)
			if err != nil {
				continue
			}
			for _, rr := range resp.Answer {
				if p, ok := rr.(*dns.PTR); ok {
					t := strings.ToLower(dns.Fqdn(p.Ptr))
					if _, ok := dns.IsDomainName(t); ok && t != "." && !slices.Contains(out, t) {
						out = append(out, t)
					}
				}
			}
		}
	}
	return out
}

// locate finds d's zone and the server to ask about it.
func (u *Unicast) locate(ctx context.Context, res *Resolver, d *uDomain) error {
	if len(u.Servers) > 0 {
		var errs []error
		for _, s := range u.Servers {
			z, err := FindZone(ctx, func(ctx context.Context, m *dns.Msg) (*dns.Msg, error) { return Exchange(ctx, s, m) }, d.name)
			if err == nil {
				d.zone, d.server = z, s
				return nil
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	z, err := FindZone(ctx, res.Exchange, d.name)
	if err != nil {
		return err
	}
	// Ask the zone's own servers, not a caching resolver: its answers
	// would lag behind updates by up to their time to live.
	m := new(dns.Msg)
	m.SetQuestion(z.Name, dns.TypeNS)
	var candidates []string
	if resp, err := res.Exchange(ctx, m); err == nil {
		for _, rr := range resp.Answer {
			ns, ok := rr.(*dns.NS)
			if !ok {
				continue
			}
			addrs := addrsOf(resp.Extra, ns.Ns)
			if len(addrs) == 0 {
				addrs, _ = LookupAddrs(ctx, res.Exchange, ns.Ns)
			}
			for _, a := range addrs {
				candidates = append(candidates, netip.AddrPortFrom(a, 53).String())
			}
		}
	}
	for _, s := range candidates {
		m := new(dns.Msg)
		m.SetQuestion(z.Name, dns.TypeSOA)
		m.RecursionDesired = false
		if resp, err := Exchange(ctx, s, m); err == nil && resp.Authoritative {
			d.zone, d.server = z, s
			return nil
		}
	}
	// No authoritative server answers us: the resolver it is.
	d.zone, d.server = z, ""
	return nil
}

// ask sends m to d's server, or to the resolver.
func (u *Unicast) ask(ctx context.Context, res *Resolver, d *uDomain, m *dns.Msg) (*dns.Msg, error) {
	if d.server == "" {
		return res.Exchange(ctx, m)
	}
	m.RecursionDesired = false
	return Exchange(ctx, d.server, m)
}

// refresh checks d's serial and reads what changed. The events of a
// first listing go out through stream as they come (a listing of a
// thousand machines takes a moment, and [Lookup] stops on silence);
// the events of later changes are returned.
func (u *Unicast) refresh(ctx context.Context, res *Resolver, d *uDomain, stream func(Event) bool) ([]Event, error) {
	if d.zone == nil {
		if err := u.locate(ctx, res, d); err != nil {
			return nil, err
		}
	}
	m := new(dns.Msg)
	m.SetQuestion(d.zone.Name, dns.TypeSOA)
	resp, err := u.ask(ctx, res, d, m)
	if err != nil {
		d.zone = nil // find the servers again next time
		return nil, err
	}
	var soa *dns.SOA
	for _, rr := range resp.Answer {
		if s, ok := rr.(*dns.SOA); ok {
			soa = s
		}
	}
	if soa == nil {
		d.zone = nil
		return nil, fmt.Errorf("no SOA record for zone %s in the answer (%s)", d.zone.Name, dns.RcodeToString[resp.Rcode])
	}
	if d.listed && soa.Serial == d.serial {
		return nil, nil
	}
	var names map[string]bool
	if d.listed && d.server != "" {
		names = u.changedNames(ctx, d, d.serial)
	}
	d.serial = soa.Serial
	if !d.listed {
		d.listed = true
		_, err := u.list(ctx, res, d, nil, stream)
		return nil, err
	}
	return u.list(ctx, res, d, names, nil)
}

// changedNames asks d's server for the changes since serial with an
// incremental zone transfer (IXFR, RFC 1995) and returns the owner
// names they touch (lower case), or nil when the server does not give
// one (then everything is read again).
func (u *Unicast) changedNames(ctx context.Context, d *uDomain, serial uint32) map[string]bool {
	m := new(dns.Msg)
	m.SetIxfr(d.zone.Name, serial, d.zone.SOA.Ns, d.zone.SOA.Mbox)
	tr := &dns.Transfer{DialTimeout: queryTimeout, ReadTimeout: queryTimeout, WriteTimeout: queryTimeout}
	ch, err := tr.In(m, d.server)
	if err != nil {
		return nil
	}
	names := make(map[string]bool)
	soas, count := 0, 0
	ok := true
	for env := range ch {
		if env.Error != nil || !ok {
			ok = false
			continue // drain: the transfer goroutine ends when read to the end
		}
		for _, rr := range env.RR {
			if count++; count > maxTransfer {
				ok = false // a huge increment: read everything instead
				break
			}
			if _, isSOA := rr.(*dns.SOA); isSOA {
				soas++
				continue
			}
			names[strings.ToLower(rr.Header().Name)] = true
		}
	}
	// A real increment has at least the new SOA, the old one, and the
	// new one again (RFC 1995 §4); a server that falls back to a full
	// transfer (two SOAs) would name every record: read it all then.
	if !ok || soas < 3 || ctx.Err() != nil {
		return nil
	}
	return names
}

// list reads the instances of d: all of them when names is nil, else
// those that names (changed owner names) touch. It returns the events,
// or sends them to stream as they come when stream is not nil.
func (u *Unicast) list(ctx context.Context, res *Resolver, d *uDomain, names map[string]bool, stream func(Event) bool) ([]Event, error) {
	var todo []string // instance names to read
	gone := map[string]bool{}
	var fromXfr map[string]*resolved
	if names == nil && d.server != "" {
		// One zone transfer, when the server allows it, is much
		// cheaper than three queries per machine.
		fromXfr = u.transfer(ctx, d)
	}
	if fromXfr != nil {
		for n := range fromXfr {
			todo = append(todo, n)
		}
		for n := range d.inst {
			if fromXfr[n] == nil {
				gone[n] = true
			}
		}
	} else if names == nil || names[d.service] {
		m := new(dns.Msg)
		m.SetQuestion(d.service, dns.TypePTR)
		resp, err := u.ask(ctx, res, d, m)
		if err != nil {
			return nil, err
		}
		if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
			return nil, fmt.Errorf("list %s: server answered %s", d.service, dns.RcodeToString[resp.Rcode])
		}
		seen := map[string]bool{}
		for _, rr := range resp.Answer {
			p, ok := rr.(*dns.PTR)
			if !ok || !strings.EqualFold(p.Hdr.Name, d.service) {
				continue
			}
			n := strings.ToLower(dns.Fqdn(p.Ptr))
			if !isInstanceOf(n, d.service) || seen[n] {
				continue
			}
			if len(seen) >= MaxInstances {
				break
			}
			seen[n] = true
			if names == nil || d.inst[n] == nil {
				todo = append(todo, n)
			}
		}
		for n := range d.inst {
			if !seen[n] {
				gone[n] = true
			}
		}
	}
	if names != nil {
		for n, in := range d.inst {
			if gone[n] || slices.Contains(todo, n) {
				continue
			}
			if names[n] || names[in.host] {
				todo = append(todo, n)
			}
		}
	}
	slices.Sort(todo)

	var events []Event
	out := func(evs ...Event) bool {
		if stream == nil {
			events = append(events, evs...)
			return true
		}
		for _, ev := range evs {
			if !stream(ev) {
				return false
			}
		}
		return true
	}
	goneNames := make([]string, 0, len(gone))
	for n := range gone {
		goneNames = append(goneNames, n)
	}
	slices.Sort(goneNames)
	for _, n := range goneNames {
		if in := d.inst[n]; in != nil {
			delete(d.inst, n)
			if !out(Event{Kind: Remove, Announcement: in.ann}) {
				return events, nil
			}
		}
	}

	if fromXfr != nil {
		u.prepareAll(ctx, d, fromXfr)
		if ctx.Err() != nil {
			return events, nil
		}
		for _, n := range todo {
			if !out(u.compare(d, n, fromXfr[n])...) {
				return events, nil
			}
		}
		return events, nil
	}
	type result struct {
		name string
		r    *resolved
	}
	results := make(chan result)
	sem := make(chan struct{}, unicastParallel)
	var wg sync.WaitGroup
	rctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		wg.Wait()
	}()
	go func() {
		for _, n := range todo {
			select {
			case sem <- struct{}{}:
			case <-rctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r := u.resolve(rctx, res, d, n)
				u.prepare(d, n, r)
				select {
				case results <- result{n, r}:
				case <-rctx.Done():
				}
			}()
		}
	}()
	for range todo {
		var r result
		select {
		case r = <-results:
		case <-ctx.Done():
			return events, nil
		}
		if !out(u.compare(d, r.name, r.r)...) {
			return events, nil
		}
	}
	return events, nil
}

// maxTransfer bounds the records of a zone transfer that [Unicast]
// reads; a larger zone is listed with queries instead.
const maxTransfer = 200_000

// transfer lists d's instances from one full zone transfer (AXFR), or
// returns nil when the server refuses one (many allow transfers to
// their secondaries only) or the zone is too large.
func (u *Unicast) transfer(ctx context.Context, d *uDomain) map[string]*resolved {
	m := new(dns.Msg)
	m.SetAxfr(d.zone.Name)
	tr := &dns.Transfer{DialTimeout: queryTimeout, ReadTimeout: queryTimeout, WriteTimeout: queryTimeout}
	ch, err := tr.In(m, d.server)
	if err != nil {
		return nil
	}
	var ptrs []string
	srv := map[string]*dns.SRV{}
	txt := map[string]*dns.TXT{}
	addrs := map[string][]dns.RR{}
	count, ok := 0, true
	for env := range ch {
		if env.Error != nil || !ok {
			ok = false
			continue // drain: the transfer goroutine ends when read to the end
		}
		for _, rr := range env.RR {
			if count++; count > maxTransfer {
				ok = false
				break
			}
			name := strings.ToLower(rr.Header().Name)
			switch rr := rr.(type) {
			case *dns.PTR:
				if name == d.service {
					ptrs = append(ptrs, strings.ToLower(dns.Fqdn(rr.Ptr)))
				}
			case *dns.SRV:
				srv[name] = rr
			case *dns.TXT:
				txt[name] = rr
			case *dns.A, *dns.AAAA:
				addrs[name] = append(addrs[name], rr)
			}
		}
	}
	if !ok || ctx.Err() != nil {
		return nil
	}
	out := make(map[string]*resolved)
	for _, n := range ptrs {
		if !isInstanceOf(n, d.service) || out[n] != nil {
			continue
		}
		if len(out) >= MaxInstances {
			break
		}
		r := &resolved{srv: srv[n], txt: txt[n]}
		if r.srv != nil {
			target := strings.ToLower(dns.Fqdn(r.srv.Target))
			r.addrs = addrsOf(addrs[target], target)
			if len(r.addrs) == 0 && !dns.IsSubDomain(d.zone.Name, target) {
				// A target outside the zone: ask for it.
				r.addrs, _ = LookupAddrs(ctx, func(ctx context.Context, m *dns.Msg) (*dns.Msg, error) { return Exchange(ctx, d.server, m) }, target)
			}
			slices.SortFunc(r.addrs, compareAddr)
		}
		out[n] = r
	}
	return out
}

// resolved is what one instance's records say; nil fields are missing.
type resolved struct {
	srv   *dns.SRV
	txt   *dns.TXT
	addrs []netip.Addr
	err   error
	// ann and annErr are ParseTXT's result, when [Unicast.prepare]
	// parsed the TXT record already.
	ann    *Announcement
	annErr error
}

// prepare parses the TXT record of the instance name of r, and lets the
// trust policy check its signature, so that goroutines reading many
// instances share that work; [Unicast.compare] uses the result. It
// touches nothing but r.
func (u *Unicast) prepare(d *uDomain, name string, r *resolved) {
	if r.err != nil || r.srv == nil || r.txt == nil || len(r.addrs) == 0 {
		return
	}
	r.ann, r.annErr = ParseTXT(instanceLabel(name, d.service), int(r.srv.Port), r.txt.Txt)
	if p, ok := u.Trust.(preparer); ok && r.annErr == nil {
		p.prepare(r.ann)
	}
}

// prepareAll runs [Unicast.prepare] over the instances in rs (by name),
// on as many goroutines as there are cores, and returns when all are
// done or ctx is.
func (u *Unicast) prepareAll(ctx context.Context, d *uDomain, rs map[string]*resolved) {
	names := make([]string, 0, len(rs))
	for n := range rs {
		names = append(names, n)
	}
	// Each goroutine takes the next name: no channel send per instance.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(names) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				u.prepare(d, names[i], rs[names[i]])
			}
		}()
	}
	wg.Wait()
}

// resolve reads the SRV, TXT and address records of the instance name.
func (u *Unicast) resolve(ctx context.Context, res *Resolver, d *uDomain, name string) *resolved {
	r := &resolved{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var extra []dns.RR
	for _, t := range []uint16{dns.TypeSRV, dns.TypeTXT} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := new(dns.Msg)
			m.SetQuestion(name, t)
			resp, err := u.ask(ctx, res, d, m)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.err = err
				return
			}
			for _, rr := range resp.Answer {
				if !strings.EqualFold(rr.Header().Name, name) {
					continue
				}
				switch rr := rr.(type) {
				case *dns.SRV:
					r.srv = rr
				case *dns.TXT:
					r.txt = rr
				}
			}
			extra = append(extra, resp.Extra...)
		}()
	}
	wg.Wait()
	if r.srv == nil {
		return r
	}
	r.addrs = addrsOf(extra, r.srv.Target)
	if len(r.addrs) == 0 {
		r.addrs, _ = LookupAddrs(ctx, func(ctx context.Context, m *dns.Msg) (*dns.Msg, error) { return u.ask(ctx, res, d, m) }, r.srv.Target)
	}
	slices.SortFunc(r.addrs, compareAddr)
	return r
}

// compare turns what was read of one instance into events.
// instanceKey is what compare compares between two readings of an
// instance: its SRV target and port, its TXT strings (counted, each
// length-prefixed) and its addresses.
func instanceKey(r *resolved) string {
	var b strings.Builder
	n := 16 + len(r.srv.Target) + 20*len(r.addrs)
	for _, s := range r.txt.Txt {
		n += len(s) + 5
	}
	b.Grow(n)
	b.WriteString(strconv.Itoa(int(r.srv.Port)))
	b.WriteByte('|')
	b.WriteString(strings.ToLower(r.srv.Target))
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(len(r.txt.Txt)))
	for _, s := range r.txt.Txt {
		b.WriteByte('|')
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	for _, ad := range r.addrs {
		b.WriteByte('|')
		b.WriteString(ad.String())
	}
	return b.String()
}

func (u *Unicast) compare(d *uDomain, name string, r *resolved) []Event {
	old := d.inst[name]
	if r.err != nil && old != nil {
		return nil // a lost answer: keep what we know, ask next time
	}
	if r.srv == nil || r.txt == nil || len(r.addrs) == 0 {
		if old == nil {
			return nil
		}
		delete(d.inst, name)
		return []Event{{Kind: Remove, Announcement: old.ann}}
	}
	key := instanceKey(r)
	if old != nil && old.key == key {
		return nil
	}
	label := instanceLabel(name, d.service)
	a, err := r.ann, r.annErr
	if a == nil && err == nil {
		a, err = ParseTXT(label, int(r.srv.Port), r.txt.Txt)
	}
	if err != nil {
		a = &Announcement{Instance: label, Load: Unknown, FreeDisk: Unknown}
		a.Port = int(r.srv.Port)
		a.Ignored = err.Error()
		a.TrustReason = "ignored: " + err.Error()
	}
	a.Addresses = r.addrs
	a.Source = "dns:" + strings.TrimSuffix(d.name, ".")
	a.Seen = u.now()
	a.Name = chooseName(a)
	in := &uInstance{key: key, ann: a, host: strings.ToLower(dns.Fqdn(r.srv.Target))}
	var events []Event
	switch {
	case err != nil:
		if old != nil && old.ann.Ignored == "" {
			events = append(events, Event{Kind: Remove, Announcement: old.ann})
		}
		events = append(events, Event{Kind: Ignore, Announcement: a, Err: err})
	case old == nil || old.ann.Ignored != "":
		events = append(events, Event{Kind: Add, Announcement: a})
	default:
		events = append(events, Event{Kind: Update, Announcement: a})
	}
	d.inst[name] = in
	return events
}

// ServiceName returns the DNS-SD service name of domain
// ("_guix-offload._tcp.builders.example.org.").
func ServiceName(domain string) string {
	return ServiceType + "." + strings.ToLower(dns.Fqdn(domain))
}

// InstanceName returns the full DNS name of instance in domain, with
// the instance label escaped as DNS presentation format needs
// ("my\ builder._guix-offload._tcp.example.org.").
func InstanceName(instance, domain string) string {
	var b strings.Builder
	for i := 0; i < len(instance); i++ {
		c := instance[i]
		switch {
		case c == '.' || c == '\\' || c == '"' || c == '(' || c == ')' || c == ';' || c == ' ' || c == '@' || c == '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x21 || c > 0x7e:
			b.WriteString("\\" + fmt.Sprintf("%03d", c))
		default:
			b.WriteByte(c)
		}
	}
	return b.String() + "." + ServiceName(domain)
}
