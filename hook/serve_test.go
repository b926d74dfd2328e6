package hook

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/transport"

	"github.com/guix-offload/guix-offload/scm"
)

type fakeSources struct {
	static, discovered []*scm.Machine
	err                error
	panicking          bool
	// browsePanics panics when discovery is on, as a bug in the live
	// browse would; calls counts the calls with discovery on.
	browsePanics bool
	calls        int
}

func (f *fakeSources) Machines(_ context.Context, cfg *Config, _ time.Time) ([]*scm.Machine, []*scm.Machine, []string, error) {
	if f.panicking {
		panic("boom")
	}
	if cfg.Discovery {
		f.calls++
		if f.browsePanics {
			var found map[string][]*scm.Machine
			//lint:ignore SA5000 the runtime panic a bug would make
			found["x"] = nil // assignment to entry in nil map
		}
		return f.static, f.discovered, nil, f.err
	}
	if f.browsePanics {
		return f.static, nil, nil, f.err
	}
	return f.static, f.discovered, nil, f.err
}

// testConfig is the default configuration with a temporary state
// directory and store, the test ACL and /bin/sh as the local guix.
func testConfig(t *testing.T) *Config {
	c := DefaultConfig()
	c.StateDirectory, c.Store = t.TempDir(), t.TempDir()
	c.ACL, c.RealGuix = "testdata/acl", "/bin/sh"
	return c
}

// serveInMemory runs Serve over pipes and returns a function sending a
// line and reading the lines up to the reply.
func serveInMemory(t *testing.T, o *Options) (ask func(string) (string, []string), closeIn func() int) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	o.Stdin, o.Out, o.BuildLog = inR, outW, io.Discard
	if o.Config == nil {
		o.Config = testConfig(t)
	}
	code := make(chan int, 1)
	go func() {
		code <- Serve(context.Background(), []string{"x86_64-linux", "3600", "0", "7200"}, o)
		outW.Close()
	}()
	lines := bufio.NewReader(outR)
	ask = func(line string) (string, []string) {
		t.Helper()
		if _, err := io.WriteString(inW, line+"\n"); err != nil {
			t.Fatal(err)
		}
		var chatter []string
		for {
			s, err := lines.ReadString('\n')
			if err != nil {
				t.Fatalf("no reply to %q: %v (chatter %q)", line, err, chatter)
			}
			s = strings.TrimSuffix(s, "\n")
			if strings.HasPrefix(s, "# ") {
				return s[2:], chatter
			}
			chatter = append(chatter, s)
		}
	}
	closeIn = func() int {
		inW.Close()
		go io.Copy(io.Discard, outR)
		select {
		case c := <-code:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return")
			return -1
		}
	}
	t.Cleanup(func() { inW.Close(); outR.Close() })
	return ask, closeIn
}

func TestServePanicDeclines(t *testing.T) {
	src := &fakeSources{panicking: true}
	ask, closeIn := serveInMemory(t, &Options{Sources: src})
	a, chatter := ask("1 x86_64-linux /gnu/store/a.drv ")
	if a != "decline" || len(chatter) != 1 || !strings.Contains(chatter[0], "internal error, declining: boom") {
		t.Fatalf("%q %q", a, chatter)
	}
	// The process goes on serving.
	src.panicking = false
	src.err = errors.New("read machines.scm: permission denied")
	a, chatter = ask("1 x86_64-linux /gnu/store/a.drv ")
	if a != "decline" || !strings.Contains(strings.Join(chatter, "\n"), "permission denied") {
		t.Fatalf("%q %q", a, chatter)
	}
	if c := closeIn(); c != 0 {
		t.Errorf("exit %d after EOF", c)
	}
}

// A machine that cannot be reached is not accepted; the daemon may not
// build locally, so the hook postpones, then, the machine remembered as
// down, it does not dial again.
func TestServeConnectFailurePostpones(t *testing.T) {
	m := mach(scm.OriginStatic, "b1", 22, "ssh-ed25519 AAAA", []string{"x86_64-linux"}, nil, 1)
	var dialed []string
	o := &Options{
		Sources: &fakeSources{static: []*scm.Machine{m}},
		Dial: func(ctx context.Context, tg sshconn.Target, _ *sshconn.Options) (*ssh.Client, error) {
			dialed = append(dialed, tg.Addr())
			return nil, &sshconn.Error{Addr: tg.Addr(), Kind: sshconn.ErrUnreachable, Err: errors.New("no route to host")}
		},
		Transport: func(ctx context.Context, b *transport.Build) error {
			t.Error("transport called without accept")
			return nil
		},
	}
	ask, closeIn := serveInMemory(t, o)
	a, chatter := ask("0 x86_64-linux /gnu/store/a.drv ")
	if a != "postpone" || len(chatter) != 1 || !strings.Contains(chatter[0], "'b1:22': ssh b1:22: machine unreachable: no route to host") {
		t.Fatalf("%q %q", a, chatter)
	}
	a, chatter = ask("0 x86_64-linux /gnu/store/a.drv ")
	if a != "postpone" || !strings.Contains(chatter[0], "'b1:22': down for") {
		t.Fatalf("%q %q", a, chatter)
	}
	if len(dialed) != 1 {
		t.Fatalf("dialed %v", dialed)
	}
	if c := closeIn(); c != 0 {
		t.Errorf("exit %d", c)
	}
}

