package candidates

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A machines.scm that no evaluator can read is evaluated once per version
// (and per FailureMemory), not on every request of every hook process:
// one that loops would cost each the whole Guile bound.
func TestFailureRemembered(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "evaluations")
	// A stand-in for Guile that counts its runs and fails as slowly as it
	// likes.
	guile := filepath.Join(dir, "guile")
	script := "#!/bin/sh\necho run >> " + count + "\necho 'machines.scm: the file exits instead of returning a list of build machines' >&2\nexit 1\n"
	if err := os.WriteFile(guile, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "machines.scm")
	if err := os.WriteFile(file, []byte("(exit)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(file, old, old) // older than the cache's granularity guard
	o := &Options{MachinesFile: file, Evaluator: "guile", Guile: guile, StateDirectory: filepath.Join(dir, "state")}
	runs := func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "run")
	}
	now := time.Now()
	load := func(l *Loader, at time.Time) error {
		_, _, _, err := l.Load(context.Background(), o, at)
		return err
	}

	var l Loader
	err := load(&l, now)
	if err == nil || !strings.Contains(err.Error(), "the file exits") || runs() != 1 {
		t.Fatalf("first load: %v, %d runs", err, runs())
	}
	for i := 0; i < 3; i++ {
		err = load(&l, now.Add(time.Duration(i)*time.Second))
	}
	if runs() != 1 || err == nil || !strings.Contains(err.Error(), "the file exits") || !strings.Contains(err.Error(), "evaluated again once changed") {
		t.Errorf("same process: %d runs, %v", runs(), err)
	}
	// Another hook process, the same state directory.
	var l2 Loader
	if err := load(&l2, now.Add(time.Minute)); err == nil || runs() != 1 {
		t.Errorf("next process: %d runs, %v", runs(), err)
	}
	// Not forever.
	if err := load(&l2, now.Add(FailureMemory+time.Second)); err == nil || runs() != 2 {
		t.Errorf("after %v: %d runs, %v", FailureMemory, runs(), err)
	}
	// A new version of the file is evaluated at once.
	if err := os.WriteFile(file, []byte("(exit 2)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(file, old, old)
	if err := load(&l2, now.Add(FailureMemory+2*time.Second)); err == nil || runs() != 3 {
		t.Errorf("changed file: %d runs, %v", runs(), err)
	}
	// A cancelled evaluation says nothing about the file.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := os.WriteFile(file, []byte("(exit 3)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(file, old, old)
	var l3 Loader
	l3.Load(ctx, o, now)
	if _, ok := l3.failed["machines-scm"]; ok {
		t.Error("a cancelled evaluation was remembered as a failure")
	}
}

func TestFailureRoundTrip(t *testing.T) {
	f := &failure{File: "/etc/guix/machines.scm", ID: fileID{1, 2, 3, 4, 5}, Salt: "guile\x00guile", At: time.Unix(1700000000, 9),
		Msg: "evaluate with guile: machines.scm:1:2: \"bad\"\tthing"}
	got, err := decodeFailure(encodeFailure(f))
	if err != nil || !reflect.DeepEqual(got, f) {
		t.Fatalf("%+v %v", got, err)
	}
}

func FuzzDecodeFailure(f *testing.F) {
	f.Add(encodeFailure(&failure{File: "/m.scm", Salt: "auto\x00guile", At: time.Unix(1, 0), Msg: "boom"}))
	f.Add([]byte(failureMagic + "\n\"/m\"\t1\t2\t3\t4\t5\t\"\"\t0\n\"x\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fl, err := decodeFailure(data)
		if err != nil {
			return
		}
		again, err := decodeFailure(encodeFailure(fl))
		if err != nil || !reflect.DeepEqual(again, fl) {
			t.Errorf("round trip of %q: %+v %v", data, again, err)
		}
	})
}
