package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/pairing"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
	"github.com/guix-offload/guix-offload/internal/worker"
	"github.com/guix-offload/guix-offload/test/standin/standintest"
)

// pairHost is a host whose /etc, /root, /home and store are its own: in a
// private mount namespace per command, a writable copy of this machine's
// /etc (so useradd works on it), empty /root and /home, and the stand-in's
// store; the real files of this machine are never touched.
type pairHost struct {
	net                   *netns.Host
	guix                  *standintest.Host
	dir, etc, root, home  string
	offload, agent, relay string
}

func newPairHost(t *testing.T, h *netns.Host, name string) *pairHost {
	t.Helper()
	g := standintest.NewHost(t, name, store, "GUIX_STANDIN_SYSTEMS="+x86,
		"GUIX_STANDIN_SIGNING_KEY=/etc/guix/signing-key.sec", "GUIX_STANDIN_ACL=/etc/guix/acl")
	p := &pairHost{net: h, guix: g, dir: t.TempDir(),
		offload: netns.BuildBinary(t, "github.com/guix-offload/guix-offload/cmd/guix-offload"),
		agent:   netns.BuildBinary(t, "github.com/guix-offload/guix-offload/cmd/guix-offload-agent"),
	}
	p.etc, p.root, p.home = filepath.Join(p.dir, "etc"), filepath.Join(p.dir, "root"), filepath.Join(p.dir, "home")
	if out, err := exec.Command("cp", "-a", "/etc", p.etc).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc: %v: %s", err, out)
	}
	// Nothing of this machine's Guix or guix-offload setup leaks in.
	for _, d := range []string{"guix", "guix-offload"} {
		if err := os.RemoveAll(filepath.Join(p.etc, d)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{p.root, p.home, filepath.Join(p.etc, "guix")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"signing-key.sec", "signing-key.pub"} {
		data, err := os.ReadFile(filepath.Join(g.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p.etc, "guix", f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// prefix runs a program with the host's own /etc, /root, /home and store.
func (p *pairHost) prefix() []string {
	return []string{"unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc && mount --bind "$2" /root && mount --bind "$3" /home && mount --bind "$4" "$5" && mount --bind "$6" "$7" && shift 7 && exec "$@"`,
		"pair-mounts", p.etc, p.root, p.home, p.guix.Backing, store, p.guix.SocketDir(), filepath.Dir(worker.DefaultSocket)}
}

func (p *pairHost) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	pre := p.prefix()
	return p.net.Command(ctx, pre[0], append(append(pre[1:], prog), args...)...)
}

// start starts prog in the background with stdin.
func (p *pairHost) start(t *testing.T, stdin io.Reader, prog string, args ...string) *netns.Proc {
	t.Helper()
	cmd := p.command(context.Background(), prog, args...)
	cmd.Stdin = stdin
	return p.net.StartCmd(t, cmd)
}

func (p *pairHost) run(t *testing.T, prog string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := p.command(ctx, prog, args...).CombinedOutput()
	return string(out), err
}

// files is what pairing may change on a host: the Guix and guix-offload
// configuration, the account files, root's and the homes' files.
// Backups (FILE~) are left out.
func (p *pairHost) files(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		data, err := os.ReadFile(filepath.Join(p.etc, f))
		if err == nil {
			out["etc/"+f] = string(data)
		}
	}
	for _, top := range []string{filepath.Join(p.etc, "guix"), filepath.Join(p.etc, "guix-offload"), p.root, p.home} {
		_ = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err != nil || strings.HasSuffix(path, pairing.BackupSuffix) {
				return nil
			}
			rel, _ := filepath.Rel(p.dir, path)
			st, err := d.Info()
			if err != nil {
				return nil
			}
			if d.IsDir() {
				out[rel] = "dir " + st.Mode().String()
				return nil
			}
			data, _ := os.ReadFile(path)
			out[rel] = st.Mode().String() + "\n" + string(data)
			return nil
		})
	}
	return out
}

func sameFiles(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s changed:\n%s\nwas:\n%s", what, k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s left behind", what, k)
		}
	}
}

