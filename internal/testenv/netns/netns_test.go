package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The test binary doubles as the program run inside the namespaces (one
// process per namespace): `TESTBINARY netns-helper VERB ARGS…`.
func TestMain(m *testing.M) {
	if len(os.Args) >= 2 && os.Args[1] == "netns-helper" {
		if err := helper(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "netns-helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	CleanupBinaries()
	os.Exit(code)
}

func helper(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: netns-helper VERB ARGS…")
	}
	switch args[0] {
	case "udp-echo": // udp-echo ADDR:PORT — answer every datagram, forever
		c, err := net.ListenPacket("udp", args[1])
		if err != nil {
			return err
		}
		fmt.Println("listening")
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return err
			}
			if _, err := c.WriteTo(buf[:n], from); err != nil {
				return err
			}
		}
	case "udp-ping": // udp-ping ADDR:PORT [TIMEOUT] — send until answered, by default at most 5 s
		c, err := net.Dial("udp", args[1])
		if err != nil {
			return err
		}
		timeout := 5 * time.Second
		if len(args) > 2 {
			if timeout, err = time.ParseDuration(args[2]); err != nil {
				return err
			}
		}
		buf := make([]byte, 1500)
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := c.Read(buf)
			if err == nil && string(buf[:n]) == "ping" {
				fmt.Println("pong from", c.RemoteAddr())
				return nil
			}
		}
		return fmt.Errorf("no answer within %v", timeout)
	case "mcast-recv": // mcast-recv GROUP:PORT IFACE — print the first datagram
		addr, err := net.ResolveUDPAddr("udp", args[1])
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(args[2])
		if err != nil {
			return err
		}
		c, err := net.ListenMulticastUDP("udp", ifi, addr)
		if err != nil {
			return err
		}
		fmt.Println("listening")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1500)
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		fmt.Printf("received %q from %v\n", buf[:n], from)
		return nil
	case "mcast-send": // mcast-send GROUP:PORT IFACE MESSAGE — every 50 ms, at most 10 s
		group := netip.MustParseAddrPort(args[1])
		ifi, err := net.InterfaceByName(args[2])
		if err != nil {
			return err
		}
		c, err := net.ListenPacket("udp", ":0")
		if err != nil {
			return err
		}
		if group.Addr().Is4() {
			if err := ipv4.NewPacketConn(c).SetMulticastInterface(ifi); err != nil {
				return err
			}
		} else if err := ipv6.NewPacketConn(c).SetMulticastInterface(ifi); err != nil {
			return err
		}
		dst := net.UDPAddrFromAddrPort(group)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if _, err := c.WriteTo([]byte(args[3]), dst); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown verb %q", args[0])
}

func TestHostsReachEachOther(t *testing.T) {
	n := New(t, 2)
	a, b := n.Hosts()[0], n.Hosts()[1]
	if a.Addr == b.Addr || !n.Prefix.Contains(a.Addr) || !n.Prefix.Contains(b.Addr) {
		t.Fatalf("addresses %v, %v; want two distinct addresses in %v", a.Addr, b.Addr, n.Prefix)
	}
	llB, err := b.LinkLocal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		addr string
	}{
		{"ipv4", b.Addr.String()},
		{"ipv6-link-local", llB.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := net.JoinHostPort(tc.addr, "7007")
			echo := b.Start(t, os.Args[0], "netns-helper", "udp-echo", dst)
			WaitFor(t, 5*time.Second, func() bool { return strings.Contains(echo.Output(), "listening") })
			// The zone of a link-local address names the interface, which
			// has a different name on a.
			dst = strings.Replace(dst, "%"+b.Iface, "%"+a.Iface, 1)
			out, err := a.Command(t.Context(), os.Args[0], "netns-helper", "udp-ping", dst).CombinedOutput()
			if err != nil {
				t.Fatalf("udp-ping %s from %s: %v\n%s", dst, a.Name, err, out)
			}
			if !strings.Contains(string(out), "pong") {
				t.Fatalf("udp-ping output %q; want a pong", out)
			}
		})
	}
}

func TestMulticastReachesOtherHost(t *testing.T) {
	n := New(t, 3)
	a, b, c := n.Hosts()[0], n.Hosts()[1], n.Hosts()[2]
	for _, group := range []string{"224.0.0.251:5454", "[ff02::fb]:5454"} {
		t.Run(group, func(t *testing.T) {
			recvB := b.Start(t, os.Args[0], "netns-helper", "mcast-recv", group, b.Iface)
			recvC := c.Start(t, os.Args[0], "netns-helper", "mcast-recv", group, c.Iface)
			WaitFor(t, 5*time.Second, func() bool {
				return strings.Contains(recvB.Output(), "listening") && strings.Contains(recvC.Output(), "listening")
			})
			a.Start(t, os.Args[0], "netns-helper", "mcast-send", group, a.Iface, "hello from "+a.Name)
			for _, r := range []*Proc{recvB, recvC} {
				if err := r.Wait(10 * time.Second); err != nil {
					t.Fatalf("receiver: %v\n%s", err, r.Output())
				}
				if !strings.Contains(r.Output(), "hello from "+a.Name) {
					t.Errorf("receiver output %q; want the message", r.Output())
				}
			}
		})
	}
}

