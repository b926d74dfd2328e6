// Package discovery finds Guix build machines on the LAN: the
// `_guix-offload._tcp` DNS-SD announcement that guix-offload-agent sends,
// a multicast DNS browser that reports machines as they appear, change
// and go, the trust policies that decide whether a master may use them,
// and the snapshot file the offload hook reads.
//
// Start with [Announcement]: [ParseTXT] decodes a received TXT record,
// [Announcement.TXT] encodes one, [Announcement.Sign] and
// [Announcement.Verify] handle the signature (a Guix signing key from
// internal/pki over [Announcement.SignedHash]). On the master, [Lookup]
// answers "what is there now" and [Browse] streams [Event]s (add, update,
// remove, and ignore for malformed announcements); [Watch] also keeps a
// [Snapshot] file current for the hook ([ReadSnapshot]). A [Policy]
// ([ACLPolicy], [TOFUPolicy], [AnyPolicy]) judges each machine.
//
// Why our own browser: no Go mDNS library reports all of additions, TXT
// changes and departures (goodbyes and expiry), so [MDNS] keeps its own
// record cache on github.com/miekg/dns with its own clock. It queries
// with exponential backoff and known-answer suppression, refreshes
// records at 80–95 % of their TTL, resolves what is missing, honours
// goodbyes and the cache-flush bit, and merges an instance seen on
// several interfaces and addresses into one machine. Everything it keeps
// is budgeted in bytes — the whole cache, records of instances no PTR
// names (which go first), and each sender's share — with TTLs capped at
// 75 minutes and at most [MaxInstances] instances: when full it drops
// orphan records first, then unusable instances, then ones the trust
// policy rejects ([MDNS].Trust), never accepted ones. Accepted machines
// are protected from the rest of the LAN: a goodbye for one is confirmed
// by asking it (RFC 6762 §10.5), and another sender's announcement under
// its name is listed apart as an impostor ([Announcement].Impostor)
// instead of replacing it. The work per packet does not grow with the
// number of instances. Packets come from anyone on the LAN: a panic that
// one trips (in decoding, the cache or a [Policy]) is logged as one
// warning and that packet or machine dropped, so the hook that browses
// still answers guix-daemon. [Source] is the seam for other
// origins (a unicast DNS zone, a static file).
package discovery
