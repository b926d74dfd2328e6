package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/pki"
)

// fakeAnnouncer records what the agent advertises.
type fakeAnnouncer struct {
	mu     sync.Mutex
	events []string // "announce", "text", "goodbye"
	regs   []*fakeReg
	fail   bool
}

type fakeReg struct {
	a    *fakeAnnouncer
	svc  Service
	txts [][]string // initial TXT, then each SetText
	down bool
}

func (f *fakeAnnouncer) Announce(s Service) (Registration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, os.ErrPermission
	}
	r := &fakeReg{a: f, svc: s, txts: [][]string{s.TXT}}
	f.regs = append(f.regs, r)
	f.events = append(f.events, "announce")
	return r, nil
}

func (r *fakeReg) SetText(txt []string) {
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	if r.down {
		panic("SetText after Shutdown")
	}
	r.txts = append(r.txts, txt)
	r.a.events = append(r.a.events, "text")
}

// Announced: a fake registration is announced at once.
func (r *fakeReg) Announced() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func (r *fakeReg) Shutdown() {
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	if !r.down {
		r.down = true
		r.a.events = append(r.a.events, "goodbye")
	}
}

func (f *fakeAnnouncer) Events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// last returns the last registration and its current TXT.
func (f *fakeAnnouncer) last(t *testing.T) (*fakeReg, []string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.regs) == 0 {
		t.Fatal("nothing advertised")
	}
	r := f.regs[len(f.regs)-1]
	return r, r.txts[len(r.txts)-1]
}

// machineState is the fake machine the detector looks at.
type machineState struct {
	mu       sync.Mutex
	root     string
	freeDisk uint64
	ifaces   []Iface
}

