//go:build bench

package bench

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// floodHelper is the suite binary run as `bench.test bench-flood IFACE
// SECONDS`, inside the attacker's namespace: it multicasts, for SECONDS,
// 10,000 bogus instances of _guix-offload._tcp (PTR, SRV, well-formed
// unsigned TXT, A) and 10,000 orphan TXT and SRV records no PTR names,
// with TTL 2^31-1, over and over, at about 1,000 packets a second, and
// prints how many packets it sent.
func floodHelper(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: bench-flood IFACE SECONDS")
	}
	ifi, err := net.InterfaceByName(args[0])
	if err != nil {
		return err
	}
	secs, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	c, err := net.ListenPacket("udp4", "0.0.0.0:5353")
	if err != nil {
		return err
	}
	defer c.Close()
	p := ipv4.NewPacketConn(c)
	if err := p.SetMulticastInterface(ifi); err != nil {
		return err
	}
	_ = p.SetMulticastTTL(255)
	svc := "_guix-offload._tcp.local."
	var packets [][]byte
	pack := func(m *dns.Msg) error {
		b, err := m.Pack()
		if err == nil {
			packets = append(packets, b)
		}
		return err
	}
	txt := []string{"txtvers=1", "systems=x86_64-linux", "parallel-builds=2", "user=offload",
		"host-key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGuixOffloadBenchHostKeyPlaceholder0000000", "addrs=169.254.66.6"}
	for i := 0; i < 10000; i += 8 {
		m := new(dns.Msg)
		m.Response = true
		for j := i; j < i+8; j++ {
			inst := fmt.Sprintf("bogus%05d.%s", j, svc)
			host := fmt.Sprintf("bogus%05d.local.", j)
			m.Answer = append(m.Answer,
				&dns.PTR{Hdr: dns.RR_Header{Name: svc, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 4500}, Ptr: inst},
				&dns.SRV{Hdr: dns.RR_Header{Name: inst, Rrtype: dns.TypeSRV, Class: dns.ClassINET | 0x8000, Ttl: 120}, Port: 22, Target: host},
				&dns.TXT{Hdr: dns.RR_Header{Name: inst, Rrtype: dns.TypeTXT, Class: dns.ClassINET | 0x8000, Ttl: 4500}, Txt: txt},
				&dns.A{Hdr: dns.RR_Header{Name: host, Rrtype: dns.TypeA, Class: dns.ClassINET | 0x8000, Ttl: 120}, A: net.IPv4(169, 254, 66, 6)})
		}
		if err := pack(m); err != nil {
			return err
		}
	}
	for i := 0; i < 10000; i += 16 {
		m := new(dns.Msg)
		m.Response = true
		for j := i; j < i+16; j++ {
			inst := fmt.Sprintf("orphan%05d.%s", j, svc)
			m.Answer = append(m.Answer,
				&dns.TXT{Hdr: dns.RR_Header{Name: inst, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1<<31 - 1}, Txt: []string{strings.Repeat("x", 40)}},
				&dns.SRV{Hdr: dns.RR_Header{Name: inst, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1<<31 - 1}, Port: 22, Target: fmt.Sprintf("o%05d.local.", j)})
		}
		if err := pack(m); err != nil {
			return err
		}
	}
	group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	end := time.Now().Add(time.Duration(secs) * time.Second)
	sent := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		for range 10 {
			if _, err := p.WriteTo(packets[sent%len(packets)], nil, group); err == nil {
				sent++
			}
		}
		<-tick.C
	}
	fmt.Printf("sent %d packets\n", sent)
	return nil
}