// pairSetup is a master and a build machine (and a third host for the
// relay), none paired, the machine running sshd in its mount namespace.
type pairSetup struct {
	master, machine, relay *pairHost
	sshd                   *sshd.Server
	hostKey                string // the machine's sshd host public key file
	config                 string // the master's hook.toml
	snapshot               string
	// agentBin is on the PATH of the machine's SSH logins, empty until a
	// test links guix-offload-agent there (the relay the hook runs).
	agentBin string
}

func newPairSetup(t *testing.T) *pairSetup {
	t.Helper()
	nw := netns.New(t, 3)
	hosts := nw.Hosts()
	s := &pairSetup{master: newPairHost(t, hosts[0], "master"), machine: newPairHost(t, hosts[1], "builder1"),
		relay: newPairHost(t, hosts[2], "relay")}
	s.relay.relay = netns.BuildBinary(t, "github.com/guix-offload/guix-offload/test/pairrelay")
	// The machine's ACL holds its own key, as Guix makes it; the
	// master has none yet.
	own, err := pki.ReadPublicKey(filepath.Join(s.machine.etc, "guix/signing-key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.machine.etc, "guix/acl"), pki.NewACL(own).MarshalSexp(), 0o644); err != nil {
		t.Fatal(err)
	}
	m := s.machine
	s.agentBin = filepath.Join(m.dir, "agentbin")
	if err := os.MkdirAll(s.agentBin, 0o755); err != nil {
		t.Fatal(err)
	}
	s.sshd = sshd.Start(t, sshd.Options{
		Prefix:        append([]string{"ip", "netns", "exec", m.net.Name}, m.prefix()...),
		ListenAddress: m.net.Addr.String() + ":22",
		ExtraConfig:   "SetEnv PATH=" + m.guix.Bin + ":" + s.agentBin + ":/usr/sbin:/usr/bin:/sbin:/bin",
		UserKeys:      true,
		Home:          m.root, // root's home as pairing sees it
	})
	s.hostKey = s.sshd.HostKeyFile + ".pub"
	// The machine's guix-daemon (the stand-in's), which the hook's
	// transport reaches over SSH through the paired key.
	d := m.start(t, nil, m.guix.Guix, "daemon", "--listen="+worker.DefaultSocket)
	if !netns.Poll(20*time.Second, func() bool {
		fi, err := os.Stat(m.guix.DaemonSocket())
		return err == nil && fi.Mode()&os.ModeSocket != 0
	}) {
		t.Fatalf("the machine's daemon did not listen:\n%s", d.Output())
	}

	machines := filepath.Join(s.master.dir, "machines.scm")
	if err := os.WriteFile(machines, []byte("(list)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.config = filepath.Join(s.master.dir, "hook.toml")
	s.snapshot = filepath.Join(s.master.dir, "machines.json")
	cfg := fmt.Sprintf(`machines-file = %q
state-directory = %q
acl = "/etc/guix/acl"
cache = %q
browse-timeout = "0s"
private-key = "/root/.ssh/id_ed25519"
real-guix = %q
store = %q
connect-timeout = "10s"
`, machines, filepath.Join(s.master.dir, "state"), s.snapshot, s.master.guix.Guix, store)
	if err := os.WriteFile(s.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *pairSetup) agentPair(t *testing.T, stdin io.Reader, user string, extra ...string) *netns.Proc {
	t.Helper()
	m := s.machine
	args := append([]string{"pair", "--name", "builder1", "--user", user, "--port", "22",
		"--host-key-file", s.hostKey, "--interfaces", m.net.Iface, "--guix", m.guix.Guix}, extra...)
	p := m.start(t, stdin, m.agent, args...)
	if !netns.Poll(30*time.Second, func() bool { return strings.Contains(p.Output(), "pairing window open") }) {
		t.Fatalf("the pairing window did not open:\n%s", p.Output())
	}
	return p
}

func (s *pairSetup) masterPair(t *testing.T, stdin io.Reader, extra ...string) *netns.Proc {
	t.Helper()
	m := s.master
	args := append([]string{"pair", "--config", s.config, "--interface", m.net.Iface, "--name", "master"}, extra...)
	return m.start(t, stdin, m.offload, args...)
}

var codeRE = regexp.MustCompile(`pairing code: (\d{3} \d{3})`)

// code waits for p to print its pairing code.
func code(t *testing.T, p *netns.Proc) string {
	t.Helper()
	var c string
	netns.Poll(30*time.Second, func() bool {
		m := codeRE.FindStringSubmatch(p.Output())
		if m != nil {
			c = m[1]
		}
		return m != nil
	})
	if c == "" {
		t.Fatalf("no pairing code printed:\n%s", p.Output())
	}
	return c
}

func windowPort(t *testing.T, p *netns.Proc) string {
	t.Helper()
	m := regexp.MustCompile(`\(port (\d+)\)`).FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("no port in:\n%s", p.Output())
	}
	return m[1]
}

// failed waits for p and checks it failed saying want.
func failed(t *testing.T, who string, p *netns.Proc, want string) {
	t.Helper()
	err := p.Wait(time.Minute)
	if err == nil {
		t.Errorf("%s succeeded:\n%s", who, p.Output())
		return
	}
	if !strings.Contains(p.Output(), want) {
		t.Errorf("%s: output lacks %q:\n%s", who, want, p.Output())
	}
}

// TestPairing pairs a master and a build machine over the network: the
// failed attempts (refusal, wrong --code, end of input, the window's end,
// a second attempt in the same window, a relay substituting its keys)
// change nothing on either side; a confirmed one leaves every file as
// pairing promises and `guix-offload test` passes; --remove on both sides
// restores the files byte for byte; and a login created for masters
// works with guix on its PATH and without port forwarding.
func TestPairing(t *testing.T) {
	s := newPairSetup(t)
	masterBefore, machineBefore := s.master.files(t), s.machine.files(t)
	unchanged := func(t *testing.T) {
		t.Helper()
		sameFiles(t, "master", s.master.files(t), masterBefore)
		sameFiles(t, "machine", s.machine.files(t), machineBefore)
	}

	t.Run("discover lists the window, Ctrl-C closes it", func(t *testing.T) {
		agent := s.agentPair(t, nil, "root")
		out, err := s.master.run(t, s.master.offload, "discover", "--trust", "any", "--interface", s.master.net.Iface)
		if err != nil || !regexp.MustCompile(`(?m)^WAITING TO PAIR .*\n^builder1 +169\.254\.`).MatchString(out) {
			t.Errorf("discover: %v\n%s", err, out)
		}
		if err := agent.Stop(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		failed(t, "the machine", agent, "")
		unchanged(t)
	})

	t.Run("refused", func(t *testing.T) {
		mr, _ := stdinPipe(t)
		br, bw := stdinPipe(t)
		agent := s.agentPair(t, br, "root")
		master := s.masterPair(t, mr)
		if a, b := code(t, agent), code(t, master); a != b {
			t.Fatalf("codes differ with nobody in the middle: %s, %s", a, b)
		}
		fmt.Fprintln(bw, "n")
		failed(t, "the machine", agent, "refused here")
		failed(t, "the master", master, "refused by the other side")
		unchanged(t)
	})

	t.Run("wrong code", func(t *testing.T) {
		br, _ := stdinPipe(t)
		agent := s.agentPair(t, br, "root")
		master := s.masterPair(t, strings.NewReader(""), "--code", "000000")
		code(t, master)
		failed(t, "the master", master, "refused here")
		failed(t, "the machine", agent, "refused by the other side")
		unchanged(t)
	})

	t.Run("end of input", func(t *testing.T) {
		mr, _ := stdinPipe(t)
		agent := s.agentPair(t, strings.NewReader(""), "root")
		master := s.masterPair(t, mr)
		failed(t, "the machine", agent, "refused here")
		failed(t, "the master", master, "refused by the other side")
		unchanged(t)
	})

	t.Run("window ends", func(t *testing.T) {
		mr, _ := stdinPipe(t)
		br, _ := stdinPipe(t)
		agent := s.agentPair(t, br, "root", "--timeout", "8s")
		master := s.masterPair(t, mr)
		code(t, master)
		failed(t, "the machine", agent, "window ended")
		if err := master.Wait(time.Minute); err == nil {
			t.Errorf("the master paired after the window ended:\n%s", master.Output())
		}
		unchanged(t)
	})

	t.Run("second attempt in the same window", func(t *testing.T) {
		mr, mw := stdinPipe(t)
		br, _ := stdinPipe(t)
		agent := s.agentPair(t, br, "root")
		port := windowPort(t, agent)
		first := s.masterPair(t, mr)
		code(t, first)
		// While the first attempt waits for its operators, a second
		// master cannot get in.
		second := s.masterPair(t, strings.NewReader("y\n"), "--address", s.machine.net.Addr.String()+":"+port)
		failed(t, "the second master", second, "connect to")
		fmt.Fprintln(mw, "no")
		failed(t, "the first master", first, "refused here")
		failed(t, "the machine", agent, "refused by the other side")
		// The window is closed: a new attempt finds nothing.
		third := s.masterPair(t, strings.NewReader("y\n"), "--address", s.machine.net.Addr.String()+":"+port)
		failed(t, "a master after the window", third, "connect to")
		unchanged(t)
	})

	t.Run("relay", func(t *testing.T) {
		mr, mw := stdinPipe(t)
		br, bw := stdinPipe(t)
		agent := s.agentPair(t, br, "root")
		r := s.relay
		relayAddr := r.net.Addr.String() + ":7000"
		relay := r.start(t, nil, r.relay, "--listen", relayAddr, "--machine", s.machine.net.Addr.String()+":"+windowPort(t, agent), "--name", "builder1")
		if !netns.Poll(10*time.Second, func() bool { return strings.Contains(relay.Output(), "relay listening") }) {
			t.Fatalf("the relay did not start:\n%s", relay.Output())
		}
		master := s.masterPair(t, mr, "--address", relayAddr)
		a, b := code(t, agent), code(t, master)
		if a == b {
			t.Fatalf("the relay made both sides show %s", a)
		}
		// Each operator types the code the other side shows.
		fmt.Fprintln(bw, b)
		fmt.Fprintln(mw, a)
		failed(t, "the machine", agent, "refused")
		failed(t, "the master", master, "refused")
		unchanged(t)
	})
	if t.Failed() {
		return
	}

	t.Run("paired", func(t *testing.T) {
		// The machine's agent runs meanwhile, as its service would:
		// announcing it and opening a pairing window go side by side.
		m := s.machine
		m.start(t, nil, m.agent, "--name", "builder1", "--systems", x86, "--parallel-builds", "1",
			"--user", "root", "--port", "22", "--overload-threshold", "#f", "--host-key-file", s.hostKey,
			"--interfaces", m.net.Iface, "--store", store)
		mr, mw := stdinPipe(t)
		br, bw := stdinPipe(t)
		agent := s.agentPair(t, br, "root")
		master := s.masterPair(t, mr)
		a, b := code(t, agent), code(t, master)
		if a != b {
			t.Fatalf("codes differ with nobody in the middle: %s, %s", a, b)
		}
		fmt.Fprintln(bw, "y")
		fmt.Fprintln(mw, strings.ReplaceAll(a, " ", "")) // typing the code works too
		if err := agent.Wait(time.Minute); err != nil {
			t.Fatalf("the machine: %v\n%s", err, agent.Output())
		}
		if err := master.Wait(time.Minute); err != nil {
			t.Fatalf("the master: %v\n%s", err, master.Output())
		}

		// The machine authorizes the master's Guix key, its own stays,
		// and the ACL's text is only extended.
		masterKey := s.master.guix.SigningKey
		acl := readACL(t, filepath.Join(s.machine.etc, "guix/acl"))
		if !acl.Authorizes(masterKey) || !acl.Authorizes(s.machine.guix.SigningKey) || len(acl.Keys()) != 2 {
			t.Errorf("the machine's ACL has %d keys, want its own and the master's", len(acl.Keys()))
		}
		// The master's ACL was created with its own key and the machine's.
		macl := readACL(t, filepath.Join(s.master.etc, "guix/acl"))
		if !macl.Authorizes(s.machine.guix.SigningKey) || !macl.Authorizes(masterKey) || len(macl.Keys()) != 2 {
			t.Errorf("the master's ACL has %d keys, want its own and the machine's", len(macl.Keys()))
		}
		// The hook's SSH key was made, and the machine's root accepts
		// it, restricted.
		pub, err := os.ReadFile(filepath.Join(s.master.root, ".ssh/id_ed25519.pub"))
		if err != nil {
			t.Fatalf("the hook's SSH key was not made: %v", err)
		}
		ak, err := os.ReadFile(filepath.Join(s.machine.root, ".ssh/authorized_keys"))
		f := strings.Fields(string(pub))
		want := pairing.AuthorizedKeyOptions + " " + f[0] + " " + f[1] + " guix-offload-pair:master\n"
		if err != nil || string(ak) != want {
			t.Errorf("the machine's authorized_keys is %q (%v), want %q", ak, err, want)
		}
		for _, h := range []struct {
			host       *pairHost
			prog, peer string
		}{{s.master, s.master.offload, "builder1"}, {s.machine, s.machine.agent, "master"}} {
			out, err := h.host.run(t, h.prog, "pair", "--list", "--config", s.config)
			if h.host == s.machine {
				out, err = h.host.run(t, h.prog, "pair", "--list")
			}
			if err != nil || !strings.Contains(out, h.peer) {
				t.Errorf("%s pair --list: %v\n%s", h.prog, err, out)
			}
		}

		// guix-offload test passes for the machine, found through its
		// agent's signed announcement now that its key is trusted.
		watch := s.master.start(t, nil, s.master.offload, "discover", "--watch", "--cache", s.snapshot,
			"--acl", "/etc/guix/acl", "--interface", s.master.net.Iface)
		if !netns.Poll(30*time.Second, func() bool {
			snap, err := discovery.ReadSnapshot(s.snapshot)
			return err == nil && len(snap.Trusted()) == 1
		}) {
			t.Fatalf("the master did not discover the paired machine:\n%s", watch.Output())
		}
		guixOffloadTest := func() string {
			cmd := s.master.command(context.Background(), s.master.offload, "test", "--config", s.config)
			out, err := cmd.CombinedOutput()
			t.Logf("guix-offload test:\n%s", out)
			if err != nil || !strings.Contains(string(out), "verdict: usable") {
				t.Errorf("guix-offload test: %v", err)
			}
			return string(out)
		}
		// Without guix-offload-agent on the machine, the key's options
		// ("restrict") refuse the stream-local channel to the daemon's
		// socket (OpenSSH says "open failed"; the socket is reachable, as
		// the relay shows next): builds use guix commands there.
		if out := guixOffloadTest(); !strings.Contains(out, "guix commands (cannot talk to guix-daemon directly: relay: guix-offload-agent is not on the login's PATH there (exit 127); direct-streamlocal channel: cannot connect") ||
			!strings.Contains(out, "open failed") {
			t.Errorf("guix-offload test did not find stream-local forwarding refused for the paired key")
		}
		// With it, the hook reaches the daemon through its relay.
		if err := os.Symlink(m.agent, filepath.Join(s.agentBin, "guix-offload-agent")); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(s.agentBin, "guix-offload-agent"))
		if out := guixOffloadTest(); !strings.Contains(out, "builds talk to it directly") || !strings.Contains(out, "exec channel to guix-offload-agent relay") {
			t.Errorf("guix-offload test did not reach the machine's daemon through the relay")
		}
		// TCP forwarding is refused for the paired key.
		sshOut, err := s.master.run(t, "ssh", "-i", "/root/.ssh/id_ed25519", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-W", m.net.Addr.String()+":22", "root@"+m.net.Addr.String())
		if err == nil || strings.Contains(sshOut, "SSH-2.0") || !strings.Contains(sshOut, "stdio forwarding failed") {
			t.Errorf("TCP forwarding (ssh -W) allowed for the master's key: %v\n%s", err, sshOut)
		}
		watch.Stop(os.Interrupt)
	})

	t.Run("remove", func(t *testing.T) {
		if out, err := s.master.run(t, s.master.offload, "pair", "--config", s.config, "--remove", "builder1"); err != nil {
			t.Fatalf("guix-offload pair --remove: %v\n%s", err, out)
		}
		if out, err := s.machine.run(t, s.machine.agent, "pair", "--remove", "master"); err != nil {
			t.Fatalf("guix-offload-agent pair --remove: %v\n%s", err, out)
		}
		unchanged(t)
	})

	t.Run("created login", func(t *testing.T) {
		// A stub guix in a directory the new login can read.
		stubDir := filepath.Join(s.machine.dir, "guixbin")
		for _, d := range []string{filepath.Dir(s.machine.dir), s.machine.dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(stubDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stubDir, "guix"), []byte("#!/bin/sh\necho guix stub for \"$(id -un)\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		mr, mw := stdinPipe(t)
		br, bw := stdinPipe(t)
		m := s.machine
		agent := m.start(t, br, m.agent, "pair", "--name", "builder1", "--user", "offload", "--port", "22",
			"--host-key-file", s.hostKey, "--interfaces", m.net.Iface, "--guix", filepath.Join(stubDir, "guix"))
		master := s.masterPair(t, mr)
		code(t, agent)
		code(t, master)
		fmt.Fprintln(bw, "yes")
		fmt.Fprintln(mw, "y")
		if err := agent.Wait(time.Minute); err != nil {
			t.Fatalf("the machine: %v\n%s", err, agent.Output())
		}
		if err := master.Wait(time.Minute); err != nil {
			t.Fatalf("the master: %v\n%s", err, master.Output())
		}
		passwd, _ := os.ReadFile(filepath.Join(m.etc, "passwd"))
		if !regexp.MustCompile(`(?m)^offload:x:\d+:\d+:[^:]*:/home/offload:/bin/(ba)?sh$`).Match(passwd) {
			t.Errorf("no offload login in passwd:\n%s", passwd)
		}
		ssh := func(args ...string) (string, error) {
			base := []string{"-i", "/root/.ssh/id_ed25519", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
				"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"}
			return s.master.run(t, "ssh", append(base, args...)...)
		}
		out, err := ssh("offload@"+m.net.Addr.String(), "guix")
		if err != nil || !strings.Contains(out, "guix stub for offload") {
			t.Errorf("ssh offload@machine guix: %v\n%s\nsshd:\n%s", err, out, s.sshd.Logs())
		}
		// Port forwarding is refused for the master's key.
		out, err = ssh("-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:2222:127.0.0.1:22", "offload@"+m.net.Addr.String(), "true")
		if err == nil {
			t.Errorf("remote port forwarding allowed for the master's key:\n%s", out)
		}
		// No terminal either.
		out, _ = ssh("-tt", "offload@"+m.net.Addr.String(), "true")
		if !strings.Contains(out, "PTY allocation request failed") {
			t.Errorf("a pty was allocated for the master's key:\n%s", out)
		}

		if out, err := s.master.run(t, s.master.offload, "pair", "--config", s.config, "--remove", "builder1"); err != nil {
			t.Fatalf("guix-offload pair --remove: %v\n%s", err, out)
		}
		if out, err := m.run(t, m.agent, "pair", "--user", "offload", "--remove", "master"); err != nil {
			t.Fatalf("guix-offload-agent pair --remove: %v\n%s", err, out)
		}
		unchanged(t)
	})
}

// stdinPipe is a pipe for a process's standard input: an *os.File, so
// that waiting for the process does not wait for the pipe's writer.
func stdinPipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func readACL(t *testing.T, path string) *pki.ACL {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	acl, err := pki.ParseACL(data, path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("(acl")) {
		t.Errorf("%s does not start with (acl", path)
	}
	return acl
}
