package discovery

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Bounds on what a browser keeps, so a flood of bogus announcements costs
// bounded memory.
const (
	// MaxInstances is how many service instances a browser tracks.
	MaxInstances = 1024
	maxRecords   = 8 * MaxInstances
	maxAddrs     = 16 // per host name
	// goodbyeDelay is how long a record announced with TTL 0 lingers
	// (RFC 6762 §10.1).
	goodbyeDelay = time.Second
	// maxQueryInterval caps the backoff between browse queries
	// (RFC 6762 §5.2).
	maxQueryInterval = 60 * time.Minute
)

// rrKey identifies one cached resource record: name, type and rdata.
type rrKey struct {
	name  string // lower case, fully qualified
	rtype uint16
	data  string
}

type cached struct {
	rr       dns.RR
	received time.Time
	ttl      time.Duration
	expires  time.Time
	iface    string
	// refreshed counts the refresh queries sent for this record at 80,
	// 85, 90 and 95 % of its TTL.
	refreshed int
}

func (c *cached) remaining(now time.Time) time.Duration { return c.expires.Sub(now) }

// instanceState is what the cache last reported for one instance.
type instanceState struct {
	kind    EventKind // Add (reported valid) or Ignore
	key     string    // what was reported, to detect changes
	ann     *Announcement
	ignored string
	// untrusted says that the trust policy rejected the announcement
	// when it last changed: such instances are evicted before trusted
	// ones.
	untrusted bool
}

// cache is a multicast DNS record cache for one service type with its
// own clock: it takes packets (handle), and on every tick reports what
// changed as events and which questions to ask. It is not safe for
// concurrent use; one loop owns it.
type cache struct {
	service string // "_guix-offload._tcp.local."
	// records holds the cached records by owner name (lower case).
	records  map[string]map[rrKey]*cached
	nrecords int
	// targets maps a host name to the instances whose SRV names it.
	targets map[string]map[string]bool
	// ptrs maps an instance name to the key of its PTR record.
	ptrs map[string]rrKey
	// dirty holds the instances whose records changed since the last
	// tick.
	dirty map[string]bool
	// nextExpiry is no later than the earliest expiry of a cached
	// record (zero: unknown), so most ticks need not scan.
	nextExpiry time.Time
	state      map[string]*instanceState // by lower-case instance name
	// evicted holds the Remove events of instances evicted since the
	// last tick.
	evicted []Event

	// Browse query schedule.
	nextBrowse     time.Time
	browseInterval time.Duration
	// Last time each question was asked, to rate-limit resolution.
	asked map[dns.Question]askState

	// trusted, when set, says whether the trust policy accepts an
	// announcement; it only decides which instances [cache.evict] drops
	// first (nil: every well-formed one counts as trusted).
	trusted func(a *Announcement, now time.Time) bool

	// fault, when set (by tests only), is called with every response
	// before it is filed: it stands for a bug that some untrusted
	// packet triggers.
	fault func(*dns.Msg)

	warn       func(msg string, args ...any)
	warnedAt   map[string]time.Time
	warnWindow time.Time
	warnCount  int
}

type askState struct {
	at       time.Time
	interval time.Duration
}

func newCache(domain string, warn func(string, ...any)) *cache {
	if warn == nil {
		warn = func(string, ...any) {}
	}
	return &cache{
		service:  dns.Fqdn(strings.ToLower(ServiceType + "." + domain)),
		records:  make(map[string]map[rrKey]*cached),
		targets:  make(map[string]map[string]bool),
		ptrs:     make(map[string]rrKey),
		dirty:    make(map[string]bool),
		state:    make(map[string]*instanceState),
		asked:    make(map[dns.Question]askState),
		warn:     warn,
		warnedAt: make(map[string]time.Time),
	}
}

// warnOnce logs a warning at most once a minute per key.
// At most maxWarnings warnings a minute in all, so a flood of bogus
// announcements does not flood the log too.
const maxWarnings = 20

