package hook

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/scm"
)

// BenchmarkDecideBusy measures one postpone decision of a running hook
// with n machines in machines.scm, half of them for another system (they
// cannot match), the rest all busy (every slot held): the slot locks,
// the down records and the matching, without the network. This is the
// most expensive decision that touches no network.
func BenchmarkDecideBusy(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("machines=%d", n), func(b *testing.B) { benchDecideBusy(b, n) })
	}
}

func benchDecideBusy(b *testing.B, n int) {
	cfg := DefaultConfig()
	cfg.StateDirectory, cfg.Store = b.TempDir(), b.TempDir()
	cfg.ACL, cfg.RealGuix = "testdata/acl", "/bin/sh"
	var ms []*scm.Machine
	var held []*Slot
	for i := 0; i < n; i++ {
		sys := "x86_64-linux"
		if i%2 == 1 {
			sys = "aarch64-linux"
		}
		m := mach(scm.OriginStatic, fmt.Sprintf("m%d", i), 22, "ssh-ed25519 AAAA", []string{sys}, nil, 1)
		m.ParallelBuilds = 2
		ms = append(ms, m)
		if sys != "x86_64-linux" {
			continue
		}
		for j := 0; j < m.ParallelBuilds; j++ {
			s, err := AcquireSlot(cfg.StateDirectory, m.Key(), m.ParallelBuilds)
			if err != nil || s == nil {
				b.Fatal(s, err)
			}
			held = append(held, s)
		}
	}
	b.Cleanup(func() {
		for _, s := range held {
			s.Release()
		}
	})
	st := State{Dir: cfg.StateDirectory}
	// Another system's machines are down: their records need not be read.
	for i := 1; i < n; i += 2 {
		if err := st.MarkDown(ms[i].Key(), "refused", time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	o := &Options{Sources: &fakeSources{static: ms}, Now: time.Now, Env: func(string) string { return "" }}
	s := &server{o: o, out: &lineWriter{w: io.Discard}, cfg: cfg, state: st}
	s.args.System = "x86_64-linux"
	s.local.systems = LocalSystems(s.args.System)
	req := Request{Willing: true, System: "x86_64-linux", Drv: "/gnu/store/x.drv"}
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if a, _, msg := s.decide(ctx, req); a != Postpone {
			b.Fatalf("%s: %s", a, msg)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