func TestSetLink(t *testing.T) {
	n := New(t, 2)
	a, b := n.Hosts()[0], n.Hosts()[1]
	echo := b.Start(t, os.Args[0], "netns-helper", "udp-echo", net.JoinHostPort(b.Addr.String(), "7007"))
	WaitFor(t, 5*time.Second, func() bool { return strings.Contains(echo.Output(), "listening") })
	ping := func(timeout string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		out, err := a.Command(ctx, os.Args[0], "netns-helper", "udp-ping", net.JoinHostPort(b.Addr.String(), "7007"), timeout).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := b.SetLink(false); err != nil {
		t.Fatal(err)
	}
	if err := ping("1s"); err == nil {
		t.Fatal("ping answered while the link was down")
	}
	if _, err := b.LinkLocal(); err == nil {
		t.Error("link-local address still there while the link is down")
	}
	if err := b.SetLink(true); err != nil {
		t.Fatal(err)
	}
	if err := ping("5s"); err != nil {
		t.Fatalf("ping after the link came back: %v", err)
	}
}

func TestNamesAreShortAndCleanedUp(t *testing.T) {
	var names []string
	t.Run("net", func(t *testing.T) {
		n := New(t, 3)
		names = append(names, n.Switch)
		for _, h := range n.Hosts() {
			for _, name := range []string{h.Iface, h.Port, n.Bridge} {
				if len(name) > 15 {
					t.Errorf("interface name %q longer than 15 characters", name)
				}
			}
			names = append(names, h.Name)
		}
	})
	out, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range out {
		for _, name := range names {
			if e.Name() == name {
				t.Errorf("namespace %s still exists after cleanup", name)
			}
		}
	}
}

func TestBuildBinaryCaches(t *testing.T) {
	p1 := BuildBinary(t, "github.com/guix-offload/guix-offload/cmd/guix-offload-agent")
	p2 := BuildBinary(t, "github.com/guix-offload/guix-offload/cmd/guix-offload-agent")
	if p1 != p2 {
		t.Errorf("second build went to %s, first to %s; want one cached build", p2, p1)
	}
	if fi, err := os.Stat(p1); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("built program %s: %v", p1, err)
	}
}

// TestSweepStale: the namespaces of a test process that died before its
// cleanup (killed by its timeout) are deleted by the next New; those of
// live processes are left alone.
func TestSweepStale(t *testing.T) {
	ipPath := "ip"
	net := New(t, 1) // skips without root or ip
	// A pid that is gone: a process that ran and was reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	stale := fmt.Sprintf("gh000000p%d-0", dead)
	alive := fmt.Sprintf("gh000000p%d-0", os.Getppid())
	for _, name := range []string{stale, alive} {
		if out, err := exec.Command(ipPath, "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
	}
	t.Cleanup(func() {
		for _, name := range []string{stale, alive} {
			_ = exec.Command(ipPath, "netns", "delete", name).Run()
		}
	})
	New(t, 1)
	if _, err := os.Stat("/run/netns/" + stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale namespace %s still there (%v)", stale, err)
	}
	if _, err := os.Stat("/run/netns/" + alive); err != nil {
		t.Errorf("namespace %s of a live process removed: %v", alive, err)
	}
	if _, err := os.Stat("/run/netns/" + net.Switch); err != nil {
		t.Errorf("this process's own namespace %s removed: %v", net.Switch, err)
	}
}

// TestSubnets: hosts on two subnets reach each other through the router
// by unicast; multicast DNS's group stays on its subnet.
func TestSubnets(t *testing.T) {
	left, right := Subnets(t, 2, 1)
	a, b, far := left.Hosts()[0], left.Hosts()[1], right.Hosts()[0]
	if left.Prefix.Bits() != 24 || right.Prefix.Bits() != 24 || left.Prefix.Overlaps(right.Prefix) ||
		!left.Prefix.Contains(a.Addr) || !right.Prefix.Contains(far.Addr) {
		t.Fatalf("prefixes %s and %s, addresses %s and %s", left.Prefix, right.Prefix, a.Addr, far.Addr)
	}
	dst := net.JoinHostPort(a.Addr.String(), "7007")
	echo := a.Start(t, os.Args[0], "netns-helper", "udp-echo", dst)
	WaitFor(t, 5*time.Second, func() bool { return strings.Contains(echo.Output(), "listening") })
	if out, err := far.Command(t.Context(), os.Args[0], "netns-helper", "udp-ping", dst).CombinedOutput(); err != nil || !strings.Contains(string(out), "pong") {
		t.Fatalf("udp-ping %s from the other subnet: %v\n%s", dst, err, out)
	}

	group := "224.0.0.251:5454"
	near := b.Start(t, os.Args[0], "netns-helper", "mcast-recv", group, b.Iface)
	beyond := far.Start(t, os.Args[0], "netns-helper", "mcast-recv", group, far.Iface)
	WaitFor(t, 5*time.Second, func() bool {
		return strings.Contains(near.Output(), "listening") && strings.Contains(beyond.Output(), "listening")
	})
	a.Start(t, os.Args[0], "netns-helper", "mcast-send", group, a.Iface, "hello from "+a.Name)
	if err := near.Wait(10 * time.Second); err != nil || !strings.Contains(near.Output(), "hello from "+a.Name) {
		t.Fatalf("receiver on the same subnet: %v\n%s", err, near.Output())
	}
	// mcast-recv gives up 10 s after it started listening.
	if err := beyond.Wait(20 * time.Second); err == nil || strings.Contains(beyond.Output(), "hello") {
		t.Fatalf("multicast crossed the router: %v\n%s", err, beyond.Output())
	}
}
