package discovery

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// txtWire splits TXT rdata in wire form (length-prefixed strings) the way
// a DNS decoder does; ok is false when a length runs past the end.
func txtWire(b []byte) (txt []string, ok bool) {
	for len(b) > 0 {
		n := int(b[0])
		if 1+n > len(b) {
			return nil, false
		}
		txt = append(txt, string(b[1:1+n]))
		b = b[1+n:]
	}
	return txt, true
}

func wire(txt ...string) []byte {
	var b []byte
	for _, s := range txt {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

// FuzzParseTXT feeds arbitrary TXT records to the decoder: it must never
// panic, must fail only with a *TXTError, and whatever it accepts must
// encode to a record it accepts again with the same meaning.
func FuzzParseTXT(f *testing.F) {
	a := testAnnouncement(f)
	f.Add("builder1", 22, wire(a.TXT()...))
	a.Sig = "AAAA"
	a.SigningKey = "ecdsa-ed25519:9xs2pBf5P4y74u4i7SXQjprwttgTEo0wmR3eYu/J5gk="
	f.Add("builder1", 2222, wire(a.TXT()...))
	f.Add("b", 1, wire("txtvers=1", "systems=x", "user=u", "host-key="+testHostKey(f, 4), "overload-threshold=#f", "flag", ""))
	f.Add("b", 22, wire("txtvers=1", "systems=x,,y", "user=u"))
	f.Add("b", 22, wire("load=NaN", "speed=1e309", "free-disk=-1"))
	f.Add("", 0, []byte{})
	f.Fuzz(func(t *testing.T, instance string, port int, rdata []byte) {
		txt, ok := txtWire(rdata)
		if !ok {
			return
		}
		a, err := ParseTXT(instance, port, txt)
		if err != nil {
			var te *TXTError
			if !errors.As(err, &te) || te.Field == "" {
				t.Fatalf("error %v is not a *TXTError naming a field", err)
			}
			return
		}
		a.SignedHash() // must not panic
		again := a.TXT()
		b, err := ParseTXT(instance, port, again)
		if err != nil {
			t.Fatalf("re-encoded %q rejected: %v", again, err)
		}
		if math.Abs(a.Load-b.Load) > 0.0051 {
			t.Fatalf("load %v became %v", a.Load, b.Load)
		}
		a.Load, b.Load = 0, 0
		a.raw, b.raw = nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the announcement:\n%+v\n%+v", a, b)
		}
	})
}

// FuzzCacheHandle feeds arbitrary packets to the browser's cache, as if
// received on the LAN: it must never panic, and must stay within its
// bounds, whatever the packets say.
func FuzzCacheHandle(f *testing.F) {
	for _, m := range []*dns.Msg{
		response("builder1", "b1", 22, validTXT(f, "0.1"), 4500, "169.254.1.2", "fe80::1"),
		response(`a\.b`, "h", 1, []string{"txtvers=1", "systems="}, 0),
		goodbye("builder1"),
	} {
		buf, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf, buf)
	}
	f.Fuzz(func(t *testing.T, p1, p2 []byte) {
		c := newCache("local.", "", nil)
		now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
		for i, p := range [][]byte{p1, p2, p1} {
			m := new(dns.Msg)
			if err := m.Unpack(p); err != nil {
				continue
			}
			c.handle(m, "veth0", now)
			for _, ev := range c.tick(now) {
				if ev.Announcement == nil || ev.Kind < Add || ev.Kind > Ignore {
					t.Fatalf("bad event %+v", ev)
				}
			}
			if q := c.questions(now); q != nil {
				if _, err := q.Pack(); err != nil {
					t.Fatalf("query does not pack: %v", err)
				}
			}
			now = now.Add(time.Duration(i+1) * 700 * time.Millisecond)
		}
		c.tick(now.Add(2 * time.Hour))
		if len(c.ptrs) > MaxInstances || c.nrecords > maxRecords || c.nrecords < 0 {
			t.Fatalf("bounds: %d instances, %d records", len(c.ptrs), c.nrecords)
		}
	})
}

// FuzzParseSnapshot: the hook reads snapshot files; bad ones are errors,
// never panics, and good ones name every machine.
func FuzzParseSnapshot(f *testing.F) {
	f.Add([]byte(`{"updated":"2026-11-29T12:00:00Z","machines":[{"instance":"b","name":"169.254.1.2","port":22,"addresses":["169.254.1.2","fe80::1%eth0"],"load":0.5,"free-disk":10,"trusted":true}]}`))
	f.Add([]byte(`{"updated":"2026-11-29T12:00:00Z","machines":[null]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"updated":"2026-11-29T12:00:00Z","machines":[{"instance":"b","name":"169.254.1.2","port":22,"addresses":["169.254.1.2"],"trusted":true,` +
		`"txt":["txtvers=1","systems=x86_64-linux","user=offload","host-key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDs8rR0lXyZk6iQ2F4kOcbq6uMFIk2x1sBlHPo2kYmbJ","addrs=169.254.1.2","ts=1795000000","sig=AAAA"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSnapshot(data)
		if err != nil {
			return
		}
		for _, a := range s.Machines {
			if a == nil || a.Instance == "" {
				t.Fatalf("accepted a machine without instance")
			}
			// A machine kept with its record is what the record says.
			if a.Record() != nil && a.Ignored == "" {
				b, err := ParseTXT(a.Instance, a.Port, a.Record())
				if err != nil || !slices.Equal(a.Systems, b.Systems) || a.HostKey != b.HostKey || a.Sig != b.Sig {
					t.Fatalf("machine %q differs from its record: %v", a.Instance, err)
				}
			}
		}
		s.Trusted()
		s.Stale(time.Now())
	})
}

// FuzzParseKnownGood: the known-good signatures file parses or is
// refused with an error naming a line; never more entries than the bound.
func FuzzParseKnownGood(f *testing.F) {
	f.Add([]byte(knownGoodMagic + "\n"))
	f.Add([]byte(knownGoodMagic + "\n" + strings.Repeat("ab", 32) + "\n"))
	f.Add([]byte(knownGoodMagic + "\n" + strings.Repeat("AB", 32) + "\n" + strings.Repeat("0", 64)))
	f.Add([]byte(knownGoodMagic + "\n\n"))
	f.Add([]byte("guix-offload-known-good-signatures 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseKnownGood(data, "f")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error does not name the file and line: %v", err)
			}
			return
		}
		if len(m) > maxKnownGood {
			t.Fatalf("%d entries", len(m))
		}
	})
}
