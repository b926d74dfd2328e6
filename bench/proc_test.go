package bench

import (
	"os"
	"testing"
	"time"
)

func TestReadProc(t *testing.T) {
	before, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.RSS <= 0 || before.HWM < before.RSS {
		t.Errorf("RSS %d, HWM %d: want 0 < RSS ≤ HWM", before.RSS, before.HWM)
	}
	// Burn CPU until utime moves by a tick. A wall-clock burn of a fixed
	// length is not enough on a loaded machine, where the process may get
	// no CPU at all in that time; the generous deadline only bounds a
	// broken ReadProc.
	deadline := time.Now().Add(30 * time.Second)
	x := 0
	after := before
	for after.CPU <= before.CPU && time.Now().Before(deadline) {
		for range 1_000_000 {
			x++
		}
		if after, err = ReadProc(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if after.CPU <= before.CPU {
		t.Errorf("CPU time did not move: %v → %v (after %d iterations)", before.CPU, after.CPU, x)
	}
	if _, err := ReadProc(-1); err == nil {
		t.Error("ReadProc(-1) succeeded")
	}
}

func TestParse(t *testing.T) {
	stat := []byte("1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 200 18446744073709551615\n")
	cpu, err := ParseStat(stat)
	if err != nil || cpu != 3.0 {
		t.Errorf("ParseStat = %v, %v; want 3 s", cpu, err)
	}
	status := []byte("Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n")
	rss, hwm, err := ParseStatus(status)
	if err != nil || rss != 1<<20 || hwm != 2<<20 {
		t.Errorf("ParseStatus = %d, %d, %v; want 1 MiB, 2 MiB", rss, hwm, err)
	}
	for _, bad := range []string{"", "1 (x) S", "1 (x) S 1 2 3 4 5 6 7 8 9 10 -1 2 3"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) succeeded", bad)
		}
	}
	for _, bad := range []string{"", "VmRSS:\t1 kB\n", "VmRSS:\tx kB\nVmHWM:\t1 kB\n"} {
		if _, _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("ParseStatus(%q) succeeded", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 200\n"))
	f.Add([]byte("1 ()) R 0 0 0 0 0 0 0 0 0 0 0 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cpu, err := ParseStat(b)
		if err == nil && (cpu < 0 || cpu != cpu) {
			t.Errorf("ParseStat(%q) = %v", b, cpu)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n"))
	f.Add([]byte("VmRSS: 1\nVmHWM: 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rss, hwm, err := ParseStatus(b)
		if err == nil && (rss < 0 || hwm < 0) {
			t.Errorf("ParseStatus(%q) = %d, %d", b, rss, hwm)
		}
	})
}
