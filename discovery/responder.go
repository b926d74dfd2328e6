package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ResponderConfig describes the one service instance a [Responder]
// advertises.
type ResponderConfig struct {
	// Service is the service type ("_guix-offload._tcp"); empty means
	// [ServiceType].
	Service string
	// Instance is the instance name ("builder1").
	Instance string
	// Host is the SRV target, fully qualified ("builder1-guix-offload.local.").
	Host string
	// Port is the SRV port.
	Port int
	// TXT is the TXT record; [Responder.SetText] replaces it.
	TXT []string
	// Addrs are the host's addresses (A and AAAA records).
	Addrs []netip.Addr
	// Interfaces are where to advertise and answer.
	Interfaces []net.Interface
	// TTL is the records' time to live in seconds; 0 means 120.
	TTL uint32
	// Logger receives warnings (another host claiming the names); nil
	// discards them.
	Logger *slog.Logger
}

// Responder is a multicast DNS responder (RFC 6762) for one DNS-SD
// service instance (of [ServiceType] unless told otherwise): it probes
// for its names, announces its records, answers queries for them (the
// service, the instance, the host's addresses, and the service type
// enumeration), announces a new TXT record when [Responder.SetText]
// replaces it, and says goodbye on [Responder.Shutdown]. It shares port 5353 and the socket code with the
// browser ([MDNS]). It is safe for concurrent use.
type Responder struct {
	service, instance, host, enum string // fully qualified, lower case for matching
	serviceName, instanceName     string // as given, fully qualified
	hostName                      string
	port                          uint16
	addrs                         []netip.Addr
	ttl                           uint32
	log                           *slog.Logger
	ifaces                        map[int]net.Interface
	conns                         []*mdnsConn

	mu       sync.Mutex
	txt      []string
	answered map[answerKey]time.Time // last multicast answer per question and interface
	stopped  bool

	textChanged chan struct{}
	announced   chan struct{} // closed at the first announcement
	cancel      context.CancelFunc
	loopDone    chan struct{}
	readers     sync.WaitGroup
	shutdown    sync.Once
}

type answerKey struct {
	q     dns.Question
	index int
}

// How a responder paces what it sends: probes 250 ms apart (RFC 6762
// §8.1), announcements at these delays after probing (§8.3: at least
// two, one second apart), and at most one multicast answer to the same
// question on an interface in minAnswerGap (§6 allows a quarter second
// when defending; the rest of the time we answer a little more eagerly
// than its one second, so that a browser confirming a goodbye (§10.5)
// gets its answer).
const (
	probeInterval = 250 * time.Millisecond
	minAnswerGap  = 250 * time.Millisecond
	legacyTTL     = 10 // RFC 6762 §6.7
)

var announceDelays = []time.Duration{0, time.Second, 3 * time.Second}

// Respond starts a responder for cfg: it listens on port 5353 of the
// interfaces, probes, announces and answers, in the background, until
// [Responder.Shutdown].
func Respond(cfg ResponderConfig) (*Responder, error) {
	r, err := newResponder(cfg)
	if err != nil {
		return nil, err
	}
	return r.start(cfg.Interfaces)
}

// newResponder builds the responder for cfg, without sockets.
func newResponder(cfg ResponderConfig) (*Responder, error) {
	if cfg.Instance == "" || cfg.Host == "" || len(cfg.Interfaces) == 0 {
		return nil, errors.New("respond: instance, host and interfaces are required")
	}
	typ := cfg.Service
	if typ == "" {
		typ = ServiceType
	}
	service := dns.Fqdn(typ + ".local.")
	r := &Responder{
		serviceName:  service,
		service:      strings.ToLower(service),
		instanceName: escapeLabel(cfg.Instance) + "." + service,
		hostName:     dns.Fqdn(cfg.Host),
		enum:         "_services._dns-sd._udp.local.",
		port:         uint16(cfg.Port),
		addrs:        cfg.Addrs,
		ttl:          cfg.TTL,
		log:          cfg.Logger,
		ifaces:       make(map[int]net.Interface),
		txt:          slices.Clone(cfg.TXT),
		answered:     make(map[answerKey]time.Time),
		textChanged:  make(chan struct{}, 1),
		announced:    make(chan struct{}),
		loopDone:     make(chan struct{}),
	}
	r.instance, r.host = strings.ToLower(r.instanceName), strings.ToLower(r.hostName)
	if r.ttl == 0 {
		r.ttl = 120
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// start opens the sockets, joins the interfaces and starts answering.
func (r *Responder) start(ifis []net.Interface) (*Responder, error) {
	v4, err4 := listen4("0.0.0.0:5353")
	v6, err6 := listen6("[::]:5353")
	for _, mc := range []*mdnsConn{v4, v6} {
		if mc != nil {
			r.conns = append(r.conns, mc)
		}
	}
	if len(r.conns) == 0 {
		return nil, fmt.Errorf("listen on the multicast DNS port: %w", errors.Join(err4, err6))
	}
	joined := false
	var errs []error
	for _, ifi := range ifis {
		r.ifaces[ifi.Index] = ifi
		for _, mc := range r.conns {
			if err := mc.join(&ifi); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ifi.Name, err))
			} else {
				joined = true
			}
		}
	}
	if !joined {
		r.close()
		return nil, fmt.Errorf("join the multicast DNS group: %w", errors.Join(errs...))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	packets := make(chan packet, 64)
	for _, mc := range r.conns {
		r.readers.Add(1)
		go func() {
			defer r.readers.Done()
			mc.read(ctx, packets, func(v any) {
				r.log.Warn(fmt.Sprintf("mdns responder: dropped a packet: internal error reading it: %v", v))
			})
		}()
	}
	go r.loop(ctx, packets)
	return r, nil
}

