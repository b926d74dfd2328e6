package candidates

import (
	"reflect"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/scm"
)

func f64(v float64) *float64 { return &v }

func TestReadingRoundTrip(t *testing.T) {
	c := &reading{File: "/etc/guix/machines.scm", ID: fileID{1, 2, 3, 4, 5}, Salt: "u\x00k", Updated: time.Unix(1700000000, 5),
		Machines: []*scm.Machine{
			{Name: "a\tb", Port: 22, Systems: []string{"x86_64-linux", "i686-linux"}, User: "u", PrivateKey: "/k",
				HostKey: "ssh-ed25519 AAAA c", OverloadThreshold: f64(0.8), ParallelBuilds: 2, Speed: 1.5,
				Compression: "zlib", CompressionLevel: 3, DaemonSocket: "/s",
				Features: []string{}},
			{Name: "b", Systems: []string{}, Features: []string{"kvm"},
				Status: &scm.Status{Instance: "b.local", Load: 0.25, FreeDisk: 1234, Signed: time.Unix(1700000000, 7)}},
			{Name: "c", Systems: []string{}, Features: []string{},
				Status: &scm.Status{Load: scm.Unknown, FreeDisk: scm.Unknown}},
		}}
	got, err := decodeReading(encodeReading(c))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("%+v\n%+v", got, c)
	}
}

func FuzzDecodeReading(f *testing.F) {
	f.Add(encodeReading(&reading{File: "/m.scm", Machines: []*scm.Machine{{Name: "a", Systems: []string{"x"}, Features: []string{}}}}))
	f.Add([]byte(readingMagic + "\n\"/m\"\t1\t2\t3\t4\t5\t\"\"\t0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeReading(data)
		if err != nil {
			return
		}
		again, err := decodeReading(encodeReading(c))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, c, again)
		}
	})
}
