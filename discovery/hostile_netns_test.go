package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// attack is the helper `attack MODE IFACE INSTANCE SECONDS`: a hostile
// host on the LAN (issue 12).
//
//   - kill: sniff-and-kill, answering every record it hears for
//     INSTANCE with a TTL-0 copy, and sending such goodbyes every half
//     second besides;
//   - shadow: announcing unsigned records under INSTANCE with the
//     cache-flush bit, twice a second;
//   - orphans: 10,000 TXT and SRV records of instances no PTR names,
//     TTL 2^31-1, over and over.
func attack(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: attack MODE IFACE INSTANCE SECONDS")
	}
	mode, instance := args[0], args[2]
	ifi, err := net.InterfaceByName(args[1])
	if err != nil {
		return err
	}
	secs, err := strconv.Atoi(args[3])
	if err != nil {
		return err
	}
	mc, err := listen4("0.0.0.0:5353")
	if err != nil {
		return err
	}
	defer mc.closer.Close()
	if err := mc.join(ifi); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	packets := make(chan packet, 256)
	go mc.read(ctx, packets, func(any) {})
	send := func(m *dns.Msg) {
		if buf, err := m.Pack(); err == nil {
			mc.send(ifi, buf)
		}
	}
	svc := ServiceType + ".local."
	full := instance + "." + svc
	var heard []dns.RR // the victim's records, as last heard
	goodbyes := func() {
		if len(heard) == 0 {
			return
		}
		m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true}}
		for _, rr := range heard {
			rr = dns.Copy(rr)
			rr.Header().Ttl = 0
			m.Answer = append(m.Answer, rr)
		}
		send(m)
	}
	var orphans []*dns.Msg
	if mode == "orphans" {
		for i := 0; i < 10000; i += 16 {
			m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true}}
			for j := i; j < i+16; j++ {
				name := fmt.Sprintf("orphan%05d.%s", j, svc)
				m.Answer = append(m.Answer,
					&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1<<31 - 1}, Txt: []string{strings.Repeat("x", 100)}},
					&dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1<<31 - 1}, Port: 22, Target: fmt.Sprintf("o%05d.local.", j)})
			}
			orphans = append(orphans, m)
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	fmt.Println("attacking")
	sent := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			fmt.Printf("sent %d\n", sent)
			return nil
		case p := <-packets:
			m := new(dns.Msg)
			if m.Unpack(p.data) != nil || !m.Response {
				continue
			}
			var mine []dns.RR
			for _, rr := range append(m.Answer, m.Extra...) {
				n := strings.ToLower(rr.Header().Name)
				if rr.Header().Ttl > 0 && (n == strings.ToLower(full) || strings.HasPrefix(n, strings.ToLower(instance)+"-host.") ||
					strings.EqualFold(n, svc) && strings.EqualFold(rr.(*dns.PTR).Ptr, full)) {
					mine = append(mine, rr)
				}
			}
			if len(mine) > 0 && mode == "kill" {
				heard = mine
				goodbyes()
				sent++
			}
		case <-tick.C:
			switch mode {
			case "kill":
				if i%100 == 0 {
					goodbyes()
					sent++
				}
			case "shadow":
				if i%100 == 0 {
					m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true}}
					m.Answer = []dns.RR{
						&dns.PTR{Hdr: dns.RR_Header{Name: svc, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120}, Ptr: full},
						&dns.SRV{Hdr: dns.RR_Header{Name: full, Rrtype: dns.TypeSRV, Class: dns.ClassINET | 0x8000, Ttl: 120}, Port: 2222, Target: "evil.local."},
						&dns.TXT{Hdr: dns.RR_Header{Name: full, Rrtype: dns.TypeTXT, Class: dns.ClassINET | 0x8000, Ttl: 120},
							Txt: []string{"txtvers=1", "systems=x86_64-linux", "user=offload", "host-key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c", "addrs=169.254.66.6"}},
						&dns.A{Hdr: dns.RR_Header{Name: "evil.local.", Rrtype: dns.TypeA, Class: dns.ClassINET | 0x8000, Ttl: 120}, A: net.IPv4(169, 254, 66, 6)},
					}
					send(m)
					sent++
				}
			case "orphans":
				send(orphans[i%len(orphans)])
				sent++
			}
		}
	}
}