// escapeLabel writes an instance name as one DNS label.
func escapeLabel(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '.' || ch == '\\' || ch == ' ' || ch == '(' || ch == ')' || ch == ';' || ch == '"' || ch == '@' || ch == '$':
			b.WriteByte('\\')
			b.WriteByte(ch)
		case ch < 0x21 || ch > 0x7e:
			fmt.Fprintf(&b, "\\%03d", ch)
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// Announced is closed once the records were announced the first time,
// after probing (about a second after [Respond]): from then on a
// browser on the link that looks finds the service at once.
func (r *Responder) Announced() <-chan struct{} { return r.announced }

// SetText replaces the TXT record and announces the new one, with the
// cache-flush bit, so browsers replace the old one.
func (r *Responder) SetText(txt []string) {
	r.mu.Lock()
	r.txt = slices.Clone(txt)
	r.mu.Unlock()
	select {
	case r.textChanged <- struct{}{}:
	default:
	}
}

// Shutdown stops answering, sends a goodbye (TTL 0) for every record
// and closes the sockets. It returns when the goodbye is sent and is
// safe to call twice.
func (r *Responder) Shutdown() {
	r.shutdown.Do(func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		r.cancel()
		<-r.loopDone
		r.announce(0)
		r.close()
		r.readers.Wait()
	})
}

func (r *Responder) close() {
	for _, mc := range r.conns {
		mc.closer.Close()
	}
}

// loop probes, announces and answers until ctx is done.
func (r *Responder) loop(ctx context.Context, packets <-chan packet) {
	defer close(r.loopDone)
	// RFC 6762 §8.1: wait 0–250 ms, then three probes 250 ms apart.
	start := time.Now().Add(rand.N(probeInterval))
	var probes, announces []time.Time
	for i := range 3 {
		probes = append(probes, start.Add(time.Duration(i)*probeInterval))
	}
	announceAt := func(from time.Time) {
		announces = announces[:0]
		for _, d := range announceDelays {
			announces = append(announces, from.Add(d))
		}
	}
	announceAt(start.Add(3 * probeInterval))
	probing := true
	textOnly := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		for len(probes) > 0 && !probes[0].After(now) {
			r.probe()
			probes = probes[1:]
		}
		if len(probes) == 0 && len(announces) > 0 && !announces[0].After(now) {
			if textOnly {
				r.announceText()
			} else {
				r.announce(r.ttl)
			}
			if probing {
				close(r.announced)
			}
			probing = false
			announces = announces[1:]
		}
		next := now.Add(time.Hour)
		if len(probes) > 0 {
			next = probes[0]
		} else if len(announces) > 0 {
			next = announces[0]
		}
		timer.Reset(max(next.Sub(now), time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.textChanged:
			if !probing {
				// The new TXT, twice, a second apart.
				textOnly = true
				announces = append(announces[:0], now, now.Add(time.Second))
			}
		case p := <-packets:
			if _, ok := r.ifaces[p.index]; ok {
				r.handle(p, probing)
			}
		}
	}
}

