package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/guix-offload/guix-offload/internal/pki"
)

const svc = "_guix-offload._tcp.local."

// response crafts what a responder sends: PTR, SRV, TXT, A (and AAAA),
// with the cache-flush bit on the unique records, as avahi and our agent
// do.
func response(instance, host string, port uint16, txt []string, ttl uint32, addrs ...string) *dns.Msg {
	m := new(dns.Msg)
	m.Response = true
	m.Authoritative = true
	full := instance + "." + svc
	target := host + ".local."
	m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: svc, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl}, Ptr: full})
	flush := uint16(dns.ClassINET | 0x8000)
	m.Extra = append(m.Extra,
		&dns.SRV{Hdr: dns.RR_Header{Name: full, Rrtype: dns.TypeSRV, Class: flush, Ttl: min(ttl, 120)}, Port: port, Target: target},
		&dns.TXT{Hdr: dns.RR_Header{Name: full, Rrtype: dns.TypeTXT, Class: flush, Ttl: ttl}, Txt: txt})
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip.To4() != nil {
			m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: target, Rrtype: dns.TypeA, Class: flush, Ttl: min(ttl, 120)}, A: ip})
		} else {
			m.Extra = append(m.Extra, &dns.AAAA{Hdr: dns.RR_Header{Name: target, Rrtype: dns.TypeAAAA, Class: flush, Ttl: min(ttl, 120)}, AAAA: ip})
		}
	}
	return roundTrip(m)
}

// roundTrip packs and unpacks m, so the cache sees exactly what it would
// read from the wire.
func roundTrip(m *dns.Msg) *dns.Msg {
	buf, err := m.Pack()
	if err != nil {
		panic(err)
	}
	out := new(dns.Msg)
	if err := out.Unpack(buf); err != nil {
		panic(err)
	}
	return out
}

func goodbye(instance string) *dns.Msg {
	m := new(dns.Msg)
	m.Response = true
	m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: svc, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 0}, Ptr: instance + "." + svc})
	return roundTrip(m)
}

func validTXT(t testing.TB, load string) []string {
	return []string{"txtvers=1", "systems=x86_64-linux", "parallel-builds=2", "user=offload",
		"host-key=" + testHostKey(t, 5), "load=" + load, "free-disk=1000", "addrs=169.254.1.2"}
}

type recorder struct {
	t        *testing.T
	c        *cache
	now      time.Time
	warnings []string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{t: t, now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	r.c = newCache("local.", "", func(msg string, args ...any) { r.warnings = append(r.warnings, fmt.Sprintf(msg, args...)) })
	return r
}

func (r *recorder) advance(d time.Duration) { r.now = r.now.Add(d) }

func (r *recorder) feed(m *dns.Msg, iface string) []Event {
	r.c.handle(m, iface, r.now)
	return r.c.tick(r.now)
}

func kinds(evs []Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Kind.String()+" "+e.Announcement.Instance)
	}
	return strings.Join(s, "; ")
}

