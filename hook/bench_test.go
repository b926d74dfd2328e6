package hook

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/candidates"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/scm"
)

// BenchmarkDecide measures what a request costs before any network:
// reading machines.scm and the discovery snapshot, the down records, merging,
// matching and ranking — for 1, 10 and 100 machines (half static, half
// discovered when there are several).
//
// "fresh" is a new hook process with the machines file unchanged since the
// last evaluation (its evaluation is remembered in the state directory, the
// usual case); "edited" evaluates machines.scm and reads the snapshot
// every time, as after an edit of the one and any rewrite of the other
// (the signatures' judgments are kept, and the announcements unchanged);
// "unverified" is "edited" with every signature checked again, which
// happens only when the ACL changes (and for an announcement the hook
// has not seen before); "rewritten" reads the snapshot again but not
// machines.scm, the usual case on a busy LAN, where the watcher rewrites
// the snapshot whenever a load changes.
func BenchmarkDecide(b *testing.B) {
	for _, mode := range []string{"fresh", "edited", "unverified", "rewritten"} {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/machines=%d", mode, n), func(b *testing.B) { benchDecide(b, mode, n) })
		}
	}
}

func benchDecide(b *testing.B, mode string, n int) {
	{
		{
			dir := b.TempDir()
			cfg := DefaultConfig()
			cfg.StateDirectory = filepath.Join(dir, "state")
			cfg.MachinesFile = filepath.Join(dir, "machines.scm")
			cfg.Snapshot = filepath.Join(dir, "cache.json")
			cfg.BrowseTimeout = 0
			cfg.ACL, _ = filepath.Abs("testdata/acl")
			nStatic := (n + 1) / 2
			writeBenchMachines(b, cfg.MachinesFile, nStatic)
			writeBenchSnapshot(b, cfg.Snapshot, n-nStatic, nStatic)
			st := State{Dir: cfg.StateDirectory}
			if err := st.MarkDown("m0:22", "refused", time.Now().Add(time.Hour)); err != nil {
				b.Fatal(err)
			}
			old := time.Now().Add(-time.Hour)
			for _, f := range []string{cfg.MachinesFile, cfg.Snapshot} {
				if err := os.Chtimes(f, old, old); err != nil {
					b.Fatal(err)
				}
			}
			r := Request{Willing: true, System: "x86_64-linux", Drv: "/gnu/store/x.drv", Features: []string{"kvm"}}
			ctx := context.Background()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if mode == "edited" || mode == "unverified" {
					os.Remove(filepath.Join(cfg.StateDirectory, "cache", "machines-scm"))
				}
				if mode != "fresh" {
					os.Remove(filepath.Join(cfg.StateDirectory, "cache", "discovery"))
				}
				if mode == "unverified" {
					os.Remove(filepath.Join(cfg.StateDirectory, "cache", "judgments"))
				}
				var src candidates.Loader // a new hook process
				now := time.Now()
				static, disc, _, err := src.Load(ctx, cfg.Candidates(os.Getenv), now)
				if err != nil {
					b.Fatal(err)
				}
				if len(static)+len(disc) != n {
					b.Fatalf("%d machines, want %d", len(static)+len(disc), n)
				}
				p := Decide(r, candidates.Merge(static, disc), st.Down(now))
				if p.Matching == 0 {
					b.Fatal("nothing matches")
				}
			}
			// On a shared machine wall time says more about the neighbours
			// than about us: report the CPU time too.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		}
	}
}

func writeBenchMachines(b *testing.B, path string, n int) {
	var s strings.Builder
	s.WriteString("(use-modules (gnu))\n;; generated\n(list\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, ` (build-machine
  (name "m%d") (port 22) (systems '("x86_64-linux" "i686-linux")) (user "offload")
  (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDs8rR0lXyZk6iQ2F4kOcbq6uMFIk2x1sBlHPo2kYmbJ m%d")
  (private-key "/root/.ssh/id_ed25519") (parallel-builds 4) (speed %d.5) (features '("kvm" "big-parallel")))
`, i, i, i%4)
	}
	s.WriteString(")\n")
	if err := os.WriteFile(path, []byte(s.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

// writeBenchSnapshot writes a discovery snapshot of n trusted machines named
// d<offset>….
func writeBenchSnapshot(b *testing.B, path string, n, offset int) {
	key, err := pki.ReadPrivateKey("testdata/signing-key.sec")
	if err != nil {
		b.Fatal(err)
	}
	s := &discovery.Snapshot{Updated: time.Now()}
	for i := 0; i < n; i++ {
		a := &discovery.Announcement{Machine: scm.DefaultMachine(), Instance: fmt.Sprintf("d%d", offset+i),
			Load: 0.1 * float64(i%10), FreeDisk: 50000, Trusted: true, TrustReason: "signed", Source: "mdns:eth0", Seen: time.Now()}
		a.Name = fmt.Sprintf("169.254.1.%d", i+1)
		a.Systems = []string{"x86_64-linux"}
		a.Features = []string{"kvm"}
		a.User = "offload"
		a.HostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDs8rR0lXyZk6iQ2F4kOcbq6uMFIk2x1sBlHPo2kYmbJ"
		a.ParallelBuilds = 4
		a.Addresses = []netip.Addr{netip.MustParseAddr(a.Name)}
		a.Time = time.Now()
		if err := a.Sign(key); err != nil {
			b.Fatal(err)
		}
		s.Machines = append(s.Machines, a)
	}
	if err := discovery.WriteSnapshot(path, s); err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the user and system CPU time of this process in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
