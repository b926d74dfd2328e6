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
	// Burn some CPU so that utime moves by at least a few ticks.
	deadline := time.Now().Add(100 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	after, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.CPU <= before.CPU {
		t.Errorf("CPU time did not move: %v → %v (after %d iterations)", before.CPU, after.CPU, x)
	}
	if _, err := ReadProc(-1); err == nil {
		t.Error("ReadProc(-1) succeeded")
	}
}
