package bind

import (
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// TestStart: named serves the zone and takes a signed update from
// nsupdate, the reference client.
func TestStart(t *testing.T) {
	n := netns.New(t, 1)
	s := Start(t, n.Hosts()[0], Options{Records: []string{"b._dns-sd._udp IN PTR @"}})
	if out := s.Dig(t, "b._dns-sd._udp."+s.Zone, "PTR"); strings.TrimSpace(out) != s.Zone {
		t.Errorf("browse domain PTR: %q", out)
	}
	if out, err := s.NSUpdate("update add x._guix-offload._tcp." + s.Zone + " 60 TXT \"a=1\""); err != nil {
		t.Fatalf("nsupdate: %v\n%s", err, out)
	}
	if out := s.Dig(t, "x._guix-offload._tcp."+s.Zone, "TXT"); strings.TrimSpace(out) != `"a=1"` {
		t.Errorf("after update: %q", out)
	}
	// Outside the granted names: refused.
	if out, err := s.NSUpdate("update add www." + s.Zone + " 60 A 192.0.2.1"); err == nil {
		t.Errorf("update outside the policy accepted: %s", out)
	}
}
