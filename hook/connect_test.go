package hook_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/hook"
	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
)

// badMachines returns machines.scm entries that cannot be used, each for
// its own reason, and the number of connections the silent port got.
func badMachines(t *testing.T) ([]spec, map[string]string, *atomic.Int32) {
	dir := t.TempDir()
	other := sshd.GenerateKey(t, "", filepath.Join(dir, "other_host"), "ed25519", "")
	stranger := filepath.Join(dir, "id_stranger")
	sshd.GenerateKey(t, "", stranger, "ed25519", "")

	s1 := sshd.Start(t, sshd.Options{})
	wrongHost := specFor(s1)
	wrongHost.hostKey = other
	wrongHost.speed = 5

	s2 := sshd.Start(t, sshd.Options{})
	refused := specFor(s2)
	refused.key = stranger
	refused.speed = 4

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	closed := specFor(s1)
	closed.port = closedPort
	closed.speed = 3

	silentPort, conns := silentPort(t)
	silent := specFor(s1)
	silent.port = silentPort
	silent.speed = 2

	fp := func(line string) string {
		k, err := sshconn.ParseHostKey(line)
		if err != nil {
			t.Fatal(err)
		}
		return ssh256(k)
	}
	reasons := map[string]string{
		key(wrongHost): "host key mismatch: server presented ssh-ed25519 " + fp(s1.HostKey) + ", expected ssh-ed25519 " + fp(other),
		key(refused):   "authentication refused",
		key(closed):    "machine unreachable: dial tcp " + key(closed) + ": connect: connection refused",
		key(silent):    "connection timed out",
	}
	return []spec{wrongHost, refused, closed, silent}, reasons, conns
}

// silentPort listens on a loopback port that accepts connections and
// never says anything; it returns the port and the connections counter.
func silentPort(t *testing.T) (int, *atomic.Int32) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := new(atomic.Int32)
	held := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			held <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		close(held)
		for c := range held {
			c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port, conns
}

func key(s spec) string { return s.name + ":" + strconv.Itoa(s.port) }

func TestPreAcceptConnect(t *testing.T) {
	bad, reasons, silentConns := badMachines(t)
	good := sshd.Start(t, sshd.Options{})
	e := newEnv(t)
	e.writeMachines(append(bad, specFor(good))...)

	// The faster machines are tried first, each fails for its reason, the
	// good one is accepted, and nothing unusable was accepted.
	h := e.start("ok")
	start := time.Now()
	rep := mustReply(t, h, req(true, "x86_64-linux", "p"), daemon.Accept)
	if !chatterHas(rep, "building on '"+good.Host+":"+strconv.Itoa(good.Port)+"'") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	for k, why := range reasons {
		if !chatterHas(rep, "'"+k+"': ssh "+k+": "+why) {
			t.Errorf("chatter does not say %s: %s\n%q", k, why, rep.Chatter)
		}
		if _, err := os.Stat(filepath.Join(e.state, "down", k)); err != nil {
			t.Errorf("%s not remembered as down: %v", k, err)
		}
	}
	// Bounded by twice the connect timeout (10 s), the silent machine's
	// share (5 s) included.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("decision took %v", d)
	}
	if silentConns.Load() != 1 {
		t.Errorf("silent port got %d connections, want 1", silentConns.Load())
	}
	h.Kill()

	// Another hook process skips them without touching the network.
	h = e.start("ok")
	rep = mustReply(t, h, req(true, "x86_64-linux", "q"), daemon.Accept)
	for k := range reasons {
		if !chatterHas(rep, "'"+k+"': down for") {
			t.Errorf("chatter does not say %s is down: %q", k, rep.Chatter)
		}
	}
	if silentConns.Load() != 1 {
		t.Errorf("silent port got %d connections, want still 1", silentConns.Load())
	}
}

func TestAllMachinesDown(t *testing.T) {
	bad, _, _ := badMachines(t)
	for i := range bad {
		bad[i].systems = []string{"x86_64-linux", "i686-linux", "aarch64-linux"}
	}
	e := newEnv(t)
	e.writeConfig(`max-postpone = "1s"`)
	e.writeMachines(bad...)
	h := e.start("ok")

	// The daemon can build it itself: decline at once.
	rep := mustReply(t, h, req(true, "x86_64-linux", "d"), daemon.Decline)
	if !chatterHas(rep, "unusable, building locally") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	// It cannot (no local slot, or another system): postpone, for a while.
	rep = mustReply(t, h, req(false, "x86_64-linux", "e"), daemon.Postpone)
	if !chatterHas(rep, "unusable, waiting (at most 1s)", "down for") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	// The x86_64 daemon builds i686 too: decline at once.
	rep = mustReply(t, h, req(true, "i686-linux", "f"), daemon.Decline)
	if !chatterHas(rep, "unusable, building locally") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	// Not aarch64: postpone.
	mustReply(t, h, req(true, "aarch64-linux", "f"), daemon.Postpone)
	time.Sleep(1100 * time.Millisecond)
	// Then decline, so the user gets an error instead of a hang.
	rep = mustReply(t, h, req(false, "x86_64-linux", "e"), daemon.Decline)
	if !chatterHas(rep, "giving up") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	// Another derivation starts its own clock.
	mustReply(t, h, req(false, "x86_64-linux", "g"), daemon.Postpone)
}