func (c *cache) warnOnce(now time.Time, key, msg string, args ...any) {
	if t, ok := c.warnedAt[key]; ok && now.Sub(t) < time.Minute {
		return
	}
	if now.Sub(c.warnWindow) >= time.Minute {
		c.warnWindow, c.warnCount = now, 0
	}
	c.warnCount++
	if c.warnCount > maxWarnings {
		if c.warnCount == maxWarnings+1 {
			c.warn("mdns: more than %d warnings this minute; holding back the rest", maxWarnings)
		}
		return
	}
	if len(c.warnedAt) > 4*MaxInstances {
		clear(c.warnedAt)
	}
	c.warnedAt[key] = now
	c.warn(msg, args...)
}

func rdata(rr dns.RR) string {
	full := rr.String()
	hdr := rr.Header().String()
	return strings.TrimPrefix(full, hdr)
}

// receive decodes one received packet and files it (see [cache.handle]).
// A panic while doing so is logged as a warning (the panic value, no
// stack) and the packet dropped: packets come from anyone on the LAN,
// and no packet may end the browser, or the hook that waits for it.
func (c *cache) receive(data []byte, iface string, now time.Time) error {
	msg := new(dns.Msg)
	var err error
	c.guard(now, "handling a packet (dropped it)", func() {
		if err = msg.Unpack(data); err != nil {
			return
		}
		if c.fault != nil {
			c.fault(msg)
		}
		c.handle(msg, iface, now)
	})
	return err
}

// guard runs f, which is doing what; a panic in it is logged (at most
// once a minute for each what) and otherwise ignored.
func (c *cache) guard(now time.Time, what string, f func()) {
	defer func() {
		if v := recover(); v != nil {
			c.warnOnce(now, "panic "+what, "mdns: internal error while %s: %v", what, v)
		}
	}()
	f()
}

// handle takes a received response. Queries (ours and others') are
// ignored. Records unrelated to the service type are not kept.
func (c *cache) handle(m *dns.Msg, iface string, now time.Time) {
	if !m.Response || m.Opcode != dns.OpcodeQuery || m.Rcode != dns.RcodeSuccess {
		return
	}
	rrs := make([]dns.RR, 0, len(m.Answer)+len(m.Extra))
	rrs = append(rrs, m.Answer...)
	rrs = append(rrs, m.Ns...)
	rrs = append(rrs, m.Extra...)
	// Two passes: service records first, so the address records of a
	// target named in the same packet are recognized as wanted.
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.PTR:
			if strings.EqualFold(rr.Hdr.Name, c.service) && isInstanceOf(rr.Ptr, c.service) {
				c.put(rr, iface, now)
			}
		case *dns.SRV, *dns.TXT:
			if isInstanceOf(rr.Header().Name, c.service) {
				c.put(rr, iface, now)
			}
		}
	}
	for _, rr := range rrs {
		switch rr.(type) {
		case *dns.A, *dns.AAAA:
			if c.isTarget(rr.Header().Name) {
				c.put(rr, iface, now)
			}
		}
	}
}

// isInstanceOf reports whether name is "<one label>.<service>".
func isInstanceOf(name, service string) bool {
	name = strings.ToLower(dns.Fqdn(name))
	if !strings.HasSuffix(name, "."+service) {
		return false
	}
	label := strings.TrimSuffix(name, "."+service)
	// The instance label may contain escaped dots ("\."), never a bare one.
	labels := dns.SplitDomainName(label)
	return len(labels) == 1 && labels[0] != ""
}

func (c *cache) isTarget(host string) bool {
	return len(c.targets[strings.ToLower(dns.Fqdn(host))]) > 0
}

// touch marks the instances that a change of a record of name and type
// affects.
func (c *cache) touch(name string, rr dns.RR) {
	switch rr := rr.(type) {
	case *dns.PTR:
		c.dirty[strings.ToLower(dns.Fqdn(rr.Ptr))] = true
	case *dns.SRV, *dns.TXT:
		c.dirty[name] = true
	case *dns.A, *dns.AAAA:
		for inst := range c.targets[name] {
			c.dirty[inst] = true
		}
	}
}

