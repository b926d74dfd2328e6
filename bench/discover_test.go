//go:build bench

package bench

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// runDiscover is issue 7 row 4: how long `guix-offload discover` takes to
// list all of 32 agents running in namespaces, over 20 runs (median,
// worst, misses), against `avahi-browse -t -r -p` on the same set.
func runDiscover(t *testing.T, s *suite) {
	n, runs := *flagAgents, *flagDiscovery
	agent := s.buildBinary(t, "guix-offload-agent")
	master := s.buildBinary(t, "guix-offload")
	if agent == "" {
		s.add(Row{Measure: "discovery", Ours: NotMeasured("guix-offload-agent does not build in this tree (the reference browses our agents)")})
		return
	}
	testenv.LookPath(t, "avahi-browse", "avahi-utils")
	haveDiscover := master != "" && exec.Command(master, "discover", "--help").Run() == nil

	// n agent hosts and one browser host on one bridge.
	net := netns.New(t, n+1)
	remember(t, net)
	hosts := net.Hosts()
	browser := hosts[n]
	dir := t.TempDir()
	prefix := "bench-agent-"
	want := map[string]bool{}
	var keys []*pki.PublicKey
	var procs []*netns.Proc
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s%02d", prefix, i)
		files := makeAgentFiles(t, dir, name)
		keys = append(keys, files.public)
		want[name] = true
		procs = append(procs, startAgent(t, hosts[i], agent, dir, name, files))
	}
	acl := filepath.Join(dir, "acl")
	writeACL(t, acl, keys)
	netns.WaitFor(t, 60*time.Second, func() bool {
		for _, p := range procs {
			if p.Exited() {
				t.Fatalf("agent exited: %s", p.Output())
			}
			if !strings.Contains(p.Output(), "advertising") {
				return false
			}
		}
		return true
	})
	av := browser.StartAvahi(t)
	av.Stop()

	discover := func(args ...string) func(ctx context.Context) *exec.Cmd {
		return func(ctx context.Context) *exec.Cmd {
			return browser.Command(ctx, master, append([]string{"discover", "--acl", acl, "--format", "json"}, args...)...)
		}
	}
	browse := func(ctx context.Context) *exec.Cmd {
		return av.Command(ctx, "avahi-browse", "-t", "-r", "-p", "_guix-offload._tcp")
	}
	if !haveDiscover {
		discover = func(...string) func(ctx context.Context) *exec.Cmd {
			return func(ctx context.Context) *exec.Cmd { return exec.CommandContext(ctx, "true") }
		}
	}
	// One untimed round first: the agents' first announcements are over
	// and every browser starts from the same settled LAN.
	if l := timeListing(t, s.ctx, nil, discover("--timeout", "20s"), namesIn(prefix), want, 30*time.Second); !l.All {
		t.Logf("warm-up: discover listed %d of %d agents", l.Found, n)
	}

	var oneShot, watch, avahiCold, avahiWarm []Listing
	const limit = 15 * time.Second
	for run := 0; run < runs; run++ {
		if s.ctx.Err() != nil {
			t.Fatal("interrupted")
		}
		oneShot = append(oneShot, timeListing(t, s.ctx, nil, discover("--timeout", "10s"), namesIn(prefix), want, limit))
		watch = append(watch, timeListing(t, s.ctx, nil, discover("--watch"), namesIn(prefix), want, limit))
		// Cold: avahi-daemon starts with an empty cache inside the timed
		// window, as a fresh discover does; warm: it has been running,
		// as on a desktop.
		avahiCold = append(avahiCold, timeListing(t, s.ctx, func() { av.Restart(t) }, browse, resolvedIn(prefix), want, limit))
		avahiWarm = append(avahiWarm, timeListing(t, s.ctx, nil, browse, resolvedIn(prefix), want, limit))
		av.Stop()
		t.Logf("run %d: discover %v (%d), discover --watch %v (%d), avahi cold %v (%d), avahi warm %v (%d)", run+1,
			oneShot[run].Took.Round(time.Millisecond), oneShot[run].Found,
			watch[run].Took.Round(time.Millisecond), watch[run].Found,
			avahiCold[run].Took.Round(time.Millisecond), avahiCold[run].Found,
			avahiWarm[run].Took.Round(time.Millisecond), avahiWarm[run].Found)
	}
	cold := "avahi-daemon started fresh + avahi-browse -t -r -p"
	warm := "avahi-browse -t -r -p, avahi-daemon already running"
	for _, o := range []struct {
		name string
		l    []Listing
		note string
	}{
		{"`guix-offload discover` (one-shot)", oneShot, "one-shot: browses until answers stop for 1.5 s (--quiet) and then prints, so the time is when the full list is out"},
		{"`guix-offload discover --watch`", watch, "time of the last `add` event"},
	} {
		ours := CompleteTimes(o.l)
		oursCell := ListingCell(o.l, n)
		if !haveDiscover {
			oursCell = NotMeasured("`guix-offload discover` has not landed")
		}
		for _, ref := range []struct {
			name string
			l    []Listing
		}{{cold, avahiCold}, {warm, avahiWarm}} {
			s.add(Row{
				Measure:   fmt.Sprintf("discovery of %d agents: %s vs %s", n, o.name, ref.name),
				Ours:      oursCell,
				Reference: ListingCell(ref.l, n),
				Ratio:     Ratio(ours.Median(), CompleteTimes(ref.l).Median(), Lower),
				Note:      o.note,
			})
		}
	}
	s.note("%d hosts (network namespaces) on one bridge in a switch namespace, 169.254.0.0/16 only; each of %d runs guix-offload-agent with its own signing key; on the last, the browser host, the ACL authorizes them all, so `discover` checks every signature (the default trust policy). avahi-daemon (with its own dbus-daemon, started by internal/testenv/netns) runs on the browser host only for its measures. Times run from starting the browser (cold Avahi: from starting avahi-daemon) to the moment all %d instances were listed (Avahi: resolved `=` lines); a miss is a run that ended or hit 15 s without all of them; median and worst are over the complete runs. A warm avahi-daemon answers from the cache it filled by listening all along; a fresh `discover` process starts empty (the hook reads the snapshot that `discover --watch --cache` keeps, so it never waits for this).", n+1, n, n)
}
