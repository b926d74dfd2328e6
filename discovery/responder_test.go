package discovery

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"

	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// respondRace is the helper `respond-race IFACE ADDR`: a responder on
// IFACE whose TXT record changes every millisecond for two seconds (and
// on, until 100 answers came, on a loaded machine) while queries for it
// arrive, by multicast and by legacy unicast, from the same host. Every
// answer must carry a whole TXT record, one of those set. Run under
// -race (the test binary is), a data race ends it with status 66.
func respondRace(ifname, addr string) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	ip, err := netipParse(addr)
	if err != nil {
		return err
	}
	text := func(i int) []string {
		return []string{"n=" + strconv.Itoa(i), "check=" + strings.Repeat(strconv.Itoa(i%10), 1+i%200)}
	}
	r, err := Respond(ResponderConfig{Instance: "racer", Host: "racer-host.local.", Port: 22, TXT: text(0),
		Addrs: ip, Interfaces: []net.Interface{*ifi}})
	if err != nil {
		return err
	}
	defer r.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ctx.Err() == nil; i++ {
			r.SetText(text(i))
			time.Sleep(time.Millisecond)
		}
	}()
	// Legacy unicast queries from an ephemeral port: answered every
	// time.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip[0].AsSlice()})
	if err != nil {
		return err
	}
	defer c.Close()
	var answers, bad atomic.Int64
	var badText atomic.Value
	check := func(buf []byte) {
		m := new(dns.Msg)
		if m.Unpack(buf) != nil || !m.Response {
			return
		}
		for _, rr := range append(m.Answer, m.Extra...) {
			txt, ok := rr.(*dns.TXT)
			if !ok || !strings.HasPrefix(strings.ToLower(txt.Hdr.Name), "racer.") {
				continue
			}
			answers.Add(1)
			n, err := strconv.Atoi(strings.TrimPrefix(txt.Txt[0], "n="))
			if err != nil || len(txt.Txt) != 2 || txt.Txt[1] != text(n)[1] {
				bad.Add(1)
				badText.Store(fmt.Sprint(txt.Txt))
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 9000)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			check(buf[:n])
		}
	}()
	// Multicast queries from port 5353, answers read from the group.
	mc, err := listen4("0.0.0.0:5353")
	if err != nil {
		return err
	}
	defer mc.closer.Close()
	if err := mc.join(ifi); err != nil {
		return err
	}
	packets := make(chan packet, 64)
	wg.Add(1)
	go func() {
		defer wg.Done()
		mc.read(ctx, packets, func(any) {})
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case p := <-packets:
				check(p.data)
			case <-ctx.Done():
				return
			}
		}
	}()
	group := net.UDPAddrFromAddrPort(mdnsGroup4)
	for i := 0; ctx.Err() == nil && (time.Since(start) < 2*time.Second || answers.Load() < 100); i++ {
		q := new(dns.Msg)
		q.Id = uint16(i)
		qt := []uint16{dns.TypeTXT, dns.TypeANY, dns.TypePTR}[i%3]
		name := "racer." + ServiceType + ".local."
		if qt == dns.TypePTR {
			name = ServiceType + ".local."
		}
		q.Question = []dns.Question{{Name: name, Qtype: qt, Qclass: dns.ClassINET}}
		buf, _ := q.Pack()
		_, _ = c.WriteTo(buf, group)
		mc.send(ifi, buf)
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	c.Close()
	mc.closer.Close()
	wg.Wait()
	if bad.Load() > 0 {
		return fmt.Errorf("%d of %d answers carried a torn TXT record, such as %v", bad.Load(), answers.Load(), badText.Load())
	}
	if answers.Load() < 100 {
		return fmt.Errorf("only %d answers", answers.Load())
	}
	fmt.Printf("ok %d answers\n", answers.Load())
	return nil
}

// Issue 12, item 8: the agent's responder has no data race between
// SetText and answering queries (libp2p/zeroconf's had), and every
// answer carries a whole TXT record.
func TestNetnsResponderSetTextWhileQueried(t *testing.T) {
	nw := netns.New(t, 1)
	h := nw.Hosts()[0]
	p := h.Start(t, os.Args[0], "discovery-helper", "respond-race", h.Iface, h.Addr.String())
	if err := p.Wait(60 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	if !strings.Contains(p.Output(), "ok ") {
		t.Fatalf("output:\n%s", p.Output())
	}
	t.Log(strings.TrimSpace(p.Output()))
}

func netipParse(s string) ([]netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, err
	}
	return []netip.Addr{a}, nil
}