// records returns the records: PTR, SRV, TXT, then the addresses, with
// ttl, the cache-flush bit on the unique ones when flush.
func (r *Responder) records(ttl uint32, flush bool) (ptr, srv, txt dns.RR, addrs []dns.RR) {
	unique := uint16(dns.ClassINET)
	if flush {
		unique |= 0x8000
	}
	r.mu.Lock()
	text := slices.Clone(r.txt)
	r.mu.Unlock()
	if len(text) == 0 {
		text = []string{""}
	}
	ptr = &dns.PTR{Hdr: dns.RR_Header{Name: r.serviceName, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl}, Ptr: r.instanceName}
	srv = &dns.SRV{Hdr: dns.RR_Header{Name: r.instanceName, Rrtype: dns.TypeSRV, Class: unique, Ttl: ttl}, Port: r.port, Target: r.hostName}
	txt = &dns.TXT{Hdr: dns.RR_Header{Name: r.instanceName, Rrtype: dns.TypeTXT, Class: unique, Ttl: ttl}, Txt: text}
	for _, a := range r.addrs {
		a = a.WithZone("")
		if a.Is4() {
			addrs = append(addrs, &dns.A{Hdr: dns.RR_Header{Name: r.hostName, Rrtype: dns.TypeA, Class: unique, Ttl: ttl}, A: a.AsSlice()})
		} else {
			addrs = append(addrs, &dns.AAAA{Hdr: dns.RR_Header{Name: r.hostName, Rrtype: dns.TypeAAAA, Class: unique, Ttl: ttl}, AAAA: a.AsSlice()})
		}
	}
	return ptr, srv, txt, addrs
}

// announce multicasts every record with ttl (0: a goodbye) on every
// interface.
func (r *Responder) announce(ttl uint32) {
	ptr, srv, txt, addrs := r.records(ttl, true)
	m := r.response()
	m.Answer = append([]dns.RR{ptr, srv, txt}, addrs...)
	if ttl > 0 {
		m.Answer = append(m.Answer, r.enumPTR(ttl))
	}
	r.multicast(m, 0)
}

func (r *Responder) announceText() {
	_, _, txt, _ := r.records(r.ttl, true)
	m := r.response()
	m.Answer = []dns.RR{txt}
	r.multicast(m, 0)
}

func (r *Responder) enumPTR(ttl uint32) dns.RR {
	return &dns.PTR{Hdr: dns.RR_Header{Name: r.enum, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl}, Ptr: r.serviceName}
}

func (r *Responder) response() *dns.Msg {
	m := new(dns.Msg)
	m.Response, m.Authoritative, m.Compress = true, true, true
	return m
}

// probe multicasts a probe for the instance and host names (RFC 6762
// §8.1): a query of type ANY with our records in the authority section.
func (r *Responder) probe() {
	_, srv, txt, addrs := r.records(r.ttl, false)
	m := new(dns.Msg)
	m.Question = []dns.Question{
		{Name: r.instanceName, Qtype: dns.TypeANY, Qclass: dns.ClassINET | 0x8000},
		{Name: r.hostName, Qtype: dns.TypeANY, Qclass: dns.ClassINET | 0x8000},
	}
	m.Ns = append([]dns.RR{srv, txt}, addrs...)
	r.multicast(m, 0)
}

// multicast sends m on the interface of that index, or on all of them
// (0).
func (r *Responder) multicast(m *dns.Msg, index int) {
	buf, err := m.Pack()
	if err != nil {
		r.log.Warn("mdns responder: pack", "err", err)
		return
	}
	for i, ifi := range r.ifaces {
		if index != 0 && i != index {
			continue
		}
		for _, mc := range r.conns {
			mc.send(&ifi, buf)
		}
	}
}

// handle answers a query received on an interface we serve; a response
// that claims our names with other data is a conflict, logged.
func (r *Responder) handle(p packet, probing bool) {
	m := new(dns.Msg)
	if err := m.Unpack(p.data); err != nil {
		return
	}
	if m.Response {
		r.checkConflict(m, p)
		return
	}
	if m.Opcode != dns.OpcodeQuery || len(m.Ns) > 0 && slices.Contains(r.addrs, p.src) {
		return // not a query, or our own probe
	}
	r.mu.Lock()
	stopped := r.stopped
	r.mu.Unlock()
	if stopped {
		return
	}
	legacy := p.from.Port() != 5353
	resp := r.response()
	var extra []dns.RR
	unicast := legacy
	now := time.Now()
	for _, q := range m.Question {
		ans, add := r.answer(q, !legacy)
		ans = suppressKnown(ans, m.Answer)
		if len(ans) == 0 {
			continue
		}
		if q.Qclass&0x8000 != 0 {
			unicast = true
		} else if !legacy {
			k := answerKey{q: dns.Question{Name: strings.ToLower(q.Name), Qtype: q.Qtype}, index: p.index}
			r.mu.Lock()
			last, seen := r.answered[k]
			if !seen || now.Sub(last) >= minAnswerGap {
				if len(r.answered) > 256 {
					clear(r.answered)
				}
				r.answered[k] = now
			}
			r.mu.Unlock()
			if seen && now.Sub(last) < minAnswerGap {
				continue
			}
		}
		resp.Answer = append(resp.Answer, ans...)
		extra = append(extra, add...)
	}
	if len(resp.Answer) == 0 {
		return
	}
	for _, rr := range extra {
		if !slices.ContainsFunc(resp.Answer, func(a dns.RR) bool { return dns.IsDuplicate(a, rr) }) &&
			!slices.ContainsFunc(resp.Extra, func(a dns.RR) bool { return dns.IsDuplicate(a, rr) }) {
			resp.Extra = append(resp.Extra, rr)
		}
	}
	if legacy {
		// RFC 6762 §6.7: a plain DNS reply, with the question, short
		// TTLs and no cache-flush bits.
		resp.Id = m.Id
		resp.Question = m.Question
		for _, rr := range append(resp.Answer, resp.Extra...) {
			rr.Header().Ttl = min(rr.Header().Ttl, legacyTTL)
			rr.Header().Class &= 0x7fff
		}
	}
	if unicast && p.from.IsValid() {
		r.unicast(resp, p)
		return
	}
	r.multicast(resp, p.index)
}

