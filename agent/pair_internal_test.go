package agent

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestPairingWindowOnlyToItsLAN: a connection made to an address of
// another network this machine is on is closed at once, and does not
// take the window's one attempt; one made to an announced address is
// handed over.
func TestPairingWindowOnlyToItsLAN(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	l := onlyTo{ln, []netip.Addr{netip.MustParseAddr("127.0.0.2")}}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()

	other, err := net.Dial("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := other.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection to another address: read %v, want EOF (closed)", err)
	}
	select {
	case c := <-accepted:
		t.Fatalf("connection to another address handed over: %v", c.LocalAddr())
	default:
	}

	lan, err := net.Dial("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	defer lan.Close()
	select {
	case c := <-accepted:
		if c == nil {
			t.Fatal("Accept failed")
		}
		defer c.Close()
		if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
			t.Errorf("handed over a connection to %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection to the announced address not handed over")
	}
}