// runHostile is issue 12's row: `discover --watch` (with its snapshot
// for the hook) under a flood of 10,000 bogus instances and 10,000
// orphan records from a third host: CPU per packet and peak memory
// against avahi-daemon browsing the same LAN, how long a trusted agent
// started during the flood takes to be listed, and whether the trusted
// machine already known ever left the snapshot.
func runHostile(t *testing.T, s *suite) {
	agent := s.buildBinary(t, "guix-offload-agent")
	master := s.buildBinary(t, "guix-offload")
	if agent == "" || master == "" {
		s.add(Row{Measure: "discovery under a flood", Ours: NotMeasured("the commands do not build in this tree")})
		return
	}
	testenv.LookPath(t, "avahi-browse", "avahi-utils")
	const floodSecs = 20
	nw := netns.New(t, 4)
	remember(t, nw)
	h := nw.Hosts()
	attacker, known, late, browser := h[0], h[1], h[2], h[3]
	dir := t.TempDir()
	kf, lf := makeAgentFiles(t, dir, "bench-known"), makeAgentFiles(t, dir, "bench-late")
	acl := filepath.Join(dir, "acl")
	writeACL(t, acl, []*pki.PublicKey{kf.public, lf.public})
	ka := startAgent(t, known, agent, dir, "bench-known", kf)
	av := browser.StartAvahi(t)
	ab := av.Start(t, "avahi-browse", "-r", "-p", "_guix-offload._tcp")
	snap := filepath.Join(dir, "snapshot.json")
	w := browser.Start(t, master, "discover", "--watch", "--format", "json", "--acl", acl, "--cache", snap)
	listed := func(instance string) bool {
		for _, l := range strings.Split(w.Output(), "\n") {
			var ev struct {
				Event, Instance string
				Trusted         bool
			}
			if json.Unmarshal([]byte(l), &ev) == nil && ev.Instance == instance && ev.Trusted && (ev.Event == "add" || ev.Event == "update") {
				return true
			}
		}
		return false
	}
	netns.WaitFor(t, 60*time.Second, func() bool { return listed("bench-known") || ka.Exited() || w.Exited() })
	if !listed("bench-known") {
		t.Fatalf("the known agent was never listed:\n%s\n%s", ka.Output(), w.Output())
	}
	_ = ab
	avahiPid := pidIn(t, browser.Name, "avahi-daemon")
	before, err1 := ReadProc(w.Pid())
	avBefore, err2 := ReadProc(avahiPid)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	flood := attacker.Start(t, os.Args[0], "bench-flood", attacker.Iface, strconv.Itoa(floodSecs))
	start := time.Now()
	// A trusted agent starts 3 s into the flood.
	time.Sleep(3 * time.Second)
	lateStart := time.Now()
	startAgent(t, late, agent, dir, "bench-late", lf)
	var lateListed time.Duration
	polls, missing := 0, 0
	for time.Since(start) < floodSecs*time.Second && !flood.Exited() {
		if lateListed == 0 && listed("bench-late") {
			lateListed = time.Since(lateStart)
		}
		if sn, err := discovery.ReadSnapshot(snap); err == nil {
			polls++
			ok := false
			for _, a := range sn.Trusted() {
				ok = ok || a.Instance == "bench-known"
			}
			if !ok {
				missing++
			}
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-s.ctx.Done():
			t.Fatal("interrupted")
		}
	}
	if err := flood.Wait(30 * time.Second); err != nil {
		t.Fatalf("flood: %v\n%s", err, flood.Output())
	}
	var sent int
	fmt.Sscanf(strings.TrimSpace(flood.Output()), "sent %d packets", &sent)
	after, err1 := ReadProc(w.Pid())
	avAfter, err2 := ReadProc(avahiPid)
	if err1 != nil || err2 != nil || sent == 0 {
		t.Fatalf("%v %v, %d packets sent", err1, err2, sent)
	}
	perPacket := func(b, a ProcUsage) float64 { return (a.CPU - b.CPU) / float64(sent) }
	s.add(Row{Measure: "discover --watch CPU per packet under a flood",
		Ours: "guix-offload " + Seconds(perPacket(before, after)), Reference: "avahi-daemon " + Seconds(perPacket(avBefore, avAfter)),
		Ratio: Ratio(perPacket(before, after), perPacket(avBefore, avAfter), Lower),
		Note:  fmt.Sprintf("%d packets in %d s", sent, floodSecs)})
	s.add(Row{Measure: "discover --watch peak memory (VmHWM) under the flood",
		Ours: "guix-offload " + Bytes(float64(after.HWM)), Reference: "goal 64 MiB (avahi-daemon " + Bytes(float64(avAfter.HWM)) + ")",
		Ratio: Ratio(float64(after.HWM), 64<<20, Lower)})
	lateText := "never (in " + Seconds(float64(floodSecs-3)) + ")"
	if lateListed > 0 {
		lateText = Seconds(lateListed.Seconds())
	}
	s.add(Row{Measure: "trusted agent started during the flood, listed after",
		Ours: lateText, Reference: "goal 5 s", Ratio: Ratio(lateListed.Seconds(), 5, Lower)})
	s.add(Row{Measure: "trusted machine missing from the snapshot during the flood",
		Ours: fmt.Sprintf("%d of %d reads", missing, polls), Reference: "goal 0"})
	s.note("four hosts on one bridge: an attacker multicasting, for %d s at about 1,000 packets a second, 10,000 bogus instances (PTR, SRV, unsigned TXT, A; 8 a packet) and 10,000 orphan TXT and SRV records with TTL 2^31-1 (16 a packet), round and round; a trusted agent known before the flood; one started 3 s into it; and the browser host running `discover --watch --cache` (trust acl) beside avahi-daemon with `avahi-browse -r` on the same service. CPU = utime + stime from /proc/PID/stat over the flood, divided by the packets sent; the snapshot read every 100 ms.", floodSecs)
}
