package agent

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

const discoverPkg = "github.com/guix-offload/guix-offload/cmd/guix-offload"

// discover runs `guix-offload discover --format json ARGS…` on h and
// returns what it listed.
func discover(t *testing.T, h *netns.Host, args ...string) []*discovery.Announcement {
	t.Helper()
	bin := netns.BuildBinary(t, discoverPkg)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := h.Command(ctx, bin, append([]string{"discover", "--format", "json", "--timeout", "6s"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("guix-offload discover on %s: %v\n%s", h.Name, err, stderr.String())
	}
	var as []*discovery.Announcement
	if err := json.Unmarshal(out, &as); err != nil {
		t.Fatalf("guix-offload discover output: %v\n%s", err, out)
	}
	return as
}

func find(as []*discovery.Announcement, instance string) []*discovery.Announcement {
	var out []*discovery.Announcement
	for _, a := range as {
		if a.Instance == instance {
			out = append(out, a)
		}
	}
	return out
}

// TestAgentsSeenByDiscover: two agents, one signed by a key in the
// master's ACL and one unsigned, are each listed once by `guix-offload
// discover` on a third host, with the fields they announce and the trust
// judgment of the default policy.
func TestAgentsSeenByDiscover(t *testing.T) {
	n := netns.New(t, 3)
	a, c, master := n.Hosts()[0], n.Hosts()[1], n.Hosts()[2]
	_, hostKeyA := startAgent(t, a, "builder-a", "--speed", "2.5", "--features", "big-parallel", "--parallel-builds", "3")
	_, hostKeyC := startAgent(t, c, "builder-c", "--signing-key", filepath.Join(t.TempDir(), "none.sec"), "--overload-threshold", "#f")
	acl, _ := filepath.Abs("testdata/acl")

	var as []*discovery.Announcement
	netns.WaitFor(t, 30*time.Second, func() bool {
		as = discover(t, master, "--acl", acl)
		return len(find(as, "builder-a")) > 0 && len(find(as, "builder-c")) > 0
	})
	if len(find(as, "builder-a")) != 1 || len(find(as, "builder-c")) != 1 {
		t.Fatalf("discover listed %d builder-a and %d builder-c; want each once", len(find(as, "builder-a")), len(find(as, "builder-c")))
	}
	ba, bc := find(as, "builder-a")[0], find(as, "builder-c")[0]
	if !ba.Trusted || ba.HostKey != hostKeyA || ba.Port != 2222 || ba.Speed != 2.5 || ba.ParallelBuilds != 3 ||
		!slices.Equal(ba.Features, []string{"big-parallel"}) || ba.User != "offload" || ba.SigningKey == "" ||
		!slices.Contains(ba.Addresses, a.Addr) || ba.Load < 0 || ba.FreeDisk <= 0 ||
		ba.OverloadThreshold == nil || *ba.OverloadThreshold != 0.8 {
		t.Errorf("builder-a as discovered: %+v", ba)
	}
	if bc.Trusted || bc.TrustReason == "" || bc.HostKey != hostKeyC || bc.SigningKey != "" || bc.OverloadThreshold != nil {
		t.Errorf("unsigned builder-c as discovered: trusted %v (%s), %+v", bc.Trusted, bc.TrustReason, bc)
	}
	t.Logf("builder-c: %s", bc.TrustReason)
}

// TestAgentGoodbyeSeenByDiscover: `discover --watch` on another host
// reports remove after the agent's SIGTERM, long before the records' TTL
// would have run out.
func TestAgentGoodbyeSeenByDiscover(t *testing.T) {
	n := netns.New(t, 2)
	a, master := n.Hosts()[0], n.Hosts()[1]
	bin := netns.BuildBinary(t, discoverPkg)
	watch := master.Start(t, bin, "discover", "--watch", "--format", "json", "--trust", "any")
	agent, _ := startAgent(t, a, "builder-a")
	event := func(kind string) bool {
		for _, line := range strings.Split(watch.Output(), "\n") {
			var ev struct {
				Event    string `json:"event"`
				Instance string `json:"instance"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == kind && ev.Instance == "builder-a" {
				return true
			}
		}
		return false
	}
	netns.WaitFor(t, 20*time.Second, func() bool { return event("add") })
	start := time.Now()
	if err := agent.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	netns.WaitFor(t, netns.GoodbyeWithin, func() bool { return event("remove") })
	t.Logf("remove seen %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if err := agent.Wait(netns.GoodbyeWithin); err != nil {
		t.Errorf("agent after SIGTERM: %v", err)
	}
}

// TestAgentBackAfterLinkLossSeenByDiscover: while host A's link is down a
// fresh discover on B does not list it; once it is back, it does again.
func TestAgentBackAfterLinkLossSeenByDiscover(t *testing.T) {
	n := netns.New(t, 2)
	a, master := n.Hosts()[0], n.Hosts()[1]
	agent, _ := startAgent(t, a, "builder-a")
	netns.WaitFor(t, 30*time.Second, func() bool { return len(find(discover(t, master, "--trust", "any"), "builder-a")) == 1 })
	if err := a.SetLink(false); err != nil {
		t.Fatal(err)
	}
	netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(agent.Output(), "no usable network interface") })
	if got := find(discover(t, master, "--trust", "any"), "builder-a"); len(got) != 0 {
		t.Fatalf("builder-a listed while its link is down: %+v", got[0])
	}
	if err := a.SetLink(true); err != nil {
		t.Fatal(err)
	}
	netns.WaitFor(t, 30*time.Second, func() bool { return len(find(discover(t, master, "--trust", "any"), "builder-a")) == 1 })
}

// TestAgentLoadUpdateSeenByDiscover: when the load moves, `discover
// --watch` on another host reports an update carrying the new load: the
// agent re-announces at its next refresh (1 s here), long before the
// browser would ask again by itself (at 80 % of the 120 s TTL).
func TestAgentLoadUpdateSeenByDiscover(t *testing.T) {
	n := netns.New(t, 2)
	a, master := n.Hosts()[0], n.Hosts()[1]
	root := fakeRoot(t, map[string]string{"proc/loadavg": "0.00 0.00 0.00 1/100 1000\n", "gnu/store/.keep": ""})
	bin := netns.BuildBinary(t, discoverPkg)
	watch := master.Start(t, bin, "discover", "--watch", "--format", "json", "--trust", "any")
	startAgent(t, a, "builder-a", "--detect-root", root, "--store", "/gnu/store", "--refresh-interval", "1s")
	loads := func(kind string) []float64 {
		var out []float64
		for _, line := range strings.Split(watch.Output(), "\n") {
			var ev struct {
				Event    string  `json:"event"`
				Instance string  `json:"instance"`
				Load     float64 `json:"load"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == kind && ev.Instance == "builder-a" {
				out = append(out, ev.Load)
			}
		}
		return out
	}
	netns.WaitFor(t, 20*time.Second, func() bool { return slices.Equal(loads("add"), []float64{0}) })
	st := &machineState{root: root}
	// 64 on however many cores this machine has is well above 0.1.
	st.setLoad(t, "64.00")
	// About a second on an idle machine; the bound leaves room for a
	// loaded one.
	netns.WaitFor(t, 20*time.Second, func() bool {
		u := loads("update")
		return len(u) > 0 && u[len(u)-1] > 0.1
	})
	if n := len(loads("add")); n != 1 {
		t.Errorf("%d add events; want the update alone, not a new add", n)
	}
}
