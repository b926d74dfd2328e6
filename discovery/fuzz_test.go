package discovery

import (
	"errors"
	"math"
	"reflect"
	"testing"
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
