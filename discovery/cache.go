package discovery

import (
	"container/heap"
	"container/list"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Bounds on what a browser keeps, so that whatever arrives from the LAN
// costs bounded memory and bounded work per packet.
const (
	// MaxInstances is how many service instances (PTR records) a browser
	// tracks.
	MaxInstances = 1024
	// maxRecords bounds the records cached in all; the byte budgets below
	// bind first for any realistic record size.
	maxRecords = 8 * MaxInstances
	maxAddrs   = 16 // per host name
	// maxPerType bounds the records of one name and type (an SRV or TXT
	// of one instance): a responder has one, and one more while it
	// changes.
	maxPerType = 4
	// maxCacheBytes is the byte budget of the whole cache; the other
	// budgets are parts of it. Records are charged their estimated size
	// in memory ([recordSize]), so the browser stays well below 64 MB
	// whatever arrives.
	maxCacheBytes = 8 << 20
	// maxOrphanBytes is the budget of records of instances that no PTR
	// names (garbage: a responder sends the PTR with them).
	maxOrphanBytes = 1 << 20
	// maxSourceBytes is the budget of the records one sender address may
	// fill, except those of machines the trust policy accepts.
	maxSourceBytes = 2 << 20
	// maxTTL caps the time to live a record is kept for: 75 minutes,
	// the longest any responder we serve uses (RFC 6762 §10: Avahi's
	// PTR and TXT records); our agents use 120 s.
	maxTTL = 4500 * time.Second
	// goodbyeDelay is how long a record announced with TTL 0 lingers
	// (RFC 6762 §10.1).
	goodbyeDelay = time.Second
	// confirmDelay is how long a goodbye for a record of a trusted
	// machine waits for the machine to answer a query for it (RFC 6762
	// §10.5) before the record goes; the query is asked at each of
	// confirmAsks after the goodbye: not at once, since a responder
	// that is leaving may still answer while it closes. Responders
	// answer within 20–120 ms (RFC 6762 §6), so a machine that really
	// left is gone as fast as after a plain goodbye.
	confirmDelay = goodbyeDelay
	// maxQueryInterval caps the backoff between browse queries
	// (RFC 6762 §5.2).
	maxQueryInterval = 60 * time.Minute
	// maxQuestions bounds the questions of one query; the rest wait for
	// the next one.
	maxQuestions = 32
)

// confirmAsks are when, after a goodbye for a record of a trusted
// machine, the machine is asked for it.
var confirmAsks = [...]time.Duration{250 * time.Millisecond, 600 * time.Millisecond}

// Ranks of an instance, in the order eviction takes them: records no
// PTR names, instances that are not usable machines (unresolved or
// malformed), machines the trust policy rejects, and accepted machines,
// which are never evicted.
const (
	rankOrphan = iota
	rankUnusable
	rankUntrusted
	rankTrusted
	nranks
)

// rrKey identifies one cached resource record: name, type and rdata.
type rrKey struct {
	name  string // lower case, fully qualified
	rtype uint16
	data  string
}

type cached struct {
	key      rrKey
	rr       dns.RR
	received time.Time
	ttl      time.Duration
	expires  time.Time
	iface    string
	src      netip.Addr
	size     int
	// refreshed counts the refresh queries sent for this record at 80,
	// 85, 90 and 95 % of its TTL.
	refreshed int
	// gen changes whenever the record's times do, so that timers set
	// for its old times are recognized as stale.
	gen     uint32
	removed bool
	// protected marks a record of a machine the trust policy accepts:
	// a goodbye for it is confirmed first, and another sender's
	// cache-flush does not expire it (flushPending notes it instead).
	protected    bool
	flushPending bool
	// confirming is when a goodbye for a protected record was heard
	// (zero: none pending); confirmAsked counts the queries sent for it
	// since.
	confirming   time.Time
	confirmAsked int
}

func (c *cached) remaining(now time.Time) time.Duration { return c.expires.Sub(now) }
func (c *cached) live(now time.Time) bool               { return c != nil && !c.removed && c.expires.After(now) }

// deadline is the next time the record needs attention: a refresh query
// or its expiry.
func (c *cached) deadline() time.Time {
	t := c.expires
	if c.refreshed < 4 {
		if r := c.received.Add(c.ttl * time.Duration(80+5*c.refreshed) / 100); r.Before(t) {
			t = r
		}
	}
	if !c.confirming.IsZero() && c.confirmAsked < len(confirmAsks) {
		if r := c.confirming.Add(confirmAsks[c.confirmAsked]); r.Before(t) {
			t = r
		}
	}
	return t
}

// recordSize estimates what keeping rr costs in memory: the record, its
// key (name and rdata as text) and the maps that index it.
func recordSize(key rrKey, rr dns.RR) int {
	n := 2*len(key.name) + len(key.data) + 256
	switch rr := rr.(type) {
	case *dns.TXT:
		for _, s := range rr.Txt {
			n += len(s) + 16
		}
	case *dns.SRV:
		n += len(rr.Target)
	case *dns.PTR:
		n += len(rr.Ptr)
	}
	return n
}

// entry is one instance name as the cache's budget sees it: what its
// records cost and how readily it is evicted.
type entry struct {
	name  string
	src   netip.Addr // the sender of its first record
	rank  int
	bytes int
	elem  *list.Element // in cache.lru[rank], least recently heard first
	// resolveAt is when a resolution of its missing records is
	// scheduled (zero: none).
	resolveAt time.Time
}

// pinned is what a machine the trust policy accepted was built from: its
// SRV and TXT records are kept over any other sender's for the same
// instance name.
type pinned struct {
	srv, txt *cached
	others   []*cached // PTR and address records, protected too
}

func (p *pinned) live(now time.Time) bool { return p != nil && p.srv.live(now) && p.txt.live(now) }

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
	// pin, for an accepted machine judged by a policy, holds the
	// records it was built from.
	pin *pinned
}

