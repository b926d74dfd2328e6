package discovery

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Test-only views of the record cache.

// handle takes a received response from an unknown sender.
func (c *cache) handle(m *dns.Msg, iface string, now time.Time) {
	c.handleFrom(m, iface, netip.Addr{}, now)
}

// current returns the announcements reported and not removed, sorted by
// instance, ignored ones and impostors included.
func (c *cache) current() []*Announcement {
	out := make([]*Announcement, 0, len(c.state)+len(c.impostors))
	for _, st := range c.state {
		out = append(out, st.ann)
	}
	for _, st := range c.impostors {
		out = append(out, st.ann)
	}
	slices.SortFunc(out, func(a, b *Announcement) int {
		return strings.Compare(a.ListKey(), b.ListKey())
	})
	return out
}
