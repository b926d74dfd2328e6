package discovery

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// Attacks from a hostile host on the LAN against the browser's cache
// (issue 12), as pure logic: packets crafted as the attacker sends them.

// aclRecorder is a recorder whose cache judges with the fixture ACL, as
// Browse makes the multicast DNS source do.
func aclRecorder(t *testing.T) *recorder {
	r := newRecorder(t)
	policy := &ACLPolicy{ACL: fixtureACL(t), File: "testdata/acl"}
	r.c.trusted = policy.Judge
	return r
}

// signedTXT is a TXT record for instance on port 22 at 169.254.1.2,
// signed by key at now.
func signedTXT(t testing.TB, instance, load string, key *pki.PrivateKey, now time.Time) []string {
	a := testAnnouncement(t)
	a.Instance, a.Port = instance, 22
	a.Addresses = []netip.Addr{netip.MustParseAddr("169.254.1.2")}
	a.Time = now
	fmt.Sscan(load, &a.Load)
	if err := a.Sign(key); err != nil {
		t.Fatal(err)
	}
	return a.TXT()
}

// orphans is what the attacker of item 1 sends: TXT and SRV records for
// instance names no PTR ever names, with the longest TTL there is.
func orphans(from, n, txtSize int) *dns.Msg {
	m := new(dns.Msg)
	m.Response = true
	for i := from; i < from+n; i++ {
		name := fmt.Sprintf("orphan%d.%s", i, svc)
		var txt []string
		for n := txtSize; n > 0; n -= 255 {
			txt = append(txt, strings.Repeat("x", min(n, 255)))
		}
		m.Answer = append(m.Answer,
			&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1<<31 - 1}, Txt: txt},
			&dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1<<31 - 1}, Port: 22, Target: fmt.Sprintf("o%d.local.", i)})
	}
	return m
}

func hasEvent(evs []Event, kind EventKind, instance string) bool {
	return slices.ContainsFunc(evs, func(ev Event) bool {
		return ev.Kind == kind && ev.Announcement.Instance == instance && !ev.Announcement.Impostor
	})
}

// Item 1: 10,000 orphan TXT and SRV records with TTL 2^31-1, from one
// sender and then from many, neither keep a new trusted machine out nor
// stop a known one's updates, and live no longer than agents' records.
func TestHostileOrphanFloodCannotPoisonCache(t *testing.T) {
	for _, senders := range []int{1, 250} {
		t.Run(fmt.Sprintf("%d senders", senders), func(t *testing.T) {
			r := aclRecorder(t)
			known := response("known", "knownhost", 22, signedTXT(t, "known", "0.1", fixtureKey(t), r.now), 120, "169.254.1.2")
			if evs := r.feed(known, "veth0"); !hasEvent(evs, Add, "known") {
				t.Fatalf("known machine not added: %q", kinds(evs))
			}
			for i := 0; i < 10000; i += 20 {
				src := netip.AddrFrom4([4]byte{169, 254, 66, byte(i / 20 % senders)})
				r.c.handleFrom(roundTrip(orphans(i, 20, 100)), "veth0", src, r.now)
				r.c.tick(r.now)
			}
			if r.c.bytes > maxCacheBytes || r.c.nrecords > maxRecords {
				t.Errorf("cache holds %d bytes in %d records", r.c.bytes, r.c.nrecords)
			}
			for _, byName := range r.c.records {
				for _, rec := range byName {
					if rec.expires.Sub(r.now) > maxTTL {
						t.Fatalf("record %s kept for %s", rec.key.name, rec.expires.Sub(r.now))
					}
				}
			}
			r.advance(time.Second)
			evs := r.feed(response("new", "newhost", 22, signedTXT(t, "new", "0.1", fixtureKey(t), r.now), 120, "169.254.1.2"), "veth0")
			if !hasEvent(evs, Add, "new") {
				t.Errorf("a trusted machine started during the flood is not listed: %q", kinds(evs))
			}
			evs = r.feed(response("known", "knownhost", 22, signedTXT(t, "known", "0.7", fixtureKey(t), r.now), 120, "169.254.1.2"), "veth0")
			if !hasEvent(evs, Update, "known") {
				t.Errorf("the known machine's update was refused: %q", kinds(evs))
			}
			// And the flood goes on: neither is evicted.
			for i := 10000; i < 20000; i += 20 {
				r.c.handleFrom(roundTrip(orphans(i, 20, 100)), "veth0", netip.AddrFrom4([4]byte{169, 254, 67, byte(i % senders)}), r.now)
				if evs := r.c.tick(r.now); hasEvent(evs, Remove, "new") || hasEvent(evs, Remove, "known") {
					t.Fatalf("a trusted machine was evicted: %q", kinds(evs))
				}
			}
		})
	}
}

