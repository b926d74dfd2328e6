//go:build bench

package bench

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	if agent == "" || master == "" {
		s.add(Row{Measure: "discovery", Ours: NotMeasured("guix-offload-agent or guix-offload does not build in this tree")})
		return
	}
	testenv.LookPath(t, "avahi-browse", "avahi-utils")

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
	av := startAvahi(t, browser)
	av.stop()

	discover := func(args ...string) func() (io.ReadCloser, func(), error) {
		return func() (io.ReadCloser, func(), error) {
			cmd := browser.Command(s.ctx, master, append([]string{"discover", "--acl", acl, "--format", "json"}, args...)...)
			return startPiped(cmd)
		}
	}
	browse := func() (io.ReadCloser, func(), error) {
		return startPiped(av.command(s.ctx, "avahi-browse", "-t", "-r", "-p", "_guix-offload._tcp"))
	}
	// One untimed round first: the agents' first announcements are over
	// and every browser starts from the same settled LAN.
	if l := timeListing(t, s.ctx, discover("--timeout", "20s"), namesIn(prefix), want, 30*time.Second); !l.all {
		t.Logf("warm-up: discover listed %d of %d agents", l.found, n)
	}

	var oneShot, watch, avahiT []listing
	for run := 0; run < runs; run++ {
		if s.ctx.Err() != nil {
			t.Fatal("interrupted")
		}
		oneShot = append(oneShot, timeListing(t, s.ctx, discover("--timeout", "10s"), namesIn(prefix), want, 15*time.Second))
		watch = append(watch, timeListing(t, s.ctx, discover("--watch"), namesIn(prefix), want, 15*time.Second))
		av.restart(t) // a cold cache, as a fresh discover has
		avahiT = append(avahiT, timeListing(t, s.ctx, browse, resolvedIn(prefix), want, 15*time.Second))
		av.stop()
		t.Logf("run %d: discover %v (%d), discover --watch %v (%d), avahi-browse -t %v (%d)", run+1,
			oneShot[run].took.Round(time.Millisecond), oneShot[run].found,
			watch[run].took.Round(time.Millisecond), watch[run].found,
			avahiT[run].took.Round(time.Millisecond), avahiT[run].found)
	}
	ref := listingCell("avahi-browse -t -r -p", avahiT, n)
	refTimes := completeTimes(avahiT)
	for _, o := range []struct {
		name string
		l    []listing
		note string
	}{
		{"`guix-offload discover` (one-shot)", oneShot, "one-shot: browses until answers stop for 1.5 s (--quiet), then prints; the time is when the full list is out"},
		{"`guix-offload discover --watch`", watch, "time of the last `add` event"},
	} {
		ours := completeTimes(o.l)
		s.add(Row{
			Measure:   fmt.Sprintf("discovery of %d agents: %s", n, o.name),
			Ours:      listingCell(o.name, o.l, n),
			Reference: ref,
			Ratio:     Ratio(ours.Median(), refTimes.Median(), Lower),
			Note:      o.note,
		})
	}
	s.note("%d hosts (network namespaces) on one bridge in a switch namespace, 169.254.0.0/16 only; each runs guix-offload-agent with its own signing key; the browser host's ACL authorizes them all, so `discover` verifies every signature (default trust policy). avahi-daemon (with its own dbus-daemon) runs on the browser host and is restarted before each avahi-browse, so both start with an empty cache. Times run from starting the browser to the moment all %d instances were listed (avahi: resolved `=` lines); a miss is a run that ended without all of them; medians and worst over the complete runs.", n+1, n)
}

// startPiped starts cmd with its standard output piped and returns the
// pipe and a function that kills cmd's process group and waits for it.
func startPiped(cmd *exec.Cmd) (io.ReadCloser, func(), error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return out, func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}, nil
}

// completeTimes returns the times of the runs that listed everything.
func completeTimes(ls []listing) Sample {
	var s Sample
	for _, l := range ls {
		if l.all {
			s = append(s, l.took.Seconds())
		}
	}
	return s
}

// listingCell says median, worst and misses of a browser's runs.
func listingCell(name string, ls []listing, n int) string {
	c := completeTimes(ls)
	misses := len(ls) - len(c)
	least := n
	for _, l := range ls {
		least = min(least, l.found)
	}
	text := fmt.Sprintf("%s: median %s, worst %s over %d runs, %d misses", name, Seconds(c.Median()), Seconds(c.Max()), len(ls), misses)
	if misses > 0 {
		text += fmt.Sprintf(" (fewest listed: %d of %d)", least, n)
	}
	return text
}