func TestCacheAdd(t *testing.T) {
	r := newRecorder(t)
	evs := r.feed(response("builder1", "b1", 22, validTXT(t, "0.10"), 4500, "169.254.1.2", "fe80::2"), "veth0")
	if kinds(evs) != "add builder1" {
		t.Fatalf("events %q, want one add", kinds(evs))
	}
	a := evs[0].Announcement
	if a.Name != "169.254.1.2" || a.Port != 22 || a.User != "offload" || a.Load != 0.1 || a.FreeDisk != 1000 ||
		a.ParallelBuilds != 2 || a.Source != "mdns:veth0" || len(a.Addresses) != 2 || a.Addresses[1].String() != "fe80::2%veth0" {
		t.Errorf("announcement %+v", a)
	}
	// The same records again (a re-announcement, a duplicate from
	// another interface) change nothing.
	r.advance(time.Second)
	if evs := r.feed(response("builder1", "b1", 22, validTXT(t, "0.10"), 4500, "169.254.1.2", "fe80::2"), "veth0"); len(evs) != 0 {
		t.Errorf("repeat gave %q", kinds(evs))
	}
	if evs := r.feed(response("builder1", "b1", 22, validTXT(t, "0.10"), 4500, "169.254.1.2"), "veth1"); len(evs) != 0 {
		t.Errorf("duplicate from another interface gave %q", kinds(evs))
	}
	if n := len(r.c.current()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
}

func TestCacheMergesAddresses(t *testing.T) {
	r := newRecorder(t)
	r.feed(response("builder1", "b1", 22, validTXT(t, "0.10"), 4500, "169.254.1.2"), "veth0")
	// A second address of the same host (another interface of it) is an
	// update of the one instance, not a second machine.
	m := new(dns.Msg)
	m.Response = true
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "b1.local.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 120}, A: net.ParseIP("169.254.9.9")}}
	evs := r.feed(roundTrip(m), "veth1")
	if kinds(evs) != "update builder1" {
		t.Fatalf("events %q, want one update", kinds(evs))
	}
	if got := fmt.Sprint(evs[0].Announcement.Addresses); got != "[169.254.1.2 169.254.9.9]" {
		t.Errorf("addresses %s", got)
	}
}

func TestCacheUpdateOnTXTChange(t *testing.T) {
	r := newRecorder(t)
	r.feed(response("builder1", "b1", 22, validTXT(t, "0.10"), 4500, "169.254.1.2"), "veth0")
	r.advance(5 * time.Second)
	evs := r.feed(response("builder1", "b1", 22, validTXT(t, "0.90"), 4500, "169.254.1.2"), "veth0")
	if kinds(evs) != "update builder1" || evs[0].Announcement.Load != 0.9 {
		t.Fatalf("events %q, want update with load 0.9", kinds(evs))
	}
	// The old TXT record was flushed: a second later nothing flips back.
	r.advance(2 * time.Second)
	if evs := r.c.tick(r.now); len(evs) != 0 {
		t.Errorf("after flush: %q", kinds(evs))
	}
	if n := r.c.nrecords; n != 4 {
		t.Errorf("%d records cached, want 4 (PTR, SRV, TXT, A)", n)
	}
}

func TestCacheGoodbye(t *testing.T) {
	r := newRecorder(t)
	r.feed(response("builder1", "b1", 22, validTXT(t, "0.10"), 4500, "169.254.1.2"), "veth0")
	r.feed(response("builder2", "b2", 22, validTXT(t, "0.10"), 4500, "169.254.1.3"), "veth0")
	r.advance(time.Second)
	if evs := r.feed(goodbye("builder1"), "veth0"); len(evs) != 0 {
		t.Fatalf("goodbye removed at once: %q (RFC 6762 §10.1 waits one second)", kinds(evs))
	}
	r.advance(999 * time.Millisecond)
	if evs := r.c.tick(r.now); len(evs) != 0 {
		t.Fatalf("removed before a second: %q", kinds(evs))
	}
	r.advance(2 * time.Millisecond)
	if evs := r.c.tick(r.now); kinds(evs) != "remove builder1" {
		t.Fatalf("events %q, want remove builder1", kinds(evs))
	}
	// A goodbye for an unknown instance is nothing.
	if evs := r.feed(goodbye("nobody"), "veth0"); len(evs) != 0 {
		t.Errorf("unknown goodbye: %q", kinds(evs))
	}
}

func TestCacheExpiry(t *testing.T) {
	r := newRecorder(t)
	r.feed(response("builder1", "b1", 22, validTXT(t, "0.10"), 4500, "169.254.1.2"), "veth0")
	// SRV and A records live 120 s; nobody refreshes them.
	r.advance(119 * time.Second)
	if evs := r.c.tick(r.now); len(evs) != 0 {
		t.Fatalf("expired early: %q", kinds(evs))
	}
	r.advance(2 * time.Second)
	if evs := r.c.tick(r.now); kinds(evs) != "remove builder1" {
		t.Fatalf("events %q, want remove builder1", kinds(evs))
	}
	// Then it comes back.
	if evs := r.feed(response("builder1", "b1", 22, validTXT(t, "0.10"), 4500, "169.254.1.2"), "veth0"); kinds(evs) != "add builder1" {
		t.Fatalf("events %q, want add builder1 again", kinds(evs))
	}
}

func TestCacheIgnoresMalformed(t *testing.T) {
	r := newRecorder(t)
	bad := validTXT(t, "lots")
	evs := r.feed(response("evil", "e", 22, bad, 4500, "169.254.1.9"), "veth0")
	if kinds(evs) != "ignore evil" {
		t.Fatalf("events %q, want ignore evil", kinds(evs))
	}
	a := evs[0].Announcement
	if !strings.Contains(a.Ignored, "load") || evs[0].Err == nil || a.Trusted {
		t.Errorf("ignored announcement %+v, err %v", a, evs[0].Err)
	}
	if len(r.warnings) != 1 || !strings.Contains(r.warnings[0], "load") {
		t.Errorf("warnings %q, want one naming load", r.warnings)
	}
	// Fixed: it becomes a machine.
	r.advance(5 * time.Second)
	if evs := r.feed(response("evil", "e", 22, validTXT(t, "0.5"), 4500, "169.254.1.9"), "veth0"); kinds(evs) != "add evil" {
		t.Errorf("events %q, want add evil", kinds(evs))
	}
	// Broken again: removed, then ignored.
	r.advance(5 * time.Second)
	over := validTXT(t, "0.5")
	for i := range 6 {
		over = append(over, fmt.Sprintf("junk%d=%s", i, strings.Repeat("x", 240)))
	}
	if evs := r.feed(response("evil", "e", 22, over, 4500, "169.254.1.9"), "veth0"); kinds(evs) != "remove evil; ignore evil" {
		t.Errorf("events %q, want remove then ignore", kinds(evs))
	}
	// An ignored instance that goes is removed, so nobody keeps it.
	r.advance(time.Second)
	r.feed(goodbye("evil"), "veth0")
	r.advance(1100 * time.Millisecond)
	if evs := r.c.tick(r.now); kinds(evs) != "remove evil" || evs[0].Announcement.Ignored == "" {
		t.Errorf("events %q, want remove of the ignored instance", kinds(evs))
	}
}

func TestCacheUnrelatedRecordsNotKept(t *testing.T) {
	r := newRecorder(t)
	m := new(dns.Msg)
	m.Response = true
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: dns.RR_Header{Name: "_ssh._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 4500}, Ptr: "x._ssh._tcp.local."},
		&dns.A{Hdr: dns.RR_Header{Name: "somehost.local.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 120}, A: net.ParseIP("169.254.3.3")},
		&dns.TXT{Hdr: dns.RR_Header{Name: "a.b." + svc, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 120}, Txt: []string{"x"}},
	}
	r.feed(roundTrip(m), "veth0")
	if len(r.c.records) != 0 {
		t.Errorf("kept %d unrelated records", len(r.c.records))
	}
	// Queries are not answers.
	q := response("builder1", "b1", 22, validTXT(t, "0.1"), 4500, "169.254.1.2")
	q.Response = false
	if evs := r.feed(q, "veth0"); len(evs) != 0 || len(r.c.records) != 0 {
		t.Errorf("a query was cached: %q", kinds(evs))
	}
}

func TestCacheFloodIsBounded(t *testing.T) {
	r := newRecorder(t)
	total := 0
	txt := validTXT(t, "0.1")
	for i := range MaxInstances + 500 {
		evs := r.feed(response(fmt.Sprintf("bogus%d", i), fmt.Sprintf("h%d", i), 22, txt, 4500, "169.254.7.7"), "veth0")
		total += len(evs)
	}
	if len(r.c.state) > MaxInstances || r.c.nrecords > maxRecords {
		t.Errorf("%d instances, %d records; bounds %d, %d", len(r.c.state), r.c.nrecords, MaxInstances, maxRecords)
	}
	if total != MaxInstances {
		t.Errorf("%d events, want %d", total, MaxInstances)
	}
	if len(r.warnings) > maxWarnings+1 {
		t.Errorf("%d warnings; want at most %d a minute", len(r.warnings), maxWarnings+1)
	}
	found := false
	for _, w := range r.warnings {
		if strings.Contains(w, "flood") {
			found = true
		}
	}
	if !found {
		t.Errorf("no flood warning in %q", r.warnings)
	}
}

// TestCacheFloodOfGarbageCannotCrowdOut: when the cache is full of
// bogus (malformed) instances, a real machine still gets in, and the
// warnings stay few.
func TestCacheFloodOfGarbageCannotCrowdOut(t *testing.T) {
	r := newRecorder(t)
	bad := validTXT(t, "lots")
	for i := range 2 * MaxInstances {
		r.feed(response(fmt.Sprintf("junk%d", i), fmt.Sprintf("j%d", i), 22, bad, 4500, "169.254.7.7"), "veth0")
	}
	if r.c.nrecords > 4*MaxInstances {
		t.Errorf("%d records for %d instances: evicted instances left records behind", r.c.nrecords, len(r.c.ptrs))
	}
	if len(r.c.ptrs) > MaxInstances || r.c.nrecords > maxRecords {
		t.Fatalf("%d instances, %d records", len(r.c.ptrs), r.c.nrecords)
	}
	r.advance(time.Second)
	evs := r.feed(response("real", "realhost", 22, validTXT(t, "0.1"), 4500, "169.254.1.2"), "veth0")
	var added bool
	for _, ev := range evs {
		if ev.Kind == Add && ev.Announcement.Instance == "real" {
			added = true
		}
	}
	if !added {
		t.Errorf("the real machine did not get in: %q", kinds(evs))
	}
	if len(r.warnings) > maxWarnings+1 {
		t.Errorf("%d warnings", len(r.warnings))
	}
}

func TestCacheEscapedInstanceName(t *testing.T) {
	r := newRecorder(t)
	evs := r.feed(response(`My\ Builder\.2`, "b1", 22, validTXT(t, "0.1"), 4500, "169.254.1.2"), "veth0")
	if kinds(evs) != "add My Builder.2" {
		t.Fatalf("events %q", kinds(evs))
	}
}

func TestCacheQuestions(t *testing.T) {
	r := newRecorder(t)
	// The browse question on a backoff schedule: 0, 1, 3, 7, 15 s ….
	var at []time.Duration
	start := r.now
	for range 200 {
		if m := r.c.questions(r.now); m != nil {
			at = append(at, r.now.Sub(start))
			if len(m.Question) != 1 || m.Question[0].Qtype != dns.TypePTR || m.Question[0].Name != svc {
				t.Fatalf("question %v", m.Question)
			}
		}
		r.advance(100 * time.Millisecond)
	}
	if got := fmt.Sprint(at); got != "[0s 1s 3s 7s 15s]" {
		t.Errorf("browse queries at %s", got)
	}

	// Known-answer suppression: a PTR with more than half its TTL left is
	// listed in the query.
	r = newRecorder(t)
	r.c.questions(r.now)
	r.feed(response("builder1", "b1", 22, validTXT(t, "0.1"), 4500, "169.254.1.2"), "veth0")
	r.advance(time.Second)
	m := r.c.questions(r.now)
	if m == nil || len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "builder1."+svc || m.Answer[0].Header().Ttl != 4499 {
		t.Fatalf("known answers: %v", m)
	}

	// Refresh at 80 % of a record's TTL (SRV and A live 120 s: 96 s).
	r.advance(94 * time.Second)
	for m := r.c.questions(r.now); m != nil; m = r.c.questions(r.now) {
		for _, q := range m.Question {
			if q.Qtype != dns.TypePTR {
				t.Errorf("early refresh %v", q)
			}
		}
	}
	r.advance(2 * time.Second)
	m = r.c.questions(r.now)
	var qs []string
	for _, q := range m.Question {
		qs = append(qs, dns.TypeToString[q.Qtype]+" "+q.Name)
	}
	if got := strings.Join(qs, ", "); !strings.Contains(got, "SRV builder1."+svc) || !strings.Contains(got, "A b1.local.") {
		t.Errorf("refresh questions %s", got)
	}
	if !r.c.nextWake(r.now).After(r.now) {
		t.Error("nextWake is not in the future")
	}
}

func TestCacheAsksForMissing(t *testing.T) {
	r := newRecorder(t)
	r.c.questions(r.now) // the first browse query
	m := new(dns.Msg)
	m.Response = true
	m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: svc, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 4500}, Ptr: "lonely." + svc}}
	if evs := r.feed(roundTrip(m), "veth0"); len(evs) != 0 {
		t.Fatalf("unresolved instance reported: %q", kinds(evs))
	}
	q := r.c.questions(r.now)
	var got []string
	for _, x := range q.Question {
		got = append(got, dns.TypeToString[x.Qtype]+" "+x.Name)
	}
	if s := strings.Join(got, ", "); s != "SRV lonely."+svc+", TXT lonely."+svc {
		t.Errorf("questions %s", s)
	}
	// Not again at once.
	if q := r.c.questions(r.now.Add(100 * time.Millisecond)); q != nil {
		t.Errorf("asked again at once: %v", q.Question)
	}
}

