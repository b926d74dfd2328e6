package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Multicast DNS group addresses and port (RFC 6762).
var (
	mdnsGroup4 = netip.MustParseAddrPort("224.0.0.251:5353")
	mdnsGroup6 = netip.MustParseAddrPort("[ff02::fb]:5353")
)

// ErrUnknownInterface is wrapped by the error of [MDNS.Run] when an
// interface it was asked to browse on does not exist.
var ErrUnknownInterface = errors.New("no such network interface")

// maxPacket bounds what one query we send may hold (RFC 6762 §17: fit
// the interface MTU, which is 1,500 on the LANs we serve).
const maxPacket = 1400

// MDNS is the multicast DNS [Source]: it browses for [ServiceType] on the
// link of each chosen interface, over IPv4 and IPv6, and keeps its own
// record cache. Its sockets share port 5353 with avahi-daemon or any other
// responder on the same host (SO_REUSEADDR and SO_REUSEPORT).
type MDNS struct {
	// Interfaces are the interface names to browse on; empty means every
	// interface that is up, multicast-capable and not loopback. The list
	// is re-read every few seconds, so interfaces that come up (or come
	// back) later are joined.
	Interfaces []string
	// Domain is the DNS-SD domain; empty means "local.".
	Domain string
	// Service is the service type browsed; empty means [ServiceType].
	// (Pairing windows are another type; their TXT records are not
	// announcements and arrive as ignored ones, raw record kept.)
	Service string
	// Logger receives warnings (malformed announcements, floods); nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Trust, when set, is the policy the browser judges announcements
	// with. Run uses it to choose what to drop when its budget is spent
	// (unusable instances first, then ones the policy rejects, never
	// accepted ones; so a flood of well-formed but untrusted
	// announcements cannot crowd out real machines), and to protect
	// accepted machines: goodbyes for them are confirmed, and another
	// announcement under their name that the policy rejects is reported
	// apart with Impostor set. Nil counts every well-formed announcement
	// as accepted, and protects none.
	Trust Policy
}

type packet struct {
	data  []byte
	iface string
	index int
	// src is the sender's address, from its address and port.
	src  netip.Addr
	from netip.AddrPort
}

type mdnsConn struct {
	v4     *ipv4.PacketConn
	v6     *ipv6.PacketConn
	closer net.PacketConn
}

// Run browses until ctx is done and sends an [Event] for every instance
// that appears, changes its TXT record, port or addresses, says goodbye
// or expires. It returns nil when ctx is done, and an error when it
// cannot listen on the multicast DNS port or a named interface does not
// exist.
func (m *MDNS) Run(ctx context.Context, events chan<- Event) error {
	b := m.newBrowser()
	// Deferred calls run last first: cancel, then wait for the
	// goroutines that cancel stops.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.listen(); err != nil {
		return err
	}
	packets := make(chan packet, 64)
	for _, mc := range b.conns {
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			mc.closer.Close()
		}()
		go func() {
			defer wg.Done()
			mc.read(ctx, packets, func(v any) {
				b.log.Warn(fmt.Sprintf("mdns: dropped a packet: internal error reading it: %v", v))
			})
		}()
	}
	if err := b.join(); err != nil {
		return err
	}
	return b.loop(ctx, packets, events)
}

// browser is one run of [MDNS]: its cache, sockets and the interfaces
// joined. Its methods run on Run's goroutine only.
type browser struct {
	m   *MDNS
	log *slog.Logger
	now func() time.Time
	c   *cache
	// conns are the sockets; unicast says they are not on port 5353
	// (another program holds it), so questions ask for unicast replies.
	conns   []*mdnsConn
	unicast bool
	joined  map[string]int // interface name → index joined
}

func (m *MDNS) newBrowser() *browser {
	b := &browser{m: m, log: m.Logger, now: m.Now, joined: make(map[string]int)}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	domain := m.Domain
	if domain == "" {
		domain = "local."
	}
	b.c = newCache(domain, m.Service, func(msg string, args ...any) { b.log.Warn(fmt.Sprintf(msg, args...)) })
	if m.Trust != nil {
		b.c.trusted = m.Trust.Judge
	}
	return b
}