// answer returns the records that answer q, and the additional records
// that go with them (RFC 6763 §12).
func (r *Responder) answer(q dns.Question, flush bool) (ans, extra []dns.RR) {
	ptr, srv, txt, addrs := r.records(r.ttl, flush)
	any := q.Qtype == dns.TypeANY
	switch strings.ToLower(q.Name) {
	case r.service:
		if any || q.Qtype == dns.TypePTR {
			return []dns.RR{ptr}, append([]dns.RR{srv, txt}, addrs...)
		}
	case r.instance:
		if any || q.Qtype == dns.TypeSRV {
			ans = append(ans, srv)
			extra = addrs
		}
		if any || q.Qtype == dns.TypeTXT {
			ans = append(ans, txt)
		}
	case r.host:
		for _, a := range addrs {
			if any || a.Header().Rrtype == q.Qtype {
				ans = append(ans, a)
			}
		}
	case r.enum:
		if any || q.Qtype == dns.TypePTR {
			ans = append(ans, r.enumPTR(r.ttl))
		}
	}
	return ans, extra
}

// suppressKnown drops from ans the records the querier listed as known
// with at least half their TTL left (RFC 6762 §7.1).
func suppressKnown(ans, known []dns.RR) []dns.RR {
	return slices.DeleteFunc(ans, func(a dns.RR) bool {
		return slices.ContainsFunc(known, func(k dns.RR) bool {
			return dns.IsDuplicate(a, k) && k.Header().Ttl >= a.Header().Ttl/2
		})
	})
}

// checkConflict logs another host's response that gives our instance or
// host name other data (RFC 6762 §9). The responder goes on answering:
// renaming a build machine behind its operator's back would confuse
// more than it solves, and masters tell the two apart by their
// signatures.
func (r *Responder) checkConflict(m *dns.Msg, p packet) {
	if slices.Contains(r.addrs, p.from.Addr().Unmap().WithZone("")) {
		return // ourselves
	}
	_, srv, txt, addrs := r.records(r.ttl, false)
	ours := append([]dns.RR{srv, txt}, addrs...)
	for _, rr := range append(m.Answer, m.Extra...) {
		name := strings.ToLower(rr.Header().Name)
		if name != r.instance && name != r.host || rr.Header().Ttl == 0 {
			continue
		}
		c := dns.Copy(rr)
		c.Header().Class &= 0x7fff
		if slices.ContainsFunc(ours, func(o dns.RR) bool { return dns.IsDuplicate(o, c) }) {
			continue
		}
		r.log.Warn("mdns responder: another host announces a name of ours with other data; masters tell us apart by our signature, but rename one of the machines (name in the configuration)",
			"name", rr.Header().Name, "from", p.from.Addr().String(), "interface", p.iface)
		return
	}
}

// unicast sends m to the sender of p, on the interface it came in on.
func (r *Responder) unicast(m *dns.Msg, p packet) {
	buf, err := m.Pack()
	if err != nil {
		return
	}
	to := net.UDPAddrFromAddrPort(p.from)
	for _, mc := range r.conns {
		switch {
		case mc.v4 != nil && p.from.Addr().Unmap().Is4():
			_, _ = mc.v4.WriteTo(buf, &ipv4.ControlMessage{IfIndex: p.index}, to)
			return
		case mc.v6 != nil && !p.from.Addr().Unmap().Is4():
			_, _ = mc.v6.WriteTo(buf, &ipv6.ControlMessage{IfIndex: p.index}, to)
			return
		}
	}
}