// With a state directory the hook cannot write, the bound on postponing
// still holds: the process remembers the first postponement itself (the
// daemon asks the same process again), and says once that the directory
// is not writable.
func TestPostponeBoundWithUnwritableState(t *testing.T) {
	e := newEnv(t)
	blocker := filepath.Join(e.dir, "not-a-directory")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.override(`max-postpone = "1s"`, fmt.Sprintf("state-directory = %q", filepath.Join(blocker, "state")))
	e.writeMachines(unreachable())
	h := e.start("ok")
	rep := mustReply(t, h, req(false, "x86_64-linux", "u"), daemon.Postpone)
	if !chatterHas(rep, "state directory", "not writable") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	rep = mustReply(t, h, req(false, "x86_64-linux", "u"), daemon.Postpone)
	if chatterHas(rep, "not writable") {
		t.Errorf("warned twice: %q", rep.Chatter)
	}
	time.Sleep(1100 * time.Millisecond)
	rep = mustReply(t, h, req(false, "x86_64-linux", "u"), daemon.Decline)
	if !chatterHas(rep, "giving up") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	// Forgotten after the decline: the next time starts a new clock.
	mustReply(t, h, req(false, "x86_64-linux", "u"), daemon.Postpone)
}

// All connection attempts for one request share one deadline (twice the
// connect-timeout): four silent machines cost the daemon 3 s, not 4 × 1.5 s.
// The machines not tried to the end may work later: postpone, slots free.
func TestDecisionDeadline(t *testing.T) {
	e := newEnv(t)
	// Nothing here needs a handshake: a short bound is safe.
	e.override(`connect-timeout = "1500ms"`)
	var specs []spec
	var counters []*atomic.Int32
	id := filepath.Join(e.dir, "id_test")
	sshd.GenerateKey(t, "", id, "ed25519", "")
	for i := 0; i < 4; i++ {
		port, conns := silentPort(t)
		m := unreachable()
		m.port, m.speed, m.key = port, float64(10-i), id
		specs = append(specs, m)
		counters = append(counters, conns)
	}
	e.writeMachines(specs...)
	h := e.start("ok")
	start := time.Now()
	rep := mustReply(t, h, req(true, "x86_64-linux", "dl"), daemon.Postpone)
	took := time.Since(start)
	t.Logf("decision took %v", took.Round(time.Millisecond))
	// What shows the shared deadline is the chatter and the machines
	// dialed below; the time only has to be short of what four bounds of
	// their own would cost (about 3 s here when idle).
	if took >= 6*time.Second {
		t.Errorf("decision took %v, as long as four attempts of 1.5 s each; want about 3s", took)
	}
	if !chatterHas(rep, "no time left (connection attempts are bounded by 3s)") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	var tried int32
	for _, c := range counters {
		tried += c.Load()
	}
	if tried < 1 || tried > 2 {
		t.Errorf("%d machines dialed, want 1 or 2", tried)
	}
	for _, m := range specs {
		if held, err := hook.SlotHeld(filepath.Join(e.state, key(m), "0")); err != nil || held {
			t.Errorf("slot of %s held after the reply: %v, %v", key(m), held, err)
		}
	}
	// The machine cut short by the deadline is not remembered as down.
	if _, err := os.Stat(filepath.Join(e.state, "down", key(specs[1]))); err == nil {
		t.Errorf("%s marked down though cut short", key(specs[1]))
	}
}

// Our own private key missing is our problem, not the machines': no
// machine is remembered as down, other machines are still tried, and
// when none can be used the hook declines at once naming the key file.
func TestLocalKeyProblemDeclines(t *testing.T) {
	e := newEnv(t)
	e.override(`max-postpone = "1h"`)
	bad := unreachable() // private key /nonexistent/key
	e.writeMachines(bad)
	h := e.start("ok")
	// Even with no local build slot (WILLING 0): waiting would not help.
	rep := mustReply(t, h, req(false, "x86_64-linux", "k"), daemon.Decline)
	if len(rep.Chatter) != 1 || !chatterHas(rep, "cannot use the SSH private key /nonexistent/key", "private-key in machines.scm or hook.toml") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	if _, err := os.Stat(filepath.Join(e.state, "down", key(bad))); err == nil {
		t.Error("a local key problem marked the machine down")
	}
	// A machine whose key works is still used.
	good := sshd.Start(t, sshd.Options{})
	g := specFor(good)
	g.speed = 0.5 // tried after the bad one
	e.writeMachines(bad, g)
	h = e.start("ok")
	rep = mustReply(t, h, req(false, "x86_64-linux", "k2"), daemon.Accept)
	if !chatterHas(rep, "building on '"+key(g)+"'", "private key /nonexistent/key cannot be used") {
		t.Errorf("chatter %q", rep.Chatter)
	}
	if _, err := os.Stat(filepath.Join(e.state, "down", key(bad))); err == nil {
		t.Error("a local key problem marked the machine down")
	}
}