// listen opens the sockets: on port 5353, shared, or when another
// program holds it without sharing, on a port of our own.
func (b *browser) listen() error {
	v4, err4 := listen4("0.0.0.0:5353")
	v6, err6 := listen6("[::]:5353")
	if errors.Is(err4, syscall.EADDRINUSE) || errors.Is(err6, syscall.EADDRINUSE) {
		// Another responder holds port 5353 without SO_REUSEADDR. Ask
		// from a port of our own instead, with the unicast-response bit
		// set: responders then answer us by unicast (RFC 6762 §5.4 and
		// §6.7), and our refresh queries keep the records alive. We miss
		// unsolicited announcements and goodbyes, so changes are seen by
		// polling instead of at once.
		b.unicast = true
		b.log.Warn("mdns: port 5353 is held by another program that does not share it; browsing with unicast replies (changes seen by polling)")
		if v4 != nil {
			v4.closer.Close()
		}
		if v6 != nil {
			v6.closer.Close()
		}
		v4, err4 = listen4("0.0.0.0:0")
		v6, err6 = listen6("[::]:0")
	}
	if err4 == nil {
		b.conns = append(b.conns, v4)
	}
	if err6 == nil {
		b.conns = append(b.conns, v6)
	} else if err4 == nil {
		b.log.Debug("mdns: no IPv6", "err", err6)
	}
	if len(b.conns) == 0 {
		return fmt.Errorf("listen on the multicast DNS port: %w", errors.Join(err4, err6))
	}
	return nil
}

// join joins the multicast group on the interfaces to browse that are
// new (or came back), and forgets those that went.
func (b *browser) join() error {
	ifis, err := b.m.interfaces()
	if err != nil {
		return err
	}
	// Forget interfaces that went down or away, so that when they come
	// back they count as new and are asked at once.
	for name := range b.joined {
		if !slices.ContainsFunc(ifis, func(ifi net.Interface) bool { return ifi.Name == name }) {
			delete(b.joined, name)
		}
	}
	for _, ifi := range ifis {
		if b.joined[ifi.Name] == ifi.Index {
			continue
		}
		ok := false
		for _, mc := range b.conns {
			// The socket may still be a member from before the
			// interface went down: that is fine too.
			if err := mc.join(&ifi); err != nil && !errors.Is(err, syscall.EADDRINUSE) {
				b.log.Debug("mdns: join", "interface", ifi.Name, "err", err)
			} else {
				ok = true
			}
		}
		if ok {
			b.joined[ifi.Name] = ifi.Index
			b.log.Debug("mdns: browsing", "interface", ifi.Name)
			// A new link: ask again soon.
			b.c.nextBrowse = time.Time{}
			b.c.browseInterval = 0
		}
	}
	return nil
}

// pack encodes the query msg as it goes out: with the unicast-response
// bit when browsing from a port of our own, and without the known
// answers that do not fit in one packet (and without the TC bit:
// responders then repeat those records, which is harmless, instead of
// waiting for a continuation that never comes).
func (b *browser) pack(msg *dns.Msg) ([]byte, error) {
	if b.unicast {
		for i := range msg.Question {
			msg.Question[i].Qclass |= 0x8000
		}
	}
	for len(msg.Answer) > 0 && msg.Len() > maxPacket {
		msg.Answer = msg.Answer[:len(msg.Answer)-1]
	}
	return msg.Pack()
}

// send multicasts the query msg on every interface joined that is up.
func (b *browser) send(msg *dns.Msg) {
	buf, err := b.pack(msg)
	if err != nil {
		b.log.Warn("mdns: pack query", "err", err)
		return
	}
	for name, index := range b.joined {
		ifi, err := net.InterfaceByIndex(index)
		if err != nil || ifi.Name != name || ifi.Flags&net.FlagUp == 0 {
			continue
		}
		for _, mc := range b.conns {
			mc.send(ifi, buf)
		}
	}
}

// loop asks, files packets and reports events until ctx is done.
func (b *browser) loop(ctx context.Context, packets <-chan packet, events chan<- Event) error {
	c := b.c
	rescan := time.NewTicker(5 * time.Second)
	defer rescan.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		t := b.now()
		var q *dns.Msg
		c.guard(t, "choosing what to ask", func() { q = c.questions(t) })
		if q != nil {
			b.send(q)
		}
		if !emit(ctx, events, c.tick(t)) {
			return nil
		}
		wait := time.Second
		c.guard(t, "scheduling", func() { wait = c.nextWake(t).Sub(t) })
		wait = max(wait, 20*time.Millisecond) + 10*time.Millisecond
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case p := <-packets:
			if _, ok := b.joined[p.iface]; !ok {
				break // not an interface we browse on
			}
			if err := c.receive(p.data, p.iface, p.src, b.now()); err != nil {
				b.log.Debug("mdns: bad packet", "interface", p.iface, "err", err)
			}
		case <-timer.C:
		case <-rescan.C:
			if err := b.join(); err != nil {
				b.log.Warn("mdns: list interfaces", "err", err)
			}
		}
	}
}

