package discovery

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// BenchmarkListThousand is the CPU part of issue 15's scale row without
// the network: reading an ACL of 1,000 keys, then parsing and judging
// 1,000 announcements, each signed by its own key, the way `discover
// --domain` does after one zone transfer: [Unicast] parses the records
// and has the policy check signatures on every core, then [Browse]
// judges each announcement.
func BenchmarkListThousand(b *testing.B) {
	const n = 1000
	now := time.Now().Truncate(time.Second)
	hostKey := testHostKey(b, 1)
	var keys []*pki.PublicKey
	type rec struct {
		instance string
		txt      []string
		addr     netip.Addr
	}
	var recs []rec
	for i := range n {
		key, err := pki.GenerateKey(pki.TypeECDSA, nil)
		if err != nil {
			b.Fatal(err)
		}
		keys = append(keys, key.Public())
		addr := netip.AddrFrom4([4]byte{169, 254, byte(100 + i/250), byte(1 + i%250)})
		a := &Announcement{Instance: fmt.Sprintf("wa-%04d", i), Addresses: []netip.Addr{addr}, Load: 0.25, FreeDisk: 52341, Time: now}
		a.Systems, a.User, a.HostKey, a.Port, a.ParallelBuilds, a.Speed = []string{"x86_64-linux", "i686-linux"}, "offload", hostKey, 22, 4, 1
		if err := a.Sign(key); err != nil {
			b.Fatal(err)
		}
		recs = append(recs, rec{a.Instance, a.TXT(), addr})
	}
	aclText := pki.NewACL(keys...).MarshalSexp()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		acl, err := pki.ParseACL(aclText, "acl")
		if err != nil {
			b.Fatal(err)
		}
		policy := &ACLPolicy{ACL: acl, File: "acl"}
		u := &Unicast{Trust: policy}
		d := &uDomain{name: "builders.test.", service: ServiceName("builders.test"), inst: map[string]*uInstance{}}
		rs := make(map[string]*resolved, len(recs))
		var names []string
		for _, r := range recs {
			n := InstanceName(r.instance, "builders.test")
			names = append(names, n)
			rs[n] = &resolved{
				srv:   &dns.SRV{Port: 22, Target: r.instance + ".builders.test."},
				txt:   &dns.TXT{Txt: r.txt},
				addrs: []netip.Addr{r.addr},
			}
		}
		u.prepareAll(context.Background(), d, rs)
		for _, n := range names {
			for _, ev := range u.compare(d, n, rs[n]) {
				if ok, reason := policy.Judge(ev.Announcement, now); !ok {
					b.Fatal(reason)
				}
			}
		}
		if len(d.inst) != n {
			b.Fatalf("listed %d of %d", len(d.inst), n)
		}
	}
}