func (m *machineState) setLoad(t *testing.T, l string) {
	t.Helper()
	// Atomically, as the agent may be reading it.
	tmp := filepath.Join(m.root, "proc/loadavg.new")
	if err := os.WriteFile(tmp, []byte(l+" 0.5 0.5 1/100 1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.root, "proc/loadavg")); err != nil {
		t.Fatal(err)
	}
}

func (m *machineState) setFree(mib uint64) {
	m.mu.Lock()
	m.freeDisk = mib << 20
	m.mu.Unlock()
}

func (m *machineState) setIfaces(ifs ...Iface) {
	m.mu.Lock()
	m.ifaces = ifs
	m.mu.Unlock()
}

func eth(name string, index int, up bool, addrs ...string) Iface {
	ifc := Iface{Interface: net.Interface{Index: index, Name: name, MTU: 1500, Flags: net.FlagMulticast | net.FlagBroadcast}}
	if up {
		ifc.Flags |= net.FlagUp | net.FlagRunning
	}
	for _, a := range addrs {
		ifc.Addrs = append(ifc.Addrs, netip.MustParseAddr(a))
	}
	return ifc
}

func writeHostKey(t *testing.T, dir string) (path, line string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
	path = filepath.Join(dir, "ssh_host_ed25519_key.pub")
	if err := os.WriteFile(path, []byte(line+" root@builder\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, line
}

// newTestAgent returns an agent on a fake x86_64 machine with 2 cores,
// load 0.40 (normalized 0.20), 50000 MiB free, and eth0.
func newTestAgent(t *testing.T, logs *bytes.Buffer) (*Agent, *machineState, *fakeAnnouncer, string) {
	t.Helper()
	st := &machineState{root: fakeRoot(t, map[string]string{
		"etc/passwd":      "offload:x:999:999::/var/empty:/bin/sh\n",
		"proc/1/cmdline":  "guix-daemon\x00--build-users-group=guixbuild\x00--max-jobs=4\x00",
		"dev/kvm":         "",
		"proc/loadavg":    "0.40 0.5 0.5 1/100 1000\n",
		"etc/ssh/unused":  "",
		"gnu/store/.keep": "",
	})}
	st.setFree(50000)
	st.setIfaces(eth("lo", 1, true, "127.0.0.1", "::1"), eth("eth0", 2, true, "169.254.7.2", "fe80::2"))
	keyPath, hostKey := writeHostKey(t, t.TempDir())
	fa := &fakeAnnouncer{}
	cfg := DefaultConfig()
	cfg.Name = "builder1"
	cfg.HostKeyFile = keyPath
	cfg.SigningKey = "testdata/signing-key.sec"
	if logs == nil {
		logs = new(bytes.Buffer)
	}
	a := &Agent{
		Config: cfg,
		Log:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Detector: &Detector{
			Root:    st.root,
			Machine: machine("x86_64"),
			NumCPU:  func() int { return 2 },
			Statfs: func(string) (uint64, error) {
				st.mu.Lock()
				defer st.mu.Unlock()
				return st.freeDisk, nil
			},
		},
		Announcer: fa,
		Interfaces: func() ([]Iface, error) {
			st.mu.Lock()
			defer st.mu.Unlock()
			return slices.Clone(st.ifaces), nil
		},
	}
	return a, st, fa, hostKey
}

func parse(t *testing.T, r *fakeReg, txt []string) *discovery.Announcement {
	t.Helper()
	ann, err := discovery.ParseTXT(r.svc.Instance, r.svc.Port, txt)
	if err != nil {
		t.Fatalf("ParseTXT(%q): %v", txt, err)
	}
	return ann
}

func TestRunAnnouncesEveryField(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _, fa, hostKey := newTestAgent(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- a.Run(ctx) }()
		synctest.Wait()

		r, txt := fa.last(t)
		if r.svc.Instance != "builder1" || r.svc.Host != "builder1-guix-offload.local." || r.svc.Port != 22 {
			t.Errorf("service %+v; want builder1 on builder1-guix-offload.local.:22", r.svc)
		}
		if got := ifaceNames(r.svc.Interfaces); got != "eth0" {
			t.Errorf("interfaces %q; want eth0 only", got)
		}
		wantAddrs := []netip.Addr{netip.MustParseAddr("169.254.7.2"), netip.MustParseAddr("fe80::2")}
		if !slices.Equal(r.svc.Addrs, wantAddrs) {
			t.Errorf("addresses %v; want %v", r.svc.Addrs, wantAddrs)
		}
		ann := parse(t, r, txt)
		if !slices.Equal(ann.Systems, []string{"x86_64-linux", "i686-linux"}) ||
			!slices.Equal(ann.Features, []string{"kvm"}) ||
			ann.ParallelBuilds != 4 || ann.Speed != 1 || ann.User != "offload" ||
			ann.HostKey != hostKey || ann.OverloadThreshold == nil || *ann.OverloadThreshold != 0.8 ||
			ann.Load != 0.2 || ann.FreeDisk != 50000 ||
			!slices.Equal(ann.SignedAddresses, wantAddrs) || !ann.Time.Equal(time.Now().Truncate(time.Second)) {
			t.Errorf("announcement %+v", ann)
		}
		if err := ann.Verify(); err != nil {
			t.Errorf("signature: %v", err)
		}
		pub, err := pki.ReadPublicKey("testdata/signing-key.pub")
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := pub.Compact(); ann.SigningKey != c {
			t.Errorf("signing-key %q; want %q", ann.SigningKey, c)
		}

		// Run returns at once (no fake time passes: it waits for no
		// tick), so that the agent exits promptly on SIGTERM.
		stop := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel; want nil", err)
		}
		if d := time.Since(stop); d != 0 {
			t.Errorf("Run returned %v after cancel; want at once", d)
		}
		if got := fa.Events(); !slices.Equal(got, []string{"announce", "goodbye"}) {
			t.Errorf("events %q; want announce, goodbye", got)
		}
	})
}

func TestRunRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, st, fa, _ := newTestAgent(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go a.Run(ctx)
		synctest.Wait()
		start := time.Now()
		// The agent looks every 5 s from start; the test changes things
		// half-way between two seconds, so the order is never a tie.
		time.Sleep(500 * time.Millisecond)
		texts := func() int {
			r, _ := fa.last(t)
			fa.mu.Lock()
			defer fa.mu.Unlock()
			return len(r.txts) - 1
		}

		// Small moves are not worth an announcement.
		st.setLoad(t, "0.50") // 0.25, was 0.20
		st.setFree(49800)     // -0.4 %
		time.Sleep(30 * time.Second)
		if n := texts(); n != 0 {
			t.Fatalf("%d TXT updates after small changes; want 0", n)
		}

		// A load step of 0.1 is, at the next refresh tick (every 5 s).
		st.setLoad(t, "0.60") // 0.30
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := texts(); n != 1 {
			r, _ := fa.last(t)
			t.Fatalf("%d TXT updates after a load step; want 1: %q", n, r.txts)
		}
		r, txt := fa.last(t)
		if ann := parse(t, r, txt); ann.Load != 0.3 || ann.FreeDisk != 49800 || ann.Verify() != nil {
			t.Errorf("updated announcement load %v free-disk %v verify %v; want 0.3, 49800, signed", ann.Load, ann.FreeDisk, ann.Verify())
		}

		// A load that moves every second is announced at most every 5 s.
		before := texts()
		for i := range 20 {
			st.setLoad(t, []string{"1.6", "0.2"}[i%2])
			time.Sleep(time.Second)
		}
		synctest.Wait()
		if n := texts() - before; n != 4 {
			t.Errorf("%d TXT updates in 20 s of a jumping load; want 4 (one per 5 s)", n)
		}

		// Free space dropping by 2 % is announced.
		st.setLoad(t, "0.40")
		time.Sleep(10 * time.Second)
		before = texts()
		st.setFree(48000)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := texts() - before; n != 1 {
			t.Errorf("%d TXT updates after free space dropped 3.6 %%; want 1", n)
		}

		// With nothing changing, the signature is renewed every 4 minutes.
		before = texts()
		_, txt = fa.last(t)
		ts1 := parse(t, r, txt).Time
		time.Sleep(DefaultResign + 5*time.Second)
		synctest.Wait()
		_, txt = fa.last(t)
		ts2 := parse(t, r, txt).Time
		if n := texts() - before; n != 1 || ts2.Sub(ts1) < DefaultResign {
			t.Errorf("after %v idle: %d updates, ts %v → %v; want one re-signed update", DefaultResign+5*time.Second, n, ts1, ts2)
		}
		if time.Since(start) > 10*time.Minute {
			t.Errorf("test took %v of fake time", time.Since(start))
		}
		if got := fa.Events(); slices.Contains(got, "goodbye") {
			t.Errorf("events %q: goodbye without a reason", got)
		}
	})
}

func TestRunInterfaceChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		a, st, fa, _ := newTestAgent(t, &logs)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- a.Run(ctx) }()
		synctest.Wait()

		// The link goes down: goodbye, then nothing while it is down.
		st.setIfaces(eth("lo", 1, true, "127.0.0.1"), eth("eth0", 2, false, "169.254.7.2"))
		time.Sleep(DefaultInterfacePoll)
		synctest.Wait()
		if got := fa.Events(); !slices.Equal(got, []string{"announce", "goodbye"}) {
			t.Fatalf("events after link down %q; want announce, goodbye", got)
		}
		time.Sleep(30 * time.Second)
		if got := fa.Events(); len(got) != 2 {
			t.Fatalf("events while down %q", got)
		}
		if !strings.Contains(logs.String(), "no usable network interface") {
			t.Errorf("no log line about waiting for an interface:\n%s", logs.String())
		}

		// It comes back with a new address: announced again, with it.
		st.setIfaces(eth("lo", 1, true, "127.0.0.1"), eth("eth0", 2, true, "169.254.7.9", "fe80::2"))
		time.Sleep(DefaultInterfacePoll)
		synctest.Wait()
		if got := fa.Events(); !slices.Equal(got, []string{"announce", "goodbye", "announce"}) {
			t.Fatalf("events after link up %q; want announce, goodbye, announce", got)
		}
		r, txt := fa.last(t)
		if ann := parse(t, r, txt); ann.SignedAddresses[0] != netip.MustParseAddr("169.254.7.9") || ann.Verify() != nil {
			t.Errorf("addrs %v after the address changed; want 169.254.7.9 first, signed", ann.SignedAddresses)
		}

		// A second interface appears: registered anew on both.
		st.setIfaces(eth("eth0", 2, true, "169.254.7.9"), eth("eth1", 3, true, "169.254.8.9"))
		time.Sleep(DefaultInterfacePoll)
		synctest.Wait()
		r, _ = fa.last(t)
		if got := ifaceNames(r.svc.Interfaces); got != "eth0,eth1" {
			t.Errorf("interfaces %q; want eth0,eth1", got)
		}
		// Nothing changes: no new registration.
		n := len(fa.Events())
		time.Sleep(time.Minute)
		if got := fa.Events(); len(got) != n {
			t.Errorf("events %q without a change", got[n:])
		}
		cancel()
		<-done
	})
}

func TestRunConfiguredInterfaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		a, st, fa, _ := newTestAgent(t, &logs)
		st.setIfaces(eth("eth0", 2, true, "169.254.7.2"), eth("eth1", 3, true, "169.254.8.2"))
		a.Config.Interfaces = []string{"eth1", "wlan0"}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go a.Run(ctx)
		synctest.Wait()
		r, _ := fa.last(t)
		if got := ifaceNames(r.svc.Interfaces); got != "eth1" {
			t.Errorf("interfaces %q; want eth1", got)
		}
		if !strings.Contains(logs.String(), "interfaces=wlan0") {
			t.Errorf("no warning about wlan0:\n%s", logs.String())
		}
	})
}

func TestRunRetriesAnnounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _, fa, _ := newTestAgent(t, nil)
		fa.fail = true
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go a.Run(ctx)
		synctest.Wait()
		if len(fa.Events()) != 0 {
			t.Fatal("announced although failing")
		}
		fa.mu.Lock()
		fa.fail = false
		fa.mu.Unlock()
		time.Sleep(DefaultInterfacePoll)
		synctest.Wait()
		if got := fa.Events(); !slices.Equal(got, []string{"announce"}) {
			t.Errorf("events %q; want one announce after the retry", got)
		}
	})
}

func TestPrepareUnsigned(t *testing.T) {
	var logs bytes.Buffer
	a, _, _, _ := newTestAgent(t, &logs)
	a.Config.SigningKey = filepath.Join(t.TempDir(), "signing-key.sec")
	p, err := a.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if p.Key != nil {
		t.Error("key without a key file")
	}
	for _, want := range []string{"masters with the default trust policy will ignore this machine", "guix archive --generate-key"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, logs.String())
		}
	}
	ann, err := p.compose(nil, sample{load: 0.1, freeDisk: 10}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ann.TXT() {
		if strings.HasPrefix(s, "sig=") || strings.HasPrefix(s, "signing-key=") {
			t.Errorf("unsigned announcement has %q", s)
		}
	}
}

func TestPrepareErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(a *Agent, dir string)
		want  string
	}{
		{"no host key", func(a *Agent, dir string) { a.Config.HostKeyFile = "" }, "find SSH host key"},
		{"bad host key", func(a *Agent, dir string) {
			os.WriteFile(filepath.Join(dir, "k.pub"), []byte("not a key"), 0o644)
			a.Config.HostKeyFile = filepath.Join(dir, "k.pub")
		}, "read SSH host key"},
		{"bad signing key", func(a *Agent, dir string) {
			os.WriteFile(filepath.Join(dir, "s.sec"), []byte("(private-key (rsa))"), 0o600)
			a.Config.SigningKey = filepath.Join(dir, "s.sec")
		}, "signing key"},
		{"unknown machine", func(a *Agent, dir string) {
			a.Detector.Machine = func() (string, error) { return "", os.ErrNotExist }
		}, "detect systems"},
		{"invalid config", func(a *Agent, dir string) { a.Config.Speed = -1 }, "speed: -1 is not a positive number"},
		{"too many features", func(a *Agent, dir string) {
			for i := range 40 {
				a.Config.Features = append(a.Config.Features, fmt.Sprintf("a-rather-long-feature-name-%d", i))
			}
		}, "TXT features"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _, _ := newTestAgent(t, nil)
			tc.setup(a, t.TempDir())
			_, err := a.Prepare()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Prepare: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestHostKeyFromPrivatePath(t *testing.T) {
	dir := t.TempDir()
	pubPath, line := writeHostKey(t, dir)
	priv := strings.TrimSuffix(pubPath, ".pub")
	os.WriteFile(priv, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n…\n"), 0o600)
	got, err := readHostKey(priv)
	if err != nil || got != line {
		t.Errorf("readHostKey(private path) = %q, %v; want %q", got, err, line)
	}
}

func TestDryRun(t *testing.T) {
	a, _, fa, hostKey := newTestAgent(t, nil)
	var out bytes.Buffer
	if err := a.DryRun(&out); err != nil {
		t.Fatal(err)
	}
	if len(fa.Events()) != 0 {
		t.Error("dry run advertised")
	}
	for _, want := range []string{
		"instance: builder1\n", "service: _guix-offload._tcp.local.\n", "host: builder1-guix-offload.local.\n", "port: 22\n",
		"interface: eth0 169.254.7.2,fe80::2\n", "signed: true\n",
		"  txtvers=1\n", "  systems=x86_64-linux,i686-linux\n", "  parallel-builds=4\n", "  speed=1.0\n",
		"  features=kvm\n", "  user=offload\n", "  host-key=" + hostKey + "\n", "  overload-threshold=0.8\n",
		"  load=0.20\n", "  free-disk=50000\n", "  addrs=169.254.7.2,fe80::2\n", "  signing-key=", "  ts=", "  sig=",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDryRunWideArea: the dry run names the records the agent would
// register in the zone.
func TestDryRunWideArea(t *testing.T) {
	a, _, _, _ := newTestAgent(t, nil)
	a.Config.WideArea = &WideAreaConfig{Domain: "Builders.Example.org", TSIGKey: "/etc/guix-offload/agents.key"}
	var out bytes.Buffer
	if err := a.DryRun(&out); err != nil {
		t.Fatal(err)
	}
	want := "wide-area: builder1._guix-offload._tcp.builders.example.org. (host builder1.guix-offload.builders.example.org., key /etc/guix-offload/agents.key)\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("dry run output lacks %q:\n%s", want, out.String())
	}
}

func TestMeaningful(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sent, cur sample
		want      bool
	}{
		{"same", sample{0.2, 1000}, sample{0.2, 1000}, false},
		{"load small", sample{0.2, 1000}, sample{0.29, 1000}, false},
		{"load step", sample{0.2, 1000}, sample{0.3, 1000}, true},
		{"load down", sample{0.5, 1000}, sample{0.4, 1000}, true},
		{"disk small", sample{0.2, 1000}, sample{0.2, 991}, false},
		{"disk 1%", sample{0.2, 1000}, sample{0.2, 990}, true},
		{"disk up", sample{0.2, 1000}, sample{0.2, 1020}, true},
		{"disk zero to one", sample{0.2, 0}, sample{0.2, 1}, true},
		{"load now unknown", sample{0.2, 1000}, sample{-1, 1000}, true},
		{"disk now known", sample{0.2, -1}, sample{0.2, 5}, true},
		{"both unknown", sample{-1, -1}, sample{-1, -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := meaningful(tc.sent, tc.cur); got != tc.want {
				t.Errorf("meaningful(%v, %v) = %v; want %v", tc.sent, tc.cur, got, tc.want)
			}
		})
	}
}

func TestAddressesOf(t *testing.T) {
	var ifs []Iface
	for i := range 12 {
		ifs = append(ifs, eth("eth"+string(rune('a'+i)), i+2, true, "169.254.1."+string(rune('0'+i%10)), "2001:db8:1234:5678:9abc:def0:1234:56"+string(rune('0'+i%10))+"0"))
	}
	addrs, dropped := addressesOf(ifs)
	if dropped == 0 || len(addrs) == 0 {
		t.Fatalf("addressesOf: %d kept, %d dropped; want some of each", len(addrs), dropped)
	}
	if n := len("addrs=" + joinAddrs(addrs)); n > 255 {
		t.Errorf("addrs string is %d bytes", n)
	}
}

func TestHostLabel(t *testing.T) {
	for in, want := range map[string]string{"builder1": "builder1", "Build Box #2": "build-box--2", "--": "guix-builder", "élan": "lan",
		strings.Repeat("a", 70): strings.Repeat("a", 63-len(HostSuffix))} {
		if got := hostLabel(in); got != want {
			t.Errorf("hostLabel(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestRunPicksUpNewSigningKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		a, _, fa, _ := newTestAgent(t, &logs)
		a.Config.SigningKey = filepath.Join(t.TempDir(), "signing-key.sec")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go a.Run(ctx)
		synctest.Wait()
		r, txt := fa.last(t)
		if ann := parse(t, r, txt); ann.Sig != "" {
			t.Fatal("signed without a key")
		}
		key, err := os.ReadFile("testdata/signing-key.sec")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(a.Config.SigningKey, key, 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(KeyRetry + time.Duration(a.Config.RefreshInterval))
		synctest.Wait()
		r, txt = fa.last(t)
		if ann := parse(t, r, txt); ann.Verify() != nil {
			t.Errorf("announcement not signed a minute after the key appeared: %v", ann.Verify())
		}
		if !strings.Contains(logs.String(), "signing key found") {
			t.Errorf("no log line about the new key:\n%s", logs.String())
		}
		if got := fa.Events(); !slices.Equal(got, []string{"announce", "text"}) {
			t.Errorf("events %q; want announce, then one TXT update", got)
		}
	})
}

// The advertiser, alone and without ticks: it registers on the usable
// interfaces, re-announces only for a meaningful change or an old
// signature, re-registers when addresses change, and says goodbye once.
func TestAdvertiserAlone(t *testing.T) {
	a, st, fa, _ := newTestAgent(t, nil)
	p, err := a.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	ad := &advertiser{a: a, p: p, log: a.logger("mdns"), ann: fa, ifPoll: time.Second, resign: time.Hour,
		warned: map[string]bool{}, keyTried: time.Now()}
	ad.checkInterfaces()
	ad.checkInterfaces() // nothing changed
	ad.refreshText()     // nor the load
	if got := strings.Join(fa.Events(), ","); got != "announce" {
		t.Fatalf("events %s, want one announce", got)
	}
	st.setLoad(t, "1.40") // normalized 0.70, from 0.20
	ad.refreshText()
	ad.signedAt = ad.signedAt.Add(-2 * time.Hour) // the signature grows old
	ad.refreshText()
	st.setIfaces(eth("eth0", 2, true, "169.254.7.3"))
	ad.checkInterfaces()
	ad.stop("stopping")
	ad.stop("again")
	if got := strings.Join(fa.Events(), ","); got != "announce,text,text,goodbye,announce,goodbye" {
		t.Errorf("events %s", got)
	}
}