// emit sends evs on events, and reports false when ctx ended first.
func emit(ctx context.Context, events chan<- Event, evs []Event) bool {
	for _, ev := range evs {
		select {
		case events <- ev:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// interfaces returns the interfaces to browse on.
func (m *MDNS) interfaces() ([]net.Interface, error) {
	if len(m.Interfaces) > 0 {
		var out []net.Interface
		for _, name := range m.Interfaces {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return nil, fmt.Errorf("find interface %s: %w", name, ErrUnknownInterface)
			}
			if ifi.Flags&net.FlagUp != 0 {
				out = append(out, *ifi)
			}
		}
		return out, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 && ifi.Flags&net.FlagLoopback == 0 {
			out = append(out, ifi)
		}
	}
	return out, nil
}

func reuse(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func listen4(address string) (*mdnsConn, error) {
	lc := net.ListenConfig{Control: reuse}
	pc, err := lc.ListenPacket(context.Background(), "udp4", address)
	if err != nil {
		return nil, err
	}
	p := ipv4.NewPacketConn(pc)
	if err := p.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		pc.Close()
		return nil, err
	}
	_ = p.SetMulticastTTL(255)
	_ = p.SetMulticastLoopback(true)
	return &mdnsConn{v4: p, closer: pc}, nil
}

func listen6(address string) (*mdnsConn, error) {
	lc := net.ListenConfig{Control: reuse}
	pc, err := lc.ListenPacket(context.Background(), "udp6", address)
	if err != nil {
		return nil, err
	}
	p := ipv6.NewPacketConn(pc)
	if err := p.SetControlMessage(ipv6.FlagInterface, true); err != nil {
		pc.Close()
		return nil, err
	}
	_ = p.SetMulticastHopLimit(255)
	_ = p.SetMulticastLoopback(true)
	return &mdnsConn{v6: p, closer: pc}, nil
}

func (mc *mdnsConn) join(ifi *net.Interface) error {
	if mc.v4 != nil {
		return mc.v4.JoinGroup(ifi, &net.UDPAddr{IP: mdnsGroup4.Addr().AsSlice()})
	}
	return mc.v6.JoinGroup(ifi, &net.UDPAddr{IP: mdnsGroup6.Addr().AsSlice()})
}

func (mc *mdnsConn) send(ifi *net.Interface, buf []byte) {
	if mc.v4 != nil {
		if err := mc.v4.SetMulticastInterface(ifi); err == nil {
			_, _ = mc.v4.WriteTo(buf, nil, net.UDPAddrFromAddrPort(mdnsGroup4))
		}
		return
	}
	if err := mc.v6.SetMulticastInterface(ifi); err == nil {
		_, _ = mc.v6.WriteTo(buf, nil, net.UDPAddrFromAddrPort(mdnsGroup6))
	}
}

// read forwards received packets with the name of the interface they
// came in on, until the connection is closed. A panic while reading one
// packet is passed to warn and the packet dropped: reading goes on.
func (mc *mdnsConn) read(ctx context.Context, out chan<- packet, warn func(any)) {
	buf := make([]byte, 9000)
	names := make(map[int]string)
	var warned time.Time
	limited := func(v any) {
		// A fault that every read hits must not flood the log.
		if time.Since(warned) >= time.Minute {
			warned = time.Now()
			warn(v)
		}
	}
	for !mc.readOne(ctx, buf, names, out, limited) {
	}
}

// readOne reads and forwards one packet, and reports whether reading is
// over (the connection closed or ctx done).
func (mc *mdnsConn) readOne(ctx context.Context, buf []byte, names map[int]string, out chan<- packet, warn func(any)) (done bool) {
	defer func() {
		if v := recover(); v != nil {
			warn(v)
			done = ctx.Err() != nil
			time.Sleep(10 * time.Millisecond) // no busy loop if every read trips it
		}
	}()
	var n, index int
	var err error
	var from net.Addr
	if mc.v4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, from, err = mc.v4.ReadFrom(buf)
		if cm != nil {
			index = cm.IfIndex
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, from, err = mc.v6.ReadFrom(buf)
		if cm != nil {
			index = cm.IfIndex
		}
	}
	if err != nil {
		return ctx.Err() != nil || errors.Is(err, net.ErrClosed)
	}
	name, ok := names[index]
	if !ok {
		if ifi, err := net.InterfaceByIndex(index); err == nil {
			name = ifi.Name
		}
		if len(names) > 256 {
			clear(names)
		}
		names[index] = name
	}
	var src netip.AddrPort
	if u, ok := from.(*net.UDPAddr); ok {
		src = u.AddrPort()
	}
	select {
	case out <- packet{data: append([]byte(nil), buf[:n]...), iface: name, index: index, src: src.Addr().Unmap(), from: src}:
		return false
	case <-ctx.Done():
		return true
	}
}