// TestCacheFloodOfUntrustedCannotCrowdOut: a flood of well-formed
// announcements that the trust policy rejects fills the cache, yet a
// machine the policy accepts still gets in, and stays in while the flood
// goes on.
func TestCacheFloodOfUntrustedCannotCrowdOut(t *testing.T) {
	r := newRecorder(t)
	policy := &ACLPolicy{ACL: fixtureACL(t), File: "testdata/acl"}
	r.c.trusted = policy.Judge
	stranger, err := pki.GenerateKey(pki.TypeECDSA, nil)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(instance string, key *pki.PrivateKey) []string {
		a := testAnnouncement(t)
		a.Instance, a.Port = instance, 22
		a.Addresses = []netip.Addr{netip.MustParseAddr("169.254.1.2")}
		a.Time = r.now
		if err := a.Sign(key); err != nil {
			t.Fatal(err)
		}
		return a.TXT()
	}
	// Well-formed and signed, by a key the ACL does not hold (one record
	// for all: signing each costs more time than it proves).
	rogue := signed("rogue", stranger)
	flood := func(from, n int) {
		for i := from; i < from+n; i++ {
			r.feed(response(fmt.Sprintf("rogue%d", i), fmt.Sprintf("r%d", i), 22, rogue, 4500, "169.254.1.2"), "veth0")
		}
	}
	flood(0, MaxInstances+100)
	if len(r.c.ptrs) > MaxInstances || len(r.c.state) > MaxInstances || r.c.nrecords > maxRecords {
		t.Fatalf("%d instances, %d states, %d records", len(r.c.ptrs), len(r.c.state), r.c.nrecords)
	}
	r.advance(time.Second)
	evs := r.feed(response("real", "realhost", 22, signed("real", fixtureKey(t)), 4500, "169.254.1.2"), "veth0")
	if !slices.ContainsFunc(evs, func(ev Event) bool { return ev.Kind == Add && ev.Announcement.Instance == "real" }) {
		t.Fatalf("the trusted machine did not get in: %q (warnings %q)", kinds(evs), r.warnings)
	}
	flood(MaxInstances+100, MaxInstances+100)
	if st := r.c.state["real."+svc]; st == nil || st.kind != Add || st.untrusted {
		t.Errorf("the trusted machine was crowded out by the flood: %+v", st)
	}
	if len(r.c.ptrs) > MaxInstances || len(r.c.state) > MaxInstances {
		t.Errorf("%d instances, %d states", len(r.c.ptrs), len(r.c.state))
	}
	if len(r.warnings) > maxWarnings+1 {
		t.Errorf("%d warnings", len(r.warnings))
	}
}