// Announced closes with the first announcement, after the probes (at
// most a second), and not before: a pairing window is said open only
// once masters can find it.
func TestResponderAnnounced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := newResponder(ResponderConfig{Instance: "b", Host: "b.local.", Port: 22, TXT: []string{"a=1"},
			Addrs: []netip.Addr{netip.MustParseAddr("169.254.1.2")}, Interfaces: []net.Interface{{Index: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.loop(ctx, make(chan packet))
		closed := func() bool {
			select {
			case <-r.Announced():
				return true
			default:
				return false
			}
		}
		// Three probes 250 ms apart, the first within 250 ms.
		time.Sleep(3*probeInterval - time.Millisecond)
		synctest.Wait()
		if closed() {
			t.Fatal("announced while probing")
		}
		time.Sleep(probeInterval + time.Millisecond)
		synctest.Wait()
		if !closed() {
			t.Fatal("not announced a second after starting")
		}
		cancel()
		<-r.loopDone
	})
}

// The responder's answers alone, without sockets: what each question
// gets, known answers suppressed.
func TestResponderAnswers(t *testing.T) {
	r, err := newResponder(ResponderConfig{Instance: "My Builder", Host: "mb.local.", Port: 22, TXT: []string{"a=1"},
		Addrs: []netip.Addr{netip.MustParseAddr("169.254.1.2"), netip.MustParseAddr("fe80::2")}, Interfaces: []net.Interface{{Index: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	names := func(rrs []dns.RR) string {
		var s []string
		for _, rr := range rrs {
			s = append(s, dns.TypeToString[rr.Header().Rrtype]+" "+rr.Header().Name)
		}
		return strings.Join(s, ", ")
	}
	inst := `My\ Builder.` + ServiceType + ".local."
	for _, c := range []struct {
		q           dns.Question
		ans, extras string
	}{
		{dns.Question{Name: ServiceType + ".local.", Qtype: dns.TypePTR}, "PTR " + ServiceType + ".local.", "SRV " + inst + ", TXT " + inst + ", A mb.local., AAAA mb.local."},
		{dns.Question{Name: strings.ToUpper(inst), Qtype: dns.TypeTXT}, "TXT " + inst, ""},
		{dns.Question{Name: inst, Qtype: dns.TypeANY}, "SRV " + inst + ", TXT " + inst, "A mb.local., AAAA mb.local."},
		{dns.Question{Name: "mb.local.", Qtype: dns.TypeAAAA}, "AAAA mb.local.", ""},
		{dns.Question{Name: "_services._dns-sd._udp.local.", Qtype: dns.TypePTR}, "PTR _services._dns-sd._udp.local.", ""},
		{dns.Question{Name: "other.local.", Qtype: dns.TypeANY}, "", ""},
	} {
		ans, extra := r.answer(c.q, true)
		if names(ans) != c.ans || names(extra) != c.extras {
			t.Errorf("%v: answers %q extras %q", c.q, names(ans), names(extra))
		}
	}
	ans, _ := r.answer(dns.Question{Name: ServiceType + ".local.", Qtype: dns.TypePTR}, false)
	known := dns.Copy(ans[0])
	known.Header().Ttl = 100
	if got := suppressKnown(ans, []dns.RR{known}); len(got) != 0 {
		t.Errorf("a known answer with most of its TTL left was repeated")
	}
	known.Header().Ttl = 10
	ans, _ = r.answer(dns.Question{Name: ServiceType + ".local.", Qtype: dns.TypePTR}, false)
	if got := suppressKnown(ans, []dns.RR{known}); len(got) != 1 {
		t.Errorf("a known answer near its end was suppressed")
	}
}

// FuzzResponderHandle: packets from anyone on the LAN never make the
// responder panic.
func FuzzResponderHandle(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, port uint16) {
		r, err := newResponder(ResponderConfig{Instance: "b", Host: "b.local.", Port: 22, TXT: []string{"a=1"},
			Addrs: []netip.Addr{netip.MustParseAddr("169.254.1.2")}, Interfaces: []net.Interface{{Index: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		r.ifaces[1] = net.Interface{Index: 1}
		r.handle(packet{data: data, index: 1, from: netip.AddrPortFrom(netip.MustParseAddr("169.254.9.9"), port)}, false)
	})
}