// Item 1: orphan records go first. A flood of orphans does not evict
// well-formed instances, even untrusted ones.
func TestHostileOrphansOnlyDisplaceOrphans(t *testing.T) {
	r := aclRecorder(t)
	r.feed(response("friend", "friendhost", 22, validTXT(t, "0.1"), 120, "169.254.1.3"), "veth0")
	for i := 0; i < 20000; i += 20 {
		r.c.handle(roundTrip(orphans(i, 20, 500)), "veth0", r.now)
		if evs := r.c.tick(r.now); len(evs) != 0 {
			t.Fatalf("orphans displaced an instance: %q", kinds(evs))
		}
	}
	if r.c.rankBytes[rankOrphan] > maxOrphanBytes {
		t.Errorf("orphans hold %d bytes, budget %d", r.c.rankBytes[rankOrphan], maxOrphanBytes)
	}
}

// Item 1: one sender fills at most its share with records the trust
// policy does not accept.
func TestHostileOneSenderFillsItsShareOnly(t *testing.T) {
	r := aclRecorder(t)
	src := netip.MustParseAddr("169.254.66.6")
	for i := range 3000 {
		m := response(fmt.Sprintf("bogus%d", i), fmt.Sprintf("b%d", i), 22, []string{strings.Repeat("y", 250), strings.Repeat("z", 250)}, 4500, "169.254.9.9")
		r.c.handleFrom(m, "veth0", src, r.now)
		r.c.tick(r.now)
	}
	if got := r.c.srcBytes[src]; got > maxSourceBytes {
		t.Errorf("one sender holds %d bytes, share %d", got, maxSourceBytes)
	}
}