// Unusable instances go before untrusted ones, and the oldest first.
func TestCacheEvictionOrder(t *testing.T) {
	r := newRecorder(t)
	r.c.trusted = func(a *Announcement, _ time.Time) (bool, string) {
		return !strings.HasPrefix(a.Instance, "untrusted"), ""
	}
	good, bad := validTXT(t, "0.1"), validTXT(t, "lots")
	for i := range MaxInstances - 3 {
		r.feed(response(fmt.Sprintf("trusted%d", i), fmt.Sprintf("t%d", i), 22, good, 4500, "169.254.1.2"), "veth0")
	}
	r.advance(time.Second)
	r.feed(response("untrusted-old", "u1", 22, good, 4500, "169.254.1.3"), "veth0")
	r.advance(time.Second)
	r.feed(response("untrusted-new", "u2", 22, good, 4500, "169.254.1.4"), "veth0")
	r.advance(time.Second)
	r.feed(response("malformed", "m1", 22, bad, 4500, "169.254.1.5"), "veth0")
	for i, gone := range []string{"malformed", "untrusted-old", "untrusted-new"} {
		r.advance(time.Second)
		r.feed(response(fmt.Sprintf("late%d", i), fmt.Sprintf("l%d", i), 22, good, 4500, "169.254.1.6"), "veth0")
		if _, ok := r.c.ptrs[gone+"."+svc]; ok {
			t.Errorf("after new instance %d, %s is still there", i, gone)
		}
	}
	// Full of trusted machines: a newcomer is refused, none is dropped.
	r.feed(response("one-too-many", "x", 22, good, 4500, "169.254.1.7"), "veth0")
	if _, ok := r.c.state["one-too-many."+svc]; ok || len(r.c.state) != MaxInstances {
		t.Errorf("a trusted machine was dropped for a newcomer (%d instances)", len(r.c.state))
	}
}

// Browse gives its policy to the multicast DNS source, for eviction.
func TestBrowseGivesPolicyToSource(t *testing.T) {
	p := AnyPolicy{}
	src := (&BrowseOptions{Trust: p}).source()
	if mg, ok := src.(*merged); ok {
		src = mg.sources[0]
	}
	if m, ok := src.(*MDNS); !ok || m.Trust != p {
		t.Errorf("source %#v", m)
	}
}