// A panic while connecting declines and frees the slot at once.
func TestServePanicWhileConnectingFreesSlot(t *testing.T) {
	m := mach(scm.OriginStatic, "b1", 22, "ssh-ed25519 AAAA", []string{"x86_64-linux"}, nil, 1)
	o := &Options{
		Sources: &fakeSources{static: []*scm.Machine{m}},
		Dial: func(context.Context, sshconn.Target, *sshconn.Options) (*ssh.Client, error) {
			panic("dialer exploded")
		},
	}
	o.Config = testConfig(t)
	ask, closeIn := serveInMemory(t, o)
	a, chatter := ask("1 x86_64-linux /gnu/store/a.drv ")
	if a != "decline" || !strings.Contains(strings.Join(chatter, "\n"), "dialer exploded") {
		t.Fatalf("%q %q", a, chatter)
	}
	if held, err := SlotHeld(o.Config.StateDirectory + "/b1:22/0"); err != nil || held {
		t.Fatalf("slot still held: %v %v", held, err)
	}
	closeIn()
}

// A panic while discovering machines costs the discovered machines and
// one warning line, never the reply: the static machines still serve.
func TestServeDiscoveryPanicKeepsStatic(t *testing.T) {
	m := mach(scm.OriginStatic, "b1", 22, "ssh-ed25519 AAAA", []string{"x86_64-linux"}, nil, 1)
	d := mach(scm.OriginDiscovered, "d1", 22, "ssh-ed25519 BBBB", []string{"aarch64-linux"}, nil, 1)
	src := &fakeSources{static: []*scm.Machine{m}, discovered: []*scm.Machine{d}, browsePanics: true}
	o := &Options{
		Sources: src,
		Dial: func(ctx context.Context, tg sshconn.Target, _ *sshconn.Options) (*ssh.Client, error) {
			return nil, &sshconn.Error{Addr: tg.Addr(), Kind: sshconn.ErrUnreachable, Err: errors.New("no route to host")}
		},
	}
	o.Config = testConfig(t)
	o.Config.Discovery = true
	ask, closeIn := serveInMemory(t, o)
	a, chatter := ask("1 x86_64-linux /gnu/store/a.drv ")
	all := strings.Join(chatter, "\n")
	if a != "decline" || strings.Count(all, "warning: discovering build machines failed") != 1 ||
		!strings.Contains(all, "nil map") || !strings.Contains(all, "'b1:22': ssh b1:22: machine unreachable") {
		t.Fatalf("%q %q", a, chatter)
	}
	// Discovery stays off for this process: no second panic, no second warning.
	a, chatter = ask("1 aarch64-linux /gnu/store/b.drv ")
	if a != "decline" || strings.Contains(strings.Join(chatter, "\n"), "warning") || src.calls != 1 {
		t.Fatalf("%q %q, %d calls with discovery", a, chatter, src.calls)
	}
	if c := closeIn(); c != 0 {
		t.Errorf("exit %d", c)
	}
}

// A slot directory is created when missing (and only then); a state
// directory that cannot hold it is an error naming the lock file.
func TestAcquireSlotCreatesDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := AcquireSlot(dir+"/state", "b1:22", 2)
	if err != nil || s == nil || s.Path != dir+"/state/b1:22/0" {
		t.Fatalf("%+v %v", s, err)
	}
	s2, err := AcquireSlot(dir+"/state", "b1:22", 2)
	if err != nil || s2 == nil || s2.Path != dir+"/state/b1:22/1" {
		t.Fatalf("%+v %v", s2, err)
	}
	if s3, err := AcquireSlot(dir+"/state", "b1:22", 2); s3 != nil || err != nil {
		t.Fatalf("third slot of two: %+v %v", s3, err)
	}
	s.Release()
	s2.Release()
	if err := os.WriteFile(dir+"/file", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireSlot(dir+"/file/state", "b1:22", 1); err == nil || !strings.Contains(err.Error(), dir+"/file/state/b1:22/0: not a directory") {
		t.Fatalf("under a file: %v", err)
	}
}