// remove drops one record.
func (c *cache) remove(k rrKey) {
	byName := c.records[k.name]
	r, ok := byName[k]
	if !ok {
		return
	}
	delete(byName, k)
	if len(byName) == 0 {
		delete(c.records, k.name)
	}
	c.nrecords--
	c.touch(k.name, r.rr)
	if ptr, ok := r.rr.(*dns.PTR); ok {
		delete(c.ptrs, strings.ToLower(dns.Fqdn(ptr.Ptr)))
	}
	if srv, ok := r.rr.(*dns.SRV); ok {
		// Forget the target unless another live SRV of this instance
		// still names it.
		target := strings.ToLower(dns.Fqdn(srv.Target))
		still := false
		for _, o := range c.records[k.name] {
			if o2, ok := o.rr.(*dns.SRV); ok && strings.EqualFold(dns.Fqdn(o2.Target), target) {
				still = true
			}
		}
		if !still {
			delete(c.targets[target], k.name)
			if len(c.targets[target]) == 0 {
				delete(c.targets, target)
			}
		}
	}
}

func (c *cache) count(name string, types ...uint16) int {
	n := 0
	for k := range c.records[name] {
		if slices.Contains(types, k.rtype) {
			n++
		}
	}
	return n
}

func (c *cache) put(rr dns.RR, iface string, now time.Time) {
	h := rr.Header()
	// The top bit of the class is mDNS's cache-flush bit (RFC 6762 §10.2).
	flush := h.Class&0x8000 != 0
	if h.Class&0x7fff != dns.ClassINET {
		return
	}
	name := strings.ToLower(dns.Fqdn(h.Name))
	key := rrKey{name: name, rtype: h.Rrtype, data: rdata(rr)}
	ttl := time.Duration(h.Ttl) * time.Second
	if flush {
		// Records of this name and type received more than a second ago
		// are stale: they expire in a second.
		for k, r := range c.records[name] {
			if k.rtype == h.Rrtype && k != key && now.Sub(r.received) > time.Second {
				if r.expires.After(now.Add(goodbyeDelay)) {
					r.expires = now.Add(goodbyeDelay)
					c.noteExpiry(r.expires)
					r.refreshed = 4
				}
			}
		}
	}
	if h.Ttl == 0 {
		if r, ok := c.records[name][key]; ok {
			r.expires = now.Add(goodbyeDelay)
			c.noteExpiry(r.expires)
			r.refreshed = 4 // no refresh of a record that said goodbye
		}
		return
	}
	if r, ok := c.records[name][key]; ok {
		r.rr, r.received, r.ttl, r.expires, r.iface, r.refreshed = rr, now, ttl, now.Add(ttl), iface, 0
		c.noteExpiry(r.expires)
		c.touch(name, rr)
		return
	}
	if c.nrecords >= maxRecords {
		c.warnOnce(now, "records", "mdns: more than %d records for %s; ignoring new ones", maxRecords, c.service)
		return
	}
	if h.Rrtype == dns.TypePTR {
		if len(c.ptrs) >= MaxInstances && !c.evict(now) {
			c.warnOnce(now, "instances", "mdns: more than %d instances of %s; ignoring new ones (a flood?)", MaxInstances, c.service)
			return
		}
	}
	if h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA {
		if c.count(name, dns.TypeA, dns.TypeAAAA) >= maxAddrs {
			c.warnOnce(now, "addrs "+name, "mdns: more than %d addresses for %s; ignoring new ones", maxAddrs, name)
			return
		}
	}
	if c.records[name] == nil {
		c.records[name] = make(map[rrKey]*cached)
	}
	c.records[name][key] = &cached{rr: rr, received: now, ttl: ttl, expires: now.Add(ttl), iface: iface}
	c.noteExpiry(now.Add(ttl))
	c.nrecords++
	if ptr, ok := rr.(*dns.PTR); ok {
		c.ptrs[strings.ToLower(dns.Fqdn(ptr.Ptr))] = key
	}
	if srv, ok := rr.(*dns.SRV); ok {
		target := strings.ToLower(dns.Fqdn(srv.Target))
		if c.targets[target] == nil {
			c.targets[target] = make(map[string]bool)
		}
		c.targets[target][name] = true
	}
	c.touch(name, rr)
}