func (st *instanceState) accepted() bool { return st != nil && st.kind == Add && !st.untrusted }

// timer is a point at which a record (expiry, refresh, confirmation) or
// an instance (resolution of what it lacks) needs attention.
type timer struct {
	at   time.Time
	r    *cached // a record, or nil for
	gen  uint32
	name string // the instance to resolve
}

type timers []timer

func (h timers) Len() int           { return len(h) }
func (h timers) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timers) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timers) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timers) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// cache is a multicast DNS record cache for one service type with its
// own clock: it takes packets (handle), and on every tick reports what
// changed as events and which questions to ask. The work one packet
// costs does not grow with the number of instances cached: timers sit
// in a heap, eviction candidates in lists by rank. It is not safe for
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
	// entries holds the budget of each instance name with records
	// (SRV, TXT or a PTR naming it).
	entries map[string]*entry
	lru     [nranks]*list.List
	// bytes is what all records cost; rankBytes and srcBytes split it by
	// rank of the instance and by sender.
	bytes     int
	rankBytes [nranks]int
	srcBytes  map[netip.Addr]int
	// dirty holds the instances whose records changed since the last
	// tick.
	dirty  map[string]bool
	timers timers
	state  map[string]*instanceState // by lower-case instance name
	// impostors holds, by instance name, what another sender announces
	// under the name of an accepted machine, listed apart.
	impostors map[string]*instanceState
	// evicted holds the Remove events of instances evicted since the
	// last tick.
	evicted []Event

	// Browse query schedule.
	nextBrowse     time.Time
	browseInterval time.Duration
	// Last time each question was asked, to rate-limit resolution.
	asked map[dns.Question]askState
	// pending holds questions due and not asked yet, in order.
	pending    []dns.Question
	pendingSet map[dns.Question]bool

	// trusted, when set, is the trust policy's verdict on an
	// announcement. It decides which instances [cache.evict] drops
	// first, and protects accepted machines from goodbyes and
	// announcements sent by others (nil: every well-formed one counts as
	// trusted, and none is protected).
	trusted func(a *Announcement, now time.Time) (bool, string)

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