// TestNetnsHostileLAN: a third host attacks `discover --watch` (trust
// acl) watching a signed machine: forged goodbyes (sniff-and-kill) do
// not remove it, an unsigned impostor under its name is listed apart
// and does not replace it, and a flood of orphan records does not keep
// a new machine out. A genuine goodbye still removes the machine, long
// before its TTL would run out.
func TestNetnsHostileLAN(t *testing.T) {
	nw := netns.New(t, 4)
	h := nw.Hosts()
	victimHost, attacker, newHost, master := h[0], h[1], h[2], h[3]
	key := absTestdata(t, "signing-key.sec")
	cache := filepath.Join(t.TempDir(), "discover.json")
	watch := master.Start(t, discoverBin(t), "discover", "--watch", "--format", "json", "--acl", absTestdata(t, "acl"), "--cache", cache)
	victim := victimHost.Start(t, os.Args[0], "discovery-helper", "publish", "victim", victimHost.Iface, victimHost.Addr.String(), key)
	netns.WaitFor(t, 30*time.Second, func() bool { return countEvents(watchLines(t, watch), "add", "victim") == 1 })
	lost := func() bool {
		return countEvents(watchLines(t, watch), "remove", "victim") > 0
	}
	trustedInSnapshot := func() bool {
		s, err := ReadSnapshot(cache)
		if err != nil {
			return false
		}
		for _, a := range s.Trusted() {
			if a.Instance == "victim" {
				return true
			}
		}
		return false
	}
	run := func(mode string, secs int) *netns.Proc {
		p := attacker.Start(t, os.Args[0], "discovery-helper", "attack", mode, attacker.Iface, "victim", strconv.Itoa(secs))
		netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(p.Output(), "attacking") || p.Exited() })
		return p
	}

	// Item 2: sniff-and-kill for 8 s, while the victim re-announces
	// (SIGUSR1) now and then so there is something to kill.
	p := run("kill", 8)
	for range 4 {
		time.Sleep(2 * time.Second)
		if err := victim.Stop(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		if lost() || !trustedInSnapshot() {
			t.Fatalf("forged goodbyes removed the machine:\n%s", watch.Output())
		}
	}
	if err := p.Wait(10 * time.Second); err != nil || !strings.Contains(p.Output(), "sent") {
		t.Fatalf("attacker: %v\n%s", err, p.Output())
	}
	t.Logf("kill: %s", strings.TrimSpace(p.Output()))
	time.Sleep(2 * time.Second)
	if lost() {
		t.Fatalf("forged goodbyes removed the machine:\n%s", watch.Output())
	}

	// Item 3: an unsigned impostor under the victim's name.
	p = run("shadow", 5)
	netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(watch.Output(), ImpostorReason) })
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if lost() || !trustedInSnapshot() {
		t.Fatalf("the impostor replaced the machine:\n%s", watch.Output())
	}
	for _, m := range watchLines(t, watch) {
		if m["instance"] == "victim" && m["trusted"] == false && m["impostor"] != true {
			t.Fatalf("the machine was listed untrusted: %v", m)
		}
	}

	// Item 1: an orphan flood, and a new machine during it.
	p = run("orphans", 10)
	time.Sleep(2 * time.Second)
	start := time.Now()
	newHost.Start(t, os.Args[0], "discovery-helper", "publish", "newcomer", newHost.Iface, newHost.Addr.String(), key)
	netns.WaitFor(t, 15*time.Second, func() bool { return countEvents(watchLines(t, watch), "add", "newcomer") == 1 })
	t.Logf("newcomer listed %v after it started, during the flood", time.Since(start).Round(time.Millisecond))
	if err := p.Wait(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	if lost() {
		t.Fatalf("the flood removed the machine:\n%s", watch.Output())
	}

	// A genuine goodbye still removes it, long before its TTL runs out.
	if err := victim.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	netns.WaitFor(t, netns.GoodbyeWithin, lost)
	t.Logf("genuine goodbye: removed after %v", time.Since(start).Round(time.Millisecond))
}