// evict makes room for a new instance by dropping the least recently
// heard one that is not a usable machine (unresolved or ignored), else the
// least recently heard one the trust policy rejected, so a flood of bogus
// or untrusted announcements cannot keep real machines out. Trusted
// machines are never dropped to make room. It reports whether it dropped
// one.
func (c *cache) evict(now time.Time) bool {
	var victim string
	var oldest time.Time
	victimRank := 0
	for name, key := range c.ptrs {
		// rank 2: unusable; 1: untrusted; 0: trusted, kept.
		rank := 2
		if st := c.state[name]; st != nil && st.kind == Add {
			rank = 0
			if st.untrusted {
				rank = 1
			}
		}
		if rank == 0 {
			continue
		}
		r := c.records[key.name][key]
		if r == nil {
			continue
		}
		if victim == "" || rank > victimRank || rank == victimRank && r.received.Before(oldest) {
			victim, oldest, victimRank = name, r.received, rank
		}
	}
	if victim == "" {
		return false
	}
	c.warnOnce(now, "evict", "mdns: more than %d instances of %s; dropping unusable or untrusted ones (a flood?)", MaxInstances, c.service)
	// Forget what was reported now, not at the next tick: the slot must
	// be free for the newcomer, whose name may sort before the victim's.
	c.evicted = append(c.evicted, c.forget(victim)...)
	return true
}

// forget drops the instance name (lower case) and its records, and the
// addresses of its host unless another instance's SRV names that host.
// It returns the Remove event owed when the instance was reported.
func (c *cache) forget(victim string) []Event {
	var events []Event
	if st := c.state[victim]; st != nil {
		events = append(events, Event{Kind: Remove, Announcement: st.ann})
		delete(c.state, victim)
	}
	if k, ok := c.ptrs[victim]; ok {
		c.remove(k)
	}
	var gone []rrKey
	var hosts []string
	for k, r := range c.records[victim] {
		gone = append(gone, k)
		if srv, ok := r.rr.(*dns.SRV); ok {
			hosts = append(hosts, strings.ToLower(dns.Fqdn(srv.Target)))
		}
	}
	for _, k := range gone {
		c.remove(k)
	}
	// The victim's host addresses go too, unless another instance's SRV
	// still names that host.
	for _, host := range hosts {
		if c.isTarget(host) {
			continue
		}
		gone = gone[:0]
		for k := range c.records[host] {
			gone = append(gone, k)
		}
		for _, k := range gone {
			c.remove(k)
		}
	}
	// What forgetting touched is settled here, not at the next tick.
	delete(c.dirty, victim)
	return events
}

// latest returns the most recently received live record of name and type.
func (c *cache) latest(name string, rtype uint16, now time.Time) *cached {
	var best *cached
	for k, r := range c.records[name] {
		if k.rtype == rtype && r.expires.After(now) {
			if best == nil || r.received.After(best.received) {
				best = r
			}
		}
	}
	return best
}

func (c *cache) noteExpiry(t time.Time) {
	if c.nextExpiry.IsZero() || t.Before(c.nextExpiry) {
		c.nextExpiry = t
	}
}

// expire drops records whose time is up.
func (c *cache) expire(now time.Time) {
	if !c.nextExpiry.IsZero() && now.Before(c.nextExpiry) {
		return
	}
	var gone []rrKey
	c.nextExpiry = time.Time{}
	for _, byName := range c.records {
		for k, r := range byName {
			if !r.expires.After(now) {
				gone = append(gone, k)
			} else {
				c.noteExpiry(r.expires)
			}
		}
	}
	for _, k := range gone {
		c.remove(k)
	}
}