func newCache(domain, service string, warn func(string, ...any)) *cache {
	if service == "" {
		service = ServiceType
	}
	if warn == nil {
		warn = func(string, ...any) {}
	}
	c := &cache{
		service:    dns.Fqdn(strings.ToLower(service + "." + domain)),
		records:    make(map[string]map[rrKey]*cached),
		targets:    make(map[string]map[string]bool),
		ptrs:       make(map[string]rrKey),
		entries:    make(map[string]*entry),
		srcBytes:   make(map[netip.Addr]int),
		dirty:      make(map[string]bool),
		state:      make(map[string]*instanceState),
		impostors:  make(map[string]*instanceState),
		asked:      make(map[dns.Question]askState),
		pendingSet: make(map[dns.Question]bool),
		warn:       warn,
		warnedAt:   make(map[string]time.Time),
	}
	for i := range c.lru {
		c.lru[i] = list.New()
	}
	return c
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

// receive decodes one received packet, sent from src, and files it (see
// [cache.handle]). A panic while doing so is logged as a warning (the
// panic value, no stack) and the packet dropped: packets come from
// anyone on the LAN, and no packet may end the browser, or the hook that
// waits for it.
func (c *cache) receive(data []byte, iface string, src netip.Addr, now time.Time) error {
	msg := new(dns.Msg)
	var err error
	c.guard(now, "handling a packet (dropped it)", func() {
		if err = msg.Unpack(data); err != nil {
			return
		}
		if c.fault != nil {
			c.fault(msg)
		}
		c.handleFrom(msg, iface, src, now)
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

// handleFrom takes a received response sent from src. Queries (ours and
// others') are ignored. Records unrelated to the service type are not
// kept.
func (c *cache) handleFrom(m *dns.Msg, iface string, src netip.Addr, now time.Time) {
	if !m.Response || m.Opcode != dns.OpcodeQuery || m.Rcode != dns.RcodeSuccess {
		return
	}
	src = src.Unmap().WithZone("")
	rrs := make([]dns.RR, 0, len(m.Answer)+len(m.Extra))
	rrs = append(rrs, m.Answer...)
	rrs = append(rrs, m.Ns...)
	rrs = append(rrs, m.Extra...)
	// Three passes: PTR records first, so the SRV and TXT records of an
	// instance named in the same packet are not taken for orphans; then
	// those, so the address records of a target named in the same packet
	// are recognized as wanted.
	for _, rr := range rrs {
		if rr, ok := rr.(*dns.PTR); ok && strings.EqualFold(rr.Hdr.Name, c.service) && isInstanceOf(rr.Ptr, c.service) {
			c.put(rr, iface, src, now)
		}
	}
	for _, rr := range rrs {
		switch rr.(type) {
		case *dns.SRV, *dns.TXT:
			if isInstanceOf(rr.Header().Name, c.service) {
				c.put(rr, iface, src, now)
			}
		}
	}
	for _, rr := range rrs {
		switch rr.(type) {
		case *dns.A, *dns.AAAA:
			if c.isTarget(rr.Header().Name) {
				c.put(rr, iface, src, now)
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

// owner returns the instance name a record is charged to: its own name
// for SRV and TXT, the instance it names for a PTR, "" for an address
// record (charged to the cache as a whole, bounded per host).
func owner(k rrKey, rr dns.RR) string {
	switch rr := rr.(type) {
	case *dns.PTR:
		return strings.ToLower(dns.Fqdn(rr.Ptr))
	case *dns.SRV, *dns.TXT:
		return k.name
	}
	return ""
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

// setRank moves e to rank, accounting its bytes there.
func (c *cache) setRank(e *entry, rank int) {
	if e.rank == rank && e.elem != nil {
		return
	}
	if e.elem != nil {
		c.lru[e.rank].Remove(e.elem)
		c.rankBytes[e.rank] -= e.bytes
	}
	e.rank = rank
	e.elem = c.lru[rank].PushBack(e)
	c.rankBytes[rank] += e.bytes
}

// heard moves e to the most recently heard end of its rank.
func (c *cache) heard(e *entry) {
	if e.elem != nil {
		c.lru[e.rank].MoveToBack(e.elem)
	}
}

// rankOf returns the rank the instance name deserves now.
func (c *cache) rankOf(name string) int {
	st := c.state[name]
	switch {
	case st != nil && st.kind == Add && !st.untrusted:
		return rankTrusted
	case st != nil && st.kind == Add:
		return rankUntrusted
	case c.hasPTR(name):
		return rankUnusable
	}
	return rankOrphan
}

func (c *cache) hasPTR(name string) bool {
	_, ok := c.ptrs[name]
	return ok
}

// rerank puts the entry of name, if any, at the rank it deserves.
func (c *cache) rerank(name string) {
	if e := c.entries[name]; e != nil {
		c.setRank(e, c.rankOf(name))
	}
}

// charge adds n bytes of a record from src to the budget of the instance
// name ("" for none).
func (c *cache) charge(name string, src netip.Addr, n int) {
	c.bytes += n
	c.srcBytes[src] += n
	if c.srcBytes[src] == 0 {
		delete(c.srcBytes, src)
	}
	if name == "" {
		return
	}
	e := c.entries[name]
	if e == nil {
		e = &entry{name: name, src: src}
		c.entries[name] = e
		c.setRank(e, c.rankOf(name))
	}
	e.bytes += n
	c.rankBytes[e.rank] += n
	if e.bytes == 0 {
		c.lru[e.rank].Remove(e.elem)
		delete(c.entries, name)
	}
}

// remove drops one record.
func (c *cache) remove(k rrKey) {
	byName := c.records[k.name]
	r, ok := byName[k]
	if !ok {
		return
	}
	r.removed = true
	delete(byName, k)
	if len(byName) == 0 {
		delete(c.records, k.name)
	}
	c.nrecords--
	c.charge(owner(k, r.rr), r.src, -r.size)
	c.touch(k.name, r.rr)
	if ptr, ok := r.rr.(*dns.PTR); ok {
		name := strings.ToLower(dns.Fqdn(ptr.Ptr))
		if c.ptrs[name] == k {
			delete(c.ptrs, name)
			c.rerank(name)
		}
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

// schedule sets a timer for r's next deadline.
func (c *cache) schedule(r *cached) {
	r.gen++
	heap.Push(&c.timers, timer{at: r.deadline(), r: r, gen: r.gen})
	// Superseded timers are dropped when they come up; should they pile
	// up (records refreshed again and again), the heap is rebuilt.
	if len(c.timers) > 4*c.nrecords+4*len(c.entries)+64 {
		c.rebuildTimers()
	}
}

func (c *cache) rebuildTimers() {
	live := c.timers[:0]
	for _, t := range c.timers {
		if t.r != nil && !t.r.removed && t.gen == t.r.gen {
			live = append(live, t)
		} else if t.r == nil {
			if e := c.entries[t.name]; e != nil && e.resolveAt.Equal(t.at) {
				live = append(live, t)
			}
		}
	}
	c.timers = live
	heap.Init(&c.timers)
}

// expireAt makes r expire at t (if sooner) and not be refreshed.
func (c *cache) expireAt(r *cached, t time.Time) {
	if r.expires.After(t) {
		r.expires = t
	}
	r.refreshed = 4
	c.schedule(r)
}

func (c *cache) put(rr dns.RR, iface string, src netip.Addr, now time.Time) {
	h := rr.Header()
	// The top bit of the class is mDNS's cache-flush bit (RFC 6762 §10.2).
	// A PTR record of the service is shared (every machine has one), so
	// the bit means nothing there; heeding it would also make one record
	// cost a pass over every instance.
	flush := h.Class&0x8000 != 0 && h.Rrtype != dns.TypePTR
	if h.Class&0x7fff != dns.ClassINET {
		return
	}
	name := strings.ToLower(dns.Fqdn(h.Name))
	key := rrKey{name: name, rtype: h.Rrtype, data: rdata(rr)}
	if h.Rrtype == dns.TypePTR {
		// Names compare without case: one PTR per instance.
		key.data = strings.ToLower(key.data)
	}
	ttl := min(time.Duration(h.Ttl)*time.Second, maxTTL)
	if flush && h.Ttl != 0 {
		// Records of this name and type received more than a second ago
		// are stale: they expire in a second. Those of an accepted
		// machine stay until the machine is judged again (compare): the
		// sender may be anyone.
		for k, r := range c.records[name] {
			if k.rtype == h.Rrtype && k != key && now.Sub(r.received) > time.Second && r.expires.After(now.Add(goodbyeDelay)) {
				if r.protected && c.trusted != nil {
					r.flushPending = true
					c.touch(name, rr)
					continue
				}
				c.expireAt(r, now.Add(goodbyeDelay))
			}
		}
	}
	if h.Ttl == 0 {
		r, ok := c.records[name][key]
		if !ok {
			return
		}
		if r.protected && c.trusted != nil {
			// A goodbye for an accepted machine may be forged by anyone:
			// ask the machine, which answers unless it left (RFC 6762
			// §10.5).
			if r.confirming.IsZero() {
				r.confirming = now
				c.expireAt(r, now.Add(confirmDelay))
			}
			return
		}
		c.expireAt(r, now.Add(goodbyeDelay))
		return
	}
	o := owner(key, rr)
	if r, ok := c.records[name][key]; ok {
		r.rr, r.received, r.ttl, r.expires, r.iface, r.refreshed = rr, now, ttl, now.Add(ttl), iface, 0
		r.confirming, r.confirmAsked, r.flushPending = time.Time{}, 0, false
		c.schedule(r)
		c.touch(name, rr)
		if e := c.entries[o]; e != nil {
			c.heard(e)
		}
		return
	}
	size := recordSize(key, rr)
	if !c.makeRoom(name, o, h.Rrtype, src, size, now) {
		return
	}
	if c.records[name] == nil {
		c.records[name] = make(map[rrKey]*cached)
	}
	r := &cached{key: key, rr: rr, received: now, ttl: ttl, expires: now.Add(ttl), iface: iface, src: src, size: size}
	c.records[name][key] = r
	c.nrecords++
	if ptr, ok := rr.(*dns.PTR); ok {
		inst := strings.ToLower(dns.Fqdn(ptr.Ptr))
		c.ptrs[inst] = key
	}
	c.charge(o, src, size)
	if o != "" {
		c.rerank(o)
		c.heard(c.entries[o])
	}
	if srv, ok := rr.(*dns.SRV); ok {
		target := strings.ToLower(dns.Fqdn(srv.Target))
		if c.targets[target] == nil {
			c.targets[target] = make(map[string]bool)
		}
		c.targets[target][name] = true
	}
	c.schedule(r)
	c.touch(name, rr)
}

// makeRoom decides whether a new record of name and type, charged to the
// instance o, costing size bytes and sent from src, may be cached, and
// evicts what must go for it: the least recently heard records of
// instances that no PTR names first, then instances that are not usable
// machines, then ones the trust policy rejects; never an accepted
// machine. Records of instances no PTR names only ever displace their
// like, and one sender fills at most its share, unless the record is an
// accepted machine's.
func (c *cache) makeRoom(name, o string, rtype uint16, src netip.Addr, size int, now time.Time) bool {
	rank := rankUnusable
	if o != "" {
		rank = c.rankOf(o)
	}
	if rtype == dns.TypePTR {
		rank = max(rank, rankUnusable) // no orphan once it is cached
	}
	// What must not be evicted for this record: its instance, or for an
	// address record the instances whose SRV names the host.
	keep := map[string]bool{o: true}
	if o == "" {
		keep = c.targets[name]
		for inst := range keep {
			rank = max(rank, c.rankOf(inst))
		}
	}
	switch rtype {
	case dns.TypeA, dns.TypeAAAA:
		if c.count(name, dns.TypeA, dns.TypeAAAA) >= maxAddrs {
			c.warnOnce(now, "addrs "+name, "mdns: more than %d addresses for %s; ignoring new ones", maxAddrs, name)
			return false
		}
	case dns.TypeSRV, dns.TypeTXT:
		if c.count(name, rtype) >= maxPerType {
			// Drop the oldest unprotected one of this name and type.
			var oldest *cached
			for k, r := range c.records[name] {
				if k.rtype == rtype && !r.protected && (oldest == nil || r.received.Before(oldest.received)) {
					oldest = r
				}
			}
			if oldest == nil {
				return false
			}
			c.remove(oldest.key)
		}
	case dns.TypePTR:
		for len(c.ptrs) >= MaxInstances {
			if !c.evict(now, rankUnusable, rankUntrusted, "instances", keep) {
				c.warnOnce(now, "instances", "mdns: more than %d instances of %s; ignoring new ones (a flood?)", MaxInstances, c.service)
				return false
			}
		}
	}
	if rank != rankTrusted {
		// A sender over its share makes room among its own records
		// (its address may be forged: refusing would let a forger keep
		// a new machine out).
		limit := rankUntrusted
		if rank == rankOrphan {
			limit = rankOrphan
		}
		for c.srcBytes[src]+size > maxSourceBytes {
			if !c.evictFrom(now, src, limit, keep) {
				c.warnOnce(now, "source "+src.String(), "mdns: %s sent more than %d bytes of records for %s; ignoring new ones from it (a flood?)",
					srcName(src), maxSourceBytes, c.service)
				return false
			}
		}
	}
	if rank == rankOrphan {
		for c.rankBytes[rankOrphan]+size > maxOrphanBytes {
			if !c.evict(now, rankOrphan, rankOrphan, "orphans", keep) {
				return false
			}
		}
	}
	for c.bytes+size > maxCacheBytes || c.nrecords >= maxRecords {
		limit := rankUntrusted
		if rank == rankOrphan {
			limit = rankOrphan
		}
		if !c.evict(now, rankOrphan, limit, "bytes", keep) {
			c.warnOnce(now, "records", "mdns: the record cache for %s is full of machines the trust policy accepts; ignoring new records", c.service)
			return false
		}
	}
	return true
}

func srcName(src netip.Addr) string {
	if !src.IsValid() {
		return "a sender"
	}
	return src.String()
}

// evict drops the least recently heard instance of the lowest rank from
// from to limit, other than keep, and reports whether it dropped one.
func (c *cache) evict(now time.Time, from, limit int, why string, keep map[string]bool) bool {
	for rank := from; rank <= limit; rank++ {
		for el := c.lru[rank].Front(); el != nil; el = el.Next() {
			e := el.Value.(*entry)
			if keep[e.name] {
				continue
			}
			c.warnOnce(now, "evict "+why, "mdns: too many records for %s; dropping those of unusable or untrusted instances (a flood?)", c.service)
			// Forget what was reported now, not at the next tick: the
			// room must be free for the newcomer.
			c.evicted = append(c.evicted, c.forget(e.name)...)
			return true
		}
	}
	return false
}

// evictFrom drops the least recently heard instance first heard from
// src, of rank up to limit, other than those in keep, looking at the oldest few
// of each rank only (a sender over its share has many there), and
// reports whether it dropped one.
func (c *cache) evictFrom(now time.Time, src netip.Addr, limit int, keep map[string]bool) bool {
	for rank := rankOrphan; rank <= limit; rank++ {
		n := 0
		for el := c.lru[rank].Front(); el != nil && n < 64; el, n = el.Next(), n+1 {
			e := el.Value.(*entry)
			if e.src != src || keep[e.name] {
				continue
			}
			c.warnOnce(now, "evict source "+src.String(), "mdns: %s sent more than %d bytes of records for %s; dropping its oldest unusable or untrusted ones (a flood?)",
				srcName(src), maxSourceBytes, c.service)
			c.evicted = append(c.evicted, c.forget(e.name)...)
			return true
		}
	}
	return false
}

// forget drops the instance name (lower case) and its records, and the
// addresses of its host unless another instance's SRV names that host.
// It returns the Remove events owed when the instance was reported.
func (c *cache) forget(victim string) []Event {
	var events []Event
	if st := c.state[victim]; st != nil {
		events = append(events, Event{Kind: Remove, Announcement: st.ann})
		delete(c.state, victim)
	}
	if st := c.impostors[victim]; st != nil {
		events = append(events, Event{Kind: Remove, Announcement: st.ann})
		delete(c.impostors, victim)
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
	if e := c.entries[victim]; e != nil {
		// Not expected (its records are gone), but an entry left in the
		// lists would be evicted again and again.
		c.lru[e.rank].Remove(e.elem)
		c.rankBytes[e.rank] -= e.bytes
		delete(c.entries, victim)
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

// run handles the timers due at now: expired records are removed,
// refresh and confirmation queries and resolutions are queued.
func (c *cache) run(now time.Time) {
	for len(c.timers) > 0 && !c.timers[0].at.After(now) {
		t := heap.Pop(&c.timers).(timer)
		if t.r == nil {
			c.resolve(t.name, t.at, now)
			continue
		}
		r := t.r
		if r.removed || t.gen != r.gen {
			continue
		}
		if !r.expires.After(now) {
			c.remove(r.key)
			continue
		}
		for r.refreshed < 4 && now.Sub(r.received) >= r.ttl*time.Duration(80+5*r.refreshed)/100 {
			r.refreshed++
			c.ask(dns.Question{Name: r.key.name, Qtype: r.key.rtype, Qclass: dns.ClassINET})
		}
		if !r.confirming.IsZero() && r.confirmAsked < len(confirmAsks) && now.Sub(r.confirming) >= confirmAsks[r.confirmAsked] {
			c.ask(dns.Question{Name: r.key.name, Qtype: r.key.rtype, Qclass: dns.ClassINET})
			r.confirmAsked++
		}
		c.schedule(r)
	}
}

// ask queues q for the next query.
func (c *cache) ask(q dns.Question) {
	if !c.pendingSet[q] {
		c.pendingSet[q] = true
		c.pending = append(c.pending, q)
	}
}

// wantResolve schedules a resolution of what the instance name lacks.
func (c *cache) wantResolve(name string, at time.Time) {
	e := c.entries[name]
	if e == nil || !e.resolveAt.IsZero() && !e.resolveAt.After(at) {
		return
	}
	e.resolveAt = at
	heap.Push(&c.timers, timer{at: at, name: name})
}

// resolve queues questions for what the instance name still lacks, each
// on its own backoff, and schedules the next resolution.
func (c *cache) resolve(name string, at, now time.Time) {
	e := c.entries[name]
	if e == nil || !e.resolveAt.Equal(at) {
		return // superseded
	}
	e.resolveAt = time.Time{}
	v := c.view(name, now, nil)
	if v == nil || len(v.missing) == 0 {
		return
	}
	var next time.Time
	for _, q := range v.missing {
		st := c.asked[q]
		if now.Sub(st.at) >= st.interval {
			st.interval = min(max(2*st.interval, time.Second), maxQueryInterval)
			st.at = now
			c.asked[q] = st
			c.ask(q)
		}
		if t := st.at.Add(st.interval); next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if len(c.asked) > 4*MaxInstances {
		clear(c.asked)
	}
	c.wantResolve(name, next)
}

// view is one instance as the cache sees it now.
type view struct {
	name    string // lower-case full instance name
	label   string // the instance label, unescaped
	ptr     *cached
	srv     *cached
	txt     *cached
	addrs   []netip.Addr
	addrRRs []*cached
	iface   string
	missing []dns.Question
}

// uses reports whether v was built from p's SRV and TXT records.
func (v *view) uses(p *pinned) bool { return p != nil && v.srv == p.srv && v.txt == p.txt }

// view returns the instance of that name, built from the most recent
// SRV and TXT records or, when p is not nil, from p's; nil when no live
// PTR record names it.
func (c *cache) view(name string, now time.Time, p *pinned) *view {
	ptr := c.records[c.service][c.ptrs[name]]
	if ptr == nil || !ptr.expires.After(now) {
		return nil
	}
	v := &view{name: name, label: instanceLabel(ptr.rr.(*dns.PTR).Ptr, c.service), iface: ptr.iface, ptr: ptr}
	if p != nil {
		v.srv, v.txt = p.srv, p.txt
	} else {
		v.srv = c.latest(name, dns.TypeSRV, now)
		v.txt = c.latest(name, dns.TypeTXT, now)
	}
	if v.srv == nil {
		v.missing = append(v.missing, dns.Question{Name: name, Qtype: dns.TypeSRV, Qclass: dns.ClassINET})
	}
	if v.txt == nil {
		v.missing = append(v.missing, dns.Question{Name: name, Qtype: dns.TypeTXT, Qclass: dns.ClassINET})
	}
	if v.srv == nil {
		return v
	}
	host := strings.ToLower(dns.Fqdn(v.srv.rr.(*dns.SRV).Target))
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
			v.addrRRs = append(v.addrRRs, a)
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

// complete reports whether v is a whole announcement.
func (v *view) complete() bool {
	return v != nil && v.srv != nil && v.txt != nil && len(v.addrs) > 0
}

// key identifies what v says, to detect changes.
func (v *view) key() string {
	srv := v.srv.rr.(*dns.SRV)
	return fmt.Sprintf("%d|%s|%q|%v", srv.Port, strings.ToLower(srv.Target), v.txt.rr.(*dns.TXT).Txt, v.addrs)
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
// last reported, and returns the events in order. Its work is in
// proportion to what changed, not to what is cached.
func (c *cache) tick(now time.Time) []Event {
	c.run(now)
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
		c.rerank(name)
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

// announcement decodes the complete view v, at now.
func (c *cache) announcement(v *view, now time.Time) (*Announcement, error) {
	srv := v.srv.rr.(*dns.SRV)
	a, err := ParseTXT(v.label, int(srv.Port), v.txt.rr.(*dns.TXT).Txt)
	if err != nil {
		a = &Announcement{Instance: v.label, Load: Unknown, FreeDisk: Unknown}
		a.Port = int(srv.Port)
		a.Ignored = err.Error()
		a.TrustReason = "ignored: " + err.Error()
		a.raw = v.txt.rr.(*dns.TXT).Txt
	}
	a.Addresses = v.addrs
	a.Source = "mdns"
	if v.iface != "" {
		a.Source = "mdns:" + v.iface
	}
	a.Seen = now
	a.Name = chooseName(a)
	return a, err
}

// compare reports what changed for one instance.
func (c *cache) compare(name string, now time.Time) []Event {
	st := c.state[name]
	v := c.view(name, now, nil)
	if !v.complete() {
		if v == nil {
			c.unpin(st)
		} else {
			c.wantResolve(name, now)
		}
		// Gone, or not resolved (yet, or any more).
		events := c.dropImpostor(name)
		delete(c.state, name)
		if st != nil {
			return append(events, Event{Kind: Remove, Announcement: st.ann})
		}
		return events
	}
	var events []Event
	shadowed := false
	if c.trusted != nil && st.accepted() && st.pin.live(now) && !v.uses(st.pin) {
		// Something else is announced under the name of an accepted
		// machine: the machine's update, or another sender's impostor.
		a, err := c.announcement(v, now)
		ok, reason := false, ""
		if err == nil {
			ok, reason = c.judge(a, now)
		} else {
			reason = "ignored: " + err.Error()
		}
		if !ok {
			if pv := c.view(name, now, st.pin); pv.complete() {
				events, shadowed = c.impostor(name, v, a, reason), true
				v = pv
			}
		}
	}
	if !shadowed {
		events = c.dropImpostor(name)
	}
	key := v.key()
	if st != nil && st.key == key {
		c.settle(st, v, now)
		return events
	}
	if st == nil && len(c.state) >= MaxInstances {
		return events
	}
	a, err := c.announcement(v, now)
	switch {
	case err != nil:
		if st != nil && st.kind == Add {
			events = append(events, Event{Kind: Remove, Announcement: st.ann})
		}
		if st == nil || st.kind != Ignore || st.ignored != a.Ignored {
			c.warnOnce(now, "ignored "+name, "mdns: ignoring %q: %v", v.label, err)
			events = append(events, Event{Kind: Ignore, Announcement: a, Err: err})
		}
		c.unpin(st)
		c.state[name] = &instanceState{kind: Ignore, key: key, ann: a, ignored: a.Ignored}
	default:
		kind := Update
		if st == nil || st.kind != Add {
			kind = Add
		}
		ok, _ := c.judge(a, now)
		events = append(events, Event{Kind: kind, Announcement: a})
		next := &instanceState{kind: Add, key: key, ann: a, untrusted: !ok}
		if st != nil {
			next.pin = st.pin
		}
		c.state[name] = next
		c.settle(next, v, now)
	}
	return events
}

// judge says whether the policy accepts a, and why (judged on a copy, so
// the event's announcement is left for the browser to judge).
func (c *cache) judge(a *Announcement, now time.Time) (bool, string) {
	if c.trusted == nil {
		return true, ""
	}
	b := *a
	return c.trusted(&b, now)
}

// settle pins the records of the accepted machine st, built from v, and
// lets the cache-flushes that waited for its judgment happen; for a
// machine not accepted, it unpins.
func (c *cache) settle(st *instanceState, v *view, now time.Time) {
	if c.trusted == nil || !st.accepted() {
		c.unpin(st)
		return
	}
	if st.pin == nil || !v.uses(st.pin) {
		c.unpin(st)
		st.pin = &pinned{srv: v.srv, txt: v.txt, others: append([]*cached{v.ptr}, v.addrRRs...)}
		// Records of the name that another sender's cache-flush would
		// have expired go now that the machine's own are known.
		for _, r := range c.records[v.name] {
			if r.flushPending && r != v.srv && r != v.txt {
				r.flushPending = false
				c.expireAt(r, now.Add(goodbyeDelay))
			}
		}
	} else {
		st.pin.others = append(st.pin.others[:0], v.ptr)
		st.pin.others = append(st.pin.others, v.addrRRs...)
	}
	for _, r := range append([]*cached{st.pin.srv, st.pin.txt}, st.pin.others...) {
		r.protected = true
	}
}

func (c *cache) unpin(st *instanceState) {
	if st == nil || st.pin == nil {
		return
	}
	for _, r := range append([]*cached{st.pin.srv, st.pin.txt}, st.pin.others...) {
		r.protected, r.flushPending = false, false
	}
	st.pin = nil
}

// impostor reports what another sender announces under the name of an
// accepted machine (v, decoded as a), listed apart and never trusted.
func (c *cache) impostor(name string, v *view, a *Announcement, reason string) []Event {
	key := v.key()
	old := c.impostors[name]
	if old != nil && old.key == key {
		return nil
	}
	a.Impostor = true
	a.TrustReason = ImpostorReason + ": " + reason
	c.warnOnce(a.Seen, "impostor "+name, "mdns: an announcement of %q that the trust policy rejects (%s) is not taken for the machine it names", v.label, reason)
	c.impostors[name] = &instanceState{kind: Add, key: key, ann: a, untrusted: true}
	if old == nil {
		return []Event{{Kind: Add, Announcement: a}}
	}
	return []Event{{Kind: Update, Announcement: a}}
}

// ImpostorReason begins the trust reason of an announcement that claims
// the instance name of a machine the trust policy accepts.
const ImpostorReason = "impostor: claims the name of a trusted machine"

func (c *cache) dropImpostor(name string) []Event {
	st := c.impostors[name]
	if st == nil {
		return nil
	}
	delete(c.impostors, name)
	return []Event{{Kind: Remove, Announcement: st.ann}}
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
// 85 %, 90 % and 95 % of their TTL, confirmations of goodbyes, and the
// records that instances still lack. The returned message is nil when
// there is nothing to ask. At most [maxQuestions] go in one message; the
// rest wait for the next.
func (c *cache) questions(now time.Time) *dns.Msg {
	c.run(now)
	m := new(dns.Msg)
	m.Id = 0
	m.RecursionDesired = false
	browse := dns.Question{Name: c.service, Qtype: dns.TypePTR, Qclass: dns.ClassINET}
	if !now.Before(c.nextBrowse) {
		m.Question = append(m.Question, browse)
		if c.browseInterval == 0 {
			c.browseInterval = time.Second
		} else {
			c.browseInterval = min(2*c.browseInterval, maxQueryInterval)
		}
		c.nextBrowse = now.Add(c.browseInterval)
	}
	n := 0
	for _, q := range c.pending {
		if len(m.Question) >= maxQuestions {
			break
		}
		n++
		delete(c.pendingSet, q)
		if q != browse || len(m.Question) == 0 || m.Question[0] != browse {
			m.Question = append(m.Question, q)
		}
	}
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
	}
	if len(m.Question) == 0 {
		return nil
	}
	// Known-answer suppression (RFC 6762 §7.1): list the records we hold
	// with more than half their TTL left, so responders need not repeat
	// them; as many as fit in the packet.
	size := 12
	for _, q := range m.Question {
		size += len(q.Name) + 6
	}
	for _, q := range m.Question {
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
			l := dns.Len(rr)
			if size+l > maxPacket {
				break
			}
			size += l
			m.Answer = append(m.Answer, rr)
		}
	}
	return m
}

// nextWake returns when tick or questions next has work: the earliest
// timer, browse query, or now when questions wait.
func (c *cache) nextWake(now time.Time) time.Time {
	if len(c.pending) > 0 {
		return now
	}
	next := c.nextBrowse
	if len(c.timers) > 0 && c.timers[0].at.Before(next) {
		next = c.timers[0].at
	}
	if next.Before(now) {
		return now
	}
	return next
}