// Item 5: 6,000 orphan TXT records of 8.7 KB each (they drove the
// watcher to 494 MB) cost the cache its budget at most.
func TestHostileBigRecordsStayInBudget(t *testing.T) {
	r := aclRecorder(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 6000 {
		m := new(dns.Msg)
		m.Response = true
		name := fmt.Sprintf("big%d.%s", i, svc)
		var txt []string
		for range 34 {
			txt = append(txt, strings.Repeat("w", 255))
		}
		m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1<<31 - 1}, Txt: txt}}
		r.c.handleFrom(roundTrip(m), "veth0", netip.AddrFrom4([4]byte{169, 254, byte(i / 256), byte(i)}), r.now)
		r.c.tick(r.now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if r.c.bytes > maxCacheBytes {
		t.Errorf("cache counts %d bytes, budget %d", r.c.bytes, maxCacheBytes)
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 2*maxCacheBytes {
		t.Errorf("heap grew by %d MB for a budget of %d MB: the estimate undercounts", grown>>20, maxCacheBytes>>20)
	}
	runtime.KeepAlive(r)
}

// goodbyeAll is a TTL-0 copy of every record of a machine, as anyone
// who heard it can send.
func goodbyeAll(m *dns.Msg) *dns.Msg {
	g := new(dns.Msg)
	g.Response = true
	for _, rr := range append(append([]dns.RR{}, m.Answer...), m.Extra...) {
		rr = dns.Copy(rr)
		rr.Header().Ttl = 0
		g.Answer = append(g.Answer, rr)
	}
	return roundTrip(g)
}

// Item 2: a forged goodbye does not remove a trusted machine that still
// answers; the browser asks it first (RFC 6762 §10.5). A machine that
// really left is gone within two seconds.
func TestHostileForgedGoodbye(t *testing.T) {
	r := aclRecorder(t)
	ann := response("builder1", "b1", 22, signedTXT(t, "builder1", "0.1", fixtureKey(t), r.now), 120, "169.254.1.2")
	r.c.questions(r.now)
	if evs := r.feed(ann, "veth0"); !hasEvent(evs, Add, "builder1") {
		t.Fatalf("events %q", kinds(evs))
	}
	for round := range 5 {
		r.advance(10 * time.Second)
		r.c.handleFrom(goodbyeAll(ann), "veth0", netip.MustParseAddr("169.254.66.6"), r.now)
		if evs := r.c.tick(r.now); len(evs) != 0 {
			t.Fatalf("round %d: goodbye gave %q at once", round, kinds(evs))
		}
		r.advance(300 * time.Millisecond)
		q := r.c.questions(r.now)
		if q == nil || !slices.ContainsFunc(q.Question, func(q dns.Question) bool { return q.Name == "builder1."+svc && q.Qtype == dns.TypeTXT }) {
			t.Fatalf("round %d: the machine was not asked: %v", round, q)
		}
		// The machine answers what it is asked.
		r.advance(100 * time.Millisecond)
		if evs := r.feed(ann, "veth0"); len(evs) != 0 {
			t.Fatalf("round %d: answer gave %q", round, kinds(evs))
		}
		r.advance(3 * time.Second)
		r.c.questions(r.now)
		if evs := r.c.tick(r.now); len(evs) != 0 {
			t.Fatalf("round %d: a forged goodbye removed the machine: %q", round, kinds(evs))
		}
	}
	// A genuine goodbye: the machine is gone and answers nothing.
	r.advance(10 * time.Second)
	r.c.handle(goodbyeAll(ann), "veth0", r.now)
	var removed time.Duration
	for d := time.Duration(0); d <= 3*time.Second; d += 50 * time.Millisecond {
		r.c.questions(r.now.Add(d))
		if evs := r.c.tick(r.now.Add(d)); hasEvent(evs, Remove, "builder1") {
			removed = d
			break
		}
	}
	if removed == 0 || removed > 2*time.Second {
		t.Errorf("genuine goodbye took %s to remove the machine, want at most 2s", removed)
	}
}

// Item 3: an unsigned or foreign-signed announcement under a trusted
// machine's instance name does not replace it; it is listed apart, as
// an untrusted impostor, with the reason.
func TestHostileShadowing(t *testing.T) {
	stranger, err := pki.GenerateKey(pki.TypeECDSA, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, forged := range map[string]func(time.Time) []string{
		"unsigned":       func(time.Time) []string { return validTXT(t, "0.1") },
		"foreign-signed": func(now time.Time) []string { return signedTXT(t, "builder1", "0.1", stranger, now) },
	} {
		t.Run(name, func(t *testing.T) {
			r := aclRecorder(t)
			real := func() *dns.Msg {
				return response("builder1", "b1", 22, signedTXT(t, "builder1", "0.2", fixtureKey(t), r.now), 120, "169.254.1.2")
			}
			if evs := r.feed(real(), "veth0"); !hasEvent(evs, Add, "builder1") {
				t.Fatalf("events %q", kinds(evs))
			}
			for round := range 4 {
				r.advance(30 * time.Second)
				// The impostor sends its own records, cache-flush bit
				// set, over and over.
				evs := r.feed(response("builder1", "evilhost", 2222, forged(r.now), 120, "169.254.66.6"), "veth0")
				if hasEvent(evs, Remove, "builder1") || hasEvent(evs, Update, "builder1") {
					t.Fatalf("round %d: the impostor replaced the machine: %q", round, kinds(evs))
				}
				if round == 0 {
					i := slices.IndexFunc(evs, func(ev Event) bool { return ev.Kind == Add && ev.Announcement.Impostor })
					if i < 0 {
						t.Fatalf("impostor not listed: %q", kinds(evs))
					}
					if a := evs[i].Announcement; !strings.HasPrefix(a.TrustReason, ImpostorReason) || a.Port != 2222 {
						t.Errorf("impostor listed as %+v", a)
					}
				}
				r.advance(2 * time.Second)
				if evs := r.c.tick(r.now); hasEvent(evs, Remove, "builder1") {
					t.Fatalf("round %d: the machine went: %q", round, kinds(evs))
				}
				var got []string
				for _, a := range r.c.current() {
					got = append(got, fmt.Sprintf("%s/%d/%v", a.Instance, a.Port, a.Impostor))
				}
				if strings.Join(got, " ") != "builder1/22/false builder1/2222/true" {
					t.Fatalf("round %d: listing %q", round, got)
				}
				// The machine answers refresh queries as usual.
				r.c.handle(real(), "veth0", r.now)
				r.c.tick(r.now)
			}
			// The machine's own update still goes through, and the
			// impostor whose record it flushed leaves the listing.
			r.advance(time.Second)
			upd := response("builder1", "b1", 22, signedTXT(t, "builder1", "0.9", fixtureKey(t), r.now), 120, "169.254.1.2")
			evs := r.feed(upd, "veth0")
			if !hasEvent(evs, Update, "builder1") {
				t.Errorf("the machine's own update: %q", kinds(evs))
			}
			r.advance(2 * time.Second)
			r.c.tick(r.now)
			if cur := r.c.current(); len(cur) != 1 || cur[0].Load != 0.9 {
				t.Errorf("after the update: %+v", cur)
			}
		})
	}
}

// Item 4: the work one packet costs does not grow with the number of
// instances cached (counted in allocations, which follow the work done).
func TestHostilePerPacketWorkIndependentOfInstances(t *testing.T) {
	perPacket := func(instances int) float64 {
		r := aclRecorder(t)
		txt := validTXT(t, "0.1")
		for i := range instances {
			r.feed(response(fmt.Sprintf("i%d", i), fmt.Sprintf("h%d", i), 22, txt, 4500, "169.254.7.7"), "veth0")
		}
		r.c.questions(r.now)
		buf, err := response("one", "onehost", 22, txt, 4500, "169.254.7.8").Pack()
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		return testing.AllocsPerRun(50, func() {
			i++
			r.now = r.now.Add(10 * time.Millisecond)
			_ = r.c.receive(buf, "veth0", netip.Addr{}, r.now)
			r.c.questions(r.now)
			r.c.tick(r.now)
			r.c.nextWake(r.now)
		})
	}
	small, large := perPacket(10), perPacket(1000)
	if large > 2*small+20 {
		t.Errorf("%.0f allocations per packet with 1000 instances, %.0f with 10", large, small)
	}
}

// Item 4: the cache-flush bit on the service's PTR records (shared
// records, RFC 6762 §10.2) flushes nothing: one packet must not remove
// every other machine's PTR, nor cost a pass over all of them.
func TestHostilePTRFlushIgnored(t *testing.T) {
	r := aclRecorder(t)
	r.feed(response("builder1", "b1", 22, validTXT(t, "0.1"), 4500, "169.254.1.2"), "veth0")
	r.advance(2 * time.Second)
	m := new(dns.Msg)
	m.Response = true
	m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: svc, Rrtype: dns.TypePTR, Class: dns.ClassINET | 0x8000, Ttl: 4500}, Ptr: "evil." + svc}}
	r.feed(roundTrip(m), "veth0")
	r.advance(2 * time.Second)
	if evs := r.c.tick(r.now); hasEvent(evs, Remove, "builder1") {
		t.Fatalf("a PTR with the cache-flush bit removed another machine: %q", kinds(evs))
	}
}