// view is one instance as the cache sees it now.
type view struct {
	name    string // lower-case full instance name
	label   string // the instance label, unescaped
	srv     *dns.SRV
	txt     *dns.TXT
	addrs   []netip.Addr
	iface   string
	missing []dns.Question
}

// views returns every instance the cache holds a PTR record for.
func (c *cache) views(now time.Time) []*view {
	var out []*view
	for _, r := range c.records[c.service] {
		if !r.expires.After(now) {
			continue
		}
		out = append(out, c.view(strings.ToLower(dns.Fqdn(r.rr.(*dns.PTR).Ptr)), now))
	}
	slices.SortFunc(out, func(a, b *view) int { return strings.Compare(a.name, b.name) })
	return out
}

// view returns the instance of that name, or nil when no live PTR record
// names it.
func (c *cache) view(name string, now time.Time) *view {
	ptr := c.records[c.service][c.ptrs[name]]
	if ptr == nil || !ptr.expires.After(now) {
		return nil
	}
	v := &view{name: name, label: instanceLabel(ptr.rr.(*dns.PTR).Ptr, c.service), iface: ptr.iface}
	if s := c.latest(name, dns.TypeSRV, now); s != nil {
		v.srv = s.rr.(*dns.SRV)
	} else {
		v.missing = append(v.missing, dns.Question{Name: name, Qtype: dns.TypeSRV, Qclass: dns.ClassINET})
	}
	if t := c.latest(name, dns.TypeTXT, now); t != nil {
		v.txt = t.rr.(*dns.TXT)
	} else {
		v.missing = append(v.missing, dns.Question{Name: name, Qtype: dns.TypeTXT, Qclass: dns.ClassINET})
	}
	if v.srv == nil {
		return v
	}
	host := strings.ToLower(dns.Fqdn(v.srv.Target))
	for _, a := range c.records[host] {
		if !a.expires.After(now) {
			continue
		}
		var ip netip.Addr
		switch rr := a.rr.(type) {
		case *dns.A:
			ip, _ = netip.AddrFromSlice(rr.A.To4())
		case *dns.AAAA:
			ip, _ = netip.AddrFromSlice(rr.AAAA.To16())
			if ip.Is6() && ip.IsLinkLocalUnicast() && a.iface != "" {
				ip = ip.WithZone(a.iface)
			}
		}
		if ip.IsValid() && !slices.Contains(v.addrs, ip) {
			v.addrs = append(v.addrs, ip)
		}
	}
	slices.SortFunc(v.addrs, compareAddr)
	if len(v.addrs) == 0 {
		v.missing = append(v.missing,
			dns.Question{Name: host, Qtype: dns.TypeA, Qclass: dns.ClassINET},
			dns.Question{Name: host, Qtype: dns.TypeAAAA, Qclass: dns.ClassINET})
	}
	return v
}

// compareAddr orders IPv4 first, then global IPv6, then link-local IPv6.
func compareAddr(a, b netip.Addr) int {
	rank := func(x netip.Addr) int {
		switch {
		case x.Is4():
			return 0
		case !x.IsLinkLocalUnicast():
			return 1
		}
		return 2
	}
	if r := rank(a) - rank(b); r != 0 {
		return r
	}
	return a.Compare(b)
}

