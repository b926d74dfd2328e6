package hook_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/hook"
	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
)

func takeSlot(t *testing.T, e *env, host string, port, n int) *hook.Slot {
	t.Helper()
	s, err := hook.AcquireSlot(e.state, host+":"+strconv.Itoa(port), n+1)
	if err != nil || s == nil {
		t.Fatalf("take slot: %v, %v", s, err)
	}
	if s.Path != filepath.Join(e.state, host+":"+strconv.Itoa(port), strconv.Itoa(n)) {
		t.Fatalf("took %s, want slot %d", s.Path, n)
	}
	t.Cleanup(s.Release)
	return s
}

// Eight hook processes race for three machines with two slots each: six
// accept, two postpone, and no machine ever has more than two builds.
// A hook killed with SIGKILL frees its slot for the next one.
func TestSlotsRace(t *testing.T) {
	e := newEnv(t)
	var specs []spec
	var keys []string
	for i := 0; i < 3; i++ {
		s := sshd.Start(t, sshd.Options{})
		sp := specFor(s)
		sp.parallel = 2
		specs = append(specs, sp)
		keys = append(keys, s.Host+":"+strconv.Itoa(s.Port))
	}
	e.writeMachines(specs...)

	type result struct {
		h   *daemon.Hook
		rep daemon.Reply
		err error
	}
	results := make(chan result, 8)
	var hooks []*daemon.Hook
	for i := 0; i < 8; i++ {
		h := e.start("hold:" + e.hold)
		hooks = append(hooks, h)
	}
	for i, h := range hooks {
		go func() {
			rep, err := h.Request(ctxT(t), req(false, "x86_64-linux", "race"+strconv.Itoa(i)))
			results <- result{h, rep, err}
		}()
	}
	var accepted, postponed []*daemon.Hook
	for range hooks {
		r := <-results
		switch {
		case r.err != nil:
			t.Fatal(r.err)
		case r.rep.Answer == daemon.Accept:
			accepted = append(accepted, r.h)
		case r.rep.Answer == daemon.Postpone:
			postponed = append(postponed, r.h)
		default:
			t.Fatalf("answer %q: %q", r.rep.Answer, r.rep.Chatter)
		}
	}
	if len(accepted) != 6 || len(postponed) != 2 {
		t.Fatalf("%d accepted, %d postponed; want 6 and 2", len(accepted), len(postponed))
	}
	// The accepted hooks build (holding their slots) until released.
	done := make(chan *daemon.Result, len(accepted))
	for i, h := range accepted {
		go func() {
			res, err := h.Accept(ctxT(t), []string{drv("race")}, []string{e.output("race" + strconv.Itoa(i))})
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
	}
	waitFor(t, func() bool { return countFiles(t, e.hold, "held.") == 6 })
	for _, k := range keys {
		held := 0
		for n := 0; n < 3; n++ {
			ok, err := hook.SlotHeld(filepath.Join(e.state, k, strconv.Itoa(n)))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				held++
			}
		}
		if held != 2 {
			t.Errorf("machine %s: %d slots held, want 2", k, held)
		}
		if _, err := os.Stat(filepath.Join(e.state, k, "2")); err == nil {
			t.Errorf("machine %s: a third lock file exists", k)
		}
	}
	// A postponed hook asks again: still busy.
	mustReply(t, postponed[0], req(false, "x86_64-linux", "again"), daemon.Postpone)

	// The daemon kills one building hook: its slot is free at once.
	accepted[0].Kill()
	rep := mustReply(t, postponed[0], req(false, "x86_64-linux", "again"), daemon.Accept)
	if !chatterHas(rep, "building on") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	go func() {
		res, err := postponed[0].Accept(ctxT(t), []string{drv("again")}, []string{e.output("again")})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	waitFor(t, func() bool { return countFiles(t, e.hold, "held.") == 7 })
	if err := os.WriteFile(filepath.Join(e.hold, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	succeeded, killed := 0, 0
	for i := 0; i < 7; i++ {
		res := <-done
		switch {
		case res == nil:
		case res.Outcome == daemon.Succeeded:
			succeeded++
		case res.Status.Signaled() && res.Status.Signal() == syscall.SIGKILL:
			killed++
		}
	}
	if succeeded != 6 || killed != 1 {
		t.Errorf("%d builds succeeded and %d were killed, want 6 and 1", succeeded, killed)
	}
	for _, k := range keys {
		for n := 0; n < 2; n++ {
			if ok, _ := hook.SlotHeld(filepath.Join(e.state, k, strconv.Itoa(n))); ok {
				t.Errorf("slot %s/%d still held after every build ended", k, n)
			}
		}
	}
}

// Our slot locks and Guix's fcntl(F_SETLK) record locks on the same files
// exclude each other.
func TestSlotsConflictWithGuixLocks(t *testing.T) {
	dir := t.TempDir()
	key := "builder1:22"
	if err := os.MkdirAll(filepath.Join(dir, key), 0o755); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe, filepath.Join(dir, key, "0"))
	cmd.Env = append(os.Environ(), modeEnv+"=posixlock")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("POSIX locker: %q", line)
	}
	s, err := hook.AcquireSlot(dir, key, 1)
	if err != nil || s != nil {
		t.Fatalf("took a slot Guix holds: %v, %v", s, err)
	}
	s, err = hook.AcquireSlot(dir, key, 2)
	if err != nil || s == nil || filepath.Base(s.Path) != "1" {
		t.Fatalf("want slot 1: %+v, %v", s, err)
	}
	s.Release()
	cmd.Process.Kill()
	cmd.Wait()
	s, err = hook.AcquireSlot(dir, key, 1)
	if err != nil || s == nil {
		t.Fatalf("slot not free after Guix's hook died: %v", err)
	}
	// Within one process, a second acquisition sees the first (OFD locks
	// belong to the open file description, not the process).
	s2, err := hook.AcquireSlot(dir, key, 1)
	if err != nil || s2 != nil {
		t.Fatalf("same process took the same slot twice: %v", err)
	}
	s.Release()
	s.Release()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countFiles(t *testing.T, dir, prefix string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			n++
		}
	}
	return n
}
