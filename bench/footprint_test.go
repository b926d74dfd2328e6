//go:build bench

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// runFootprint is issue 7 row 5: the agent's resident memory and CPU
// seconds over an idle minute, against avahi-daemon doing the same job
// (publishing one service), both at once on one bridge.
func runFootprint(t *testing.T, s *suite) {
	agent := s.buildBinary(t, "guix-offload-agent")
	if agent == "" {
		s.add(Row{Measure: "agent footprint", Ours: NotMeasured("guix-offload-agent does not build in this tree")})
		return
	}
	testenv.LookPath(t, "avahi-publish", "avahi-utils")
	net := netns.New(t, 2)
	remember(t, net)
	ours, theirs := net.Hosts()[0], net.Hosts()[1]
	dir := t.TempDir()
	files := makeAgentFiles(t, dir, "bench-footprint")
	p := startAgent(t, ours, agent, dir, "bench-footprint", files)
	av := theirs.StartAvahi(t)
	// The same kind of record the agent sends: its TXT keys, a host key,
	// a signing key and a signature of the same sizes.
	txt := []string{"txtvers=1", "systems=x86_64-linux,i686-linux", "parallel-builds=2", "speed=1.0",
		"user=offload", "host-key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGuixOffloadBenchHostKeyPlaceholder0000000",
		"load=0.10", "free-disk=50000", "addrs=" + theirs.Addr.String(),
		"signing-key=" + strings.Repeat("k", 52), "ts=1796000000", "sig=" + strings.Repeat("s", 88)}
	pp := av.Start(t, "avahi-publish", append([]string{"-s", "bench-footprint-avahi", "_guix-offload._tcp", "22"}, txt...)...)
	netns.WaitFor(t, 30*time.Second, func() bool {
		return strings.Contains(p.Output(), "advertising") && strings.Contains(pp.Output(), "Established")
	})
	// Let both finish their start-up announcements before the clock runs.
	select {
	case <-time.After(3 * time.Second):
	case <-s.ctx.Done():
		t.Fatal("interrupted")
	}
	pids := map[string]int{"agent": p.Pid(), "avahi-publish": pp.Pid()}
	for _, name := range []string{"avahi-daemon", "dbus-daemon"} {
		pids[name] = pidIn(t, theirs.Name, name)
	}
	before := map[string]ProcUsage{}
	for name, pid := range pids {
		u, err := ReadProc(pid)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		before[name] = u
	}
	t.Logf("idle for %v", *flagIdle)
	select {
	case <-time.After(*flagIdle):
	case <-s.ctx.Done():
		t.Fatal("interrupted")
	}
	after := map[string]ProcUsage{}
	for name, pid := range pids {
		u, err := ReadProc(pid)
		if err != nil {
			t.Fatalf("%s: %v (did it exit?)", name, err)
		}
		after[name] = u
	}
	cpu := func(names ...string) float64 {
		var sum float64
		for _, n := range names {
			sum += after[n].CPU - before[n].CPU
		}
		return sum
	}
	rss := func(names ...string) float64 {
		var sum float64
		for _, n := range names {
			sum += float64(after[n].RSS)
		}
		return sum
	}
	stack := []string{"avahi-daemon", "dbus-daemon", "avahi-publish"}
	idle := Seconds(flagIdle.Seconds())
	s.add(Row{Measure: "agent resident memory (VmRSS) after an idle " + idle,
		Ours: "guix-offload-agent " + Bytes(rss("agent")), Reference: "avahi-daemon " + Bytes(rss("avahi-daemon")),
		Ratio: Ratio(rss("agent"), rss("avahi-daemon"), Lower),
		Note:  fmt.Sprintf("peak (VmHWM): ours %s, avahi-daemon %s", Bytes(float64(after["agent"].HWM)), Bytes(float64(after["avahi-daemon"].HWM)))})
	s.add(Row{Measure: "agent resident memory, against the whole Avahi stack it needs",
		Ours: "guix-offload-agent " + Bytes(rss("agent")), Reference: "avahi-daemon + dbus-daemon + avahi-publish " + Bytes(rss(stack...)),
		Ratio: Ratio(rss("agent"), rss(stack...), Lower)})
	cpuRatio := func(ours, ref float64) string {
		if ours == 0 && ref == 0 {
			return "— (both below the 10 ms resolution)"
		}
		if ref == 0 {
			return "— (the reference used less than 10 ms)"
		}
		return Ratio(ours, ref, Lower)
	}
	cpuText := func(v float64) string { return fmt.Sprintf("%.2f s", v) }
	s.add(Row{Measure: "agent CPU time (user + system) over an idle " + idle,
		Ours: "guix-offload-agent " + cpuText(cpu("agent")), Reference: "avahi-daemon " + cpuText(cpu("avahi-daemon")),
		Ratio: cpuRatio(cpu("agent"), cpu("avahi-daemon")),
		Note:  "resolution 10 ms (clock ticks of /proc/PID/stat)"})
	s.add(Row{Measure: "agent CPU time, against the whole Avahi stack it needs",
		Ours: "guix-offload-agent " + cpuText(cpu("agent")), Reference: "avahi-daemon + dbus-daemon + avahi-publish " + cpuText(cpu(stack...)),
		Ratio: cpuRatio(cpu("agent"), cpu(stack...))})
	s.note("two hosts (network namespaces) on one bridge, idle together for %s: guix-offload-agent announcing a signed record (it also measures load and free space and re-announces when they move), and avahi-daemon (no chroot helper, its own dbus-daemon, started by internal/testenv/netns) with `avahi-publish -s` of a record with the same keys and sizes. VmRSS from /proc/PID/status at the end, CPU = utime + stime from /proc/PID/stat, end minus start.", idle)
}

// pidIn returns the pid of the one process named comm in network
// namespace ns.
func pidIn(t *testing.T, ns, comm string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", ns, err)
	}
	found := 0
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		name, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(name)) == comm {
			if found != 0 {
				t.Fatalf("two %s processes in %s: %d and %d", comm, ns, found, pid)
			}
			found = pid
		}
	}
	if found == 0 {
		t.Fatalf("no %s process in %s", comm, ns)
	}
	return found
}