// instanceLabel returns the instance part of a full service instance
// name, with DNS escapes undone ("My\ Builder" → "My Builder").
func instanceLabel(name, service string) string {
	lower := strings.ToLower(dns.Fqdn(name))
	label := dns.Fqdn(name)[:len(lower)-len(service)-1]
	var b strings.Builder
	for i := 0; i < len(label); i++ {
		ch := label[i]
		if ch == '\\' && i+1 < len(label) {
			if i+3 < len(label) && isDigit(label[i+1]) && isDigit(label[i+2]) && isDigit(label[i+3]) {
				n := int(label[i+1]-'0')*100 + int(label[i+2]-'0')*10 + int(label[i+3]-'0')
				if n < 256 {
					b.WriteByte(byte(n))
					i += 3
					continue
				}
			}
			i++
			b.WriteByte(label[i])
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// tick expires records, compares every changed instance with what was
// last reported, and returns the events in order.
func (c *cache) tick(now time.Time) []Event {
	c.expire(now)
	events := c.evicted
	c.evicted = nil
	if len(c.dirty) == 0 {
		return events
	}
	names := make([]string, 0, len(c.dirty))
	for name := range c.dirty {
		names = append(names, name)
	}
	clear(c.dirty)
	slices.Sort(names)
	for _, name := range names {
		events = append(events, c.safeCompare(name, now)...)
	}
	return events
}

// safeCompare is [cache.compare], except that a panic while judging the
// instance's records (they come from anyone on the LAN) is logged as a
// warning, with the panic value and no stack, and the instance dropped
// as if it had said goodbye; the other instances go on.
func (c *cache) safeCompare(name string, now time.Time) (events []Event) {
	defer func() {
		if v := recover(); v != nil {
			c.warnOnce(now, "panic "+name, "mdns: dropping %s: internal error handling its announcement: %v", name, v)
			events = c.forget(name)
		}
	}()
	return c.compare(name, now)
}

// compare reports what changed for one instance.
func (c *cache) compare(name string, now time.Time) []Event {
	st := c.state[name]
	v := c.view(name, now)
	if v == nil || v.srv == nil || v.txt == nil || len(v.addrs) == 0 {
		// Gone, or not resolved (yet, or any more).
		delete(c.state, name)
		if st != nil {
			return []Event{{Kind: Remove, Announcement: st.ann}}
		}
		return nil
	}
	key := fmt.Sprintf("%d|%s|%q|%v", v.srv.Port, strings.ToLower(v.srv.Target), v.txt.Txt, v.addrs)
	if st != nil && st.key == key {
		return nil
	}
	if st == nil && len(c.state) >= MaxInstances {
		return nil
	}
	a, err := ParseTXT(v.label, int(v.srv.Port), v.txt.Txt)
	if err != nil {
		a = &Announcement{Instance: v.label, Load: Unknown, FreeDisk: Unknown}
		a.Port = int(v.srv.Port)
		a.Ignored = err.Error()
		a.TrustReason = "ignored: " + err.Error()
	}
	a.Addresses = v.addrs
	a.Source = "mdns"
	if v.iface != "" {
		a.Source = "mdns:" + v.iface
	}
	a.Seen = now
	a.Name = chooseName(a)
	var events []Event
	switch {
	case err != nil:
		if st != nil && st.kind == Add {
			events = append(events, Event{Kind: Remove, Announcement: st.ann})
		}
		if st == nil || st.kind != Ignore || st.ignored != a.Ignored {
			c.warnOnce(now, "ignored "+name, "mdns: ignoring %q: %v", v.label, err)
			events = append(events, Event{Kind: Ignore, Announcement: a, Err: err})
		}
		c.state[name] = &instanceState{kind: Ignore, key: key, ann: a, ignored: a.Ignored}
	case st == nil || st.kind != Add:
		events = append(events, Event{Kind: Add, Announcement: a})
		c.state[name] = &instanceState{kind: Add, key: key, ann: a, untrusted: !c.trust(a, now)}
	default:
		events = append(events, Event{Kind: Update, Announcement: a})
		c.state[name] = &instanceState{kind: Add, key: key, ann: a, untrusted: !c.trust(a, now)}
	}
	return events
}

// trust says whether the policy accepts a (judged on a copy, so the
// event's announcement is left for the browser to judge).
func (c *cache) trust(a *Announcement, now time.Time) bool {
	if c.trusted == nil {
		return true
	}
	b := *a
	return c.trusted(&b, now)
}

// chooseName picks the address a master connects to: the first resolved
// address the announcement also signed (IPv4 first), else the first
// resolved one.
func chooseName(a *Announcement) string {
	for _, ad := range a.Addresses {
		if slices.Contains(a.SignedAddresses, ad.WithZone("")) {
			return ad.String()
		}
	}
	if len(a.Addresses) > 0 {
		return a.Addresses[0].String()
	}
	return a.Instance
}

// questions returns what to ask now: the browse question (on its
// backoff schedule, with known answers), refreshes of records at 80 %,
// 85 %, 90 % and 95 % of their TTL, and the records that instances still
// lack. The returned message is nil when there is nothing to ask.
func (c *cache) questions(now time.Time) *dns.Msg {
	m := new(dns.Msg)
	m.Id = 0
	m.RecursionDesired = false
	qs := make(map[dns.Question]bool)
	add := func(q dns.Question) {
		if !qs[q] {
			qs[q] = true
			m.Question = append(m.Question, q)
		}
	}
	browse := dns.Question{Name: c.service, Qtype: dns.TypePTR, Qclass: dns.ClassINET}
	if !now.Before(c.nextBrowse) {
		add(browse)
		if c.browseInterval == 0 {
			c.browseInterval = time.Second
		} else {
			c.browseInterval = min(2*c.browseInterval, maxQueryInterval)
		}
		c.nextBrowse = now.Add(c.browseInterval)
	}
	for _, byName := range c.records {
		for k, r := range byName {
			for r.refreshed < 4 && now.Sub(r.received) >= r.ttl*time.Duration(80+5*r.refreshed)/100 {
				r.refreshed++
				add(dns.Question{Name: k.name, Qtype: k.rtype, Qclass: dns.ClassINET})
			}
		}
	}
	for _, v := range c.views(now) {
		for _, q := range v.missing {
			st := c.asked[q]
			if now.Sub(st.at) < st.interval {
				continue
			}
			st.interval = min(max(2*st.interval, time.Second), maxQueryInterval)
			st.at = now
			c.asked[q] = st
			add(q)
		}
	}
	if len(c.asked) > 4*MaxInstances {
		clear(c.asked)
	}
	if len(m.Question) == 0 {
		return nil
	}
	// Known-answer suppression (RFC 6762 §7.1): list the records we hold
	// with more than half their TTL left, so responders need not repeat
	// them.
	for q := range qs {
		for k, r := range c.records[q.Name] {
			if k.rtype != q.Qtype {
				continue
			}
			left := r.remaining(now)
			if left <= r.ttl/2 {
				continue
			}
			rr := dns.Copy(r.rr)
			rr.Header().Ttl = uint32(left / time.Second)
			rr.Header().Class &= 0x7fff
			m.Answer = append(m.Answer, rr)
		}
	}
	return m
}

// nextWake returns when tick or questions next has work: the earliest
// expiry, refresh point or browse query.
func (c *cache) nextWake(now time.Time) time.Time {
	next := c.nextBrowse
	for _, byName := range c.records {
		for _, r := range byName {
			if r.expires.Before(next) {
				next = r.expires
			}
			if r.refreshed < 4 {
				t := r.received.Add(r.ttl * time.Duration(80+5*r.refreshed) / 100)
				if t.Before(next) {
					next = t
				}
			}
		}
	}
	for _, st := range c.asked {
		if t := st.at.Add(st.interval); t.After(now) && t.Before(next) {
			next = t
		}
	}
	if next.Before(now) {
		return now
	}
	return next
}

// current returns the announcements reported and not removed, sorted by
// instance, ignored ones included.
func (c *cache) current() []*Announcement {
	out := make([]*Announcement, 0, len(c.state))
	for _, st := range c.state {
		out = append(out, st.ann)
	}
	slices.SortFunc(out, func(a, b *Announcement) int { return strings.Compare(a.Instance, b.Instance) })
	return out
}
