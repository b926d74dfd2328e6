package sshd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// Path is where Debian's openssh-server installs sshd.
const Path = "/usr/sbin/sshd"

// Options says how to run sshd. The zero value is a loopback sshd for root.
type Options struct {
	// Prefix is prepended to sshd's command line, e.g.
	// []string{"ip", "netns", "exec", "host1"}. The prefix must exec sshd
	// (not fork it) so that killing the process group kills sshd.
	Prefix []string
	// ListenAddress is HOST:PORT. Empty means 127.0.0.1 at a free port of
	// this network namespace; with a Prefix, give it explicitly.
	ListenAddress string
	// User is the account clients log in as; "" means root. The client key
	// is authorized for every user (AuthorizedKeysFile is shared).
	User string
	// AuthorizedKeys are extra public key lines accepted besides the
	// generated client key.
	AuthorizedKeys []string
	// UserKeys also accepts the keys of each user's own
	// ~/.ssh/authorized_keys (as a default sshd does), for tests of what
	// writes them.
	UserKeys bool
	// ExtraConfig is appended to sshd_config verbatim (e.g. "SetEnv PATH=…").
	ExtraConfig string
	// Dir holds the config, keys and logs; "" means t.TempDir().
	Dir string
	// ReadyTimeout bounds the wait for "Server listening"; 0 means 10 s.
	ReadyTimeout time.Duration
	// Home is the directory the login user's home shows inside sshd's
	// private mount namespace, so that remote commands never run the
	// dotfiles of whoever runs the tests (a slow ~/.bashrc). "" means a
	// fresh empty directory; put a .bashrc there to play a machine
	// whose login shell is slow.
	Home string
}

// Server is a running sshd.
type Server struct {
	// Addr is HOST:PORT; Host and Port are its parts.
	Addr string
	Host string
	Port int
	// HostKey is the server's public host key as an OpenSSH line
	// ("ssh-ed25519 AAAA…"), without a comment.
	HostKey string
	// HostKeyFile is the private host key file.
	HostKeyFile string
	// ClientKeyFile is an unencrypted OpenSSH Ed25519 private key that may
	// log in; ClientPublicKey is its public line.
	ClientKeyFile   string
	ClientPublicKey string
	// User is the login name (root unless Options.User says otherwise).
	User string
	// Dir is the directory holding sshd_config, keys and the pid file.
	Dir string
	// ConfigFile is the sshd_config used.
	ConfigFile string
	// Home is the directory that logins see as their home (see
	// [Options.Home]).
	Home string

	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	once sync.Once
}

// Start starts sshd and waits until it listens. Everything is undone at
// t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	testenv.NeedRoot(t)
	if _, err := os.Stat(Path); err != nil {
		testenv.Skip(t, "sshd not found at "+Path+"; install Debian's openssh-server (./test.sh does)")
	}
	keygen := testenv.LookPath(t, "ssh-keygen", "openssh-client")
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("create /run/sshd: %v", err)
	}

	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	s := &Server{Dir: dir, User: opts.User, logs: &syncBuffer{}, done: make(chan struct{})}
	if s.User == "" {
		s.User = "root"
	}

	s.HostKeyFile = filepath.Join(dir, "ssh_host_ed25519_key")
	s.HostKey = GenerateKey(t, keygen, s.HostKeyFile, "ed25519", "")
	s.ClientKeyFile = filepath.Join(dir, "id_ed25519")
	s.ClientPublicKey = GenerateKey(t, keygen, s.ClientKeyFile, "ed25519", "")

	authorized := filepath.Join(dir, "authorized_keys")
	keys := append([]string{s.ClientPublicKey}, opts.AuthorizedKeys...)
	if err := os.WriteFile(authorized, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Logins get an empty home: sshd runs in a private mount namespace
	// (inside whatever Prefix set up) where the user's home directory
	// is a bind mount of s.Home. The mount goes with the namespace.
	userHome := homeOf(t, s.User)
	s.Home = opts.Home
	if s.Home == "" {
		s.Home = filepath.Join(dir, "home")
		if err := os.Mkdir(s.Home, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	unshare := testenv.LookPath(t, "unshare", "util-linux")
	s.ConfigFile = filepath.Join(dir, "sshd_config")
	// In its own PID namespace too, whose first process sshd becomes:
	// when it ends, the kernel ends every process left in it, such as a
	// login shell whose client hung up (it would otherwise be orphaned
	// to init and run on), and --kill-child ends it with unshare, which
	// goes with the test binary (Pdeathsig, in start).
	argv := append(append([]string{}, opts.Prefix...),
		unshare, "-m", "--propagation", "private", "--pid", "--fork", "--kill-child", "sh", "-c",
		`mount --bind "$1" "$2" && shift 2 && exec "$@"`, "sshd-home", s.Home, userHome,
		Path, "-D", "-e", "-f", s.ConfigFile)
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sshd (%s) log:\n%s", s.Addr, s.Logs())
		}
	})

	timeout := opts.ReadyTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	// A free port is one nothing used a moment ago: by the time sshd
	// binds it, a connection of another test process (go test runs
	// packages in parallel) may have taken it as its own port. sshd then
	// exits saying so, and it gets another.
	for attempt := 1; ; attempt++ {
		addr := opts.ListenAddress
		if addr == "" {
			addr = freeLoopbackAddr(t)
		}
		host, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("sshd listen address %q: %v", addr, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			t.Fatalf("sshd listen address %q: bad port", addr)
		}
		s.Addr, s.Host, s.Port = addr, host, port
		if err := os.WriteFile(s.ConfigFile, []byte(config(s, opts, authorized)), 0o600); err != nil {
			t.Fatal(err)
		}
		if s.start(t, argv, timeout) {
			return s
		}
		if opts.ListenAddress != "" || attempt == 5 || !strings.Contains(s.Logs(), "Address already in use") {
			t.Fatalf("sshd exited before listening: %v\n%s", s.cmd.ProcessState, s.Logs())
		}
		t.Logf("sshd: %s was taken meanwhile; trying another port", addr)
	}
}

// config returns the sshd_config for s.
func config(s *Server, opts Options, authorized string) string {
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "ListenAddress %s\n", s.Addr)
	fmt.Fprintf(&cfg, "HostKey %s\n", s.HostKeyFile)
	fmt.Fprintf(&cfg, "PidFile %s\n", filepath.Join(s.Dir, "sshd.pid"))
	if opts.UserKeys {
		fmt.Fprintf(&cfg, "AuthorizedKeysFile %s .ssh/authorized_keys\n", authorized)
	} else {
		fmt.Fprintf(&cfg, "AuthorizedKeysFile %s\n", authorized)
	}
	cfg.WriteString("StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n" +
		"PasswordAuthentication no\nKbdInteractiveAuthentication no\n" +
		"PubkeyAuthentication yes\nLogLevel VERBOSE\nUseDNS no\n" +
		"MaxStartups 100\nMaxSessions 100\nClientAliveInterval 0\n")
	if supportsPenalties() {
		// OpenSSH ≥ 9.8 penalizes sources that fail to authenticate, which
		// would make one refused-key test break the next connection.
		cfg.WriteString("PerSourcePenalties no\n")
	}
	if opts.ExtraConfig != "" {
		cfg.WriteString(opts.ExtraConfig + "\n")
	}
	return cfg.String()
}

// start runs argv (sshd, as Start prepared it) and waits until it
// listens (true) or exits first (false); it stops t when it does neither
// within timeout.
func (s *Server) start(t testing.TB, argv []string, timeout time.Duration) bool {
	t.Helper()
	logs, done := &syncBuffer{}, make(chan struct{})
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logs
	cmd.Stderr = logs
	// Pdeathsig: sshd goes with the test binary even when it is killed
	// (its timeout) before any cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.cmd, s.logs, s.done = cmd, logs, done
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(argv, " "), err)
	}
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(logs.String(), "Server listening on") {
		select {
		case <-done:
			return false
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %s within %v:\n%s", s.Addr, timeout, logs.String())
		}
	}
	return true
}

// Pid is the process id of sshd's listener (or of the Prefix program it
// runs under).
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Logs returns what sshd wrote so far.
func (s *Server) Logs() string { return s.logs.String() }

// Stop kills sshd's process group and waits for it. Safe to call twice.
func (s *Server) Stop() {
	s.once.Do(func() {
		if s.cmd == nil {
			return // never started
		}
		if s.cmd.Process != nil {
			// Per-connection sshd processes start their own sessions, so
			// the process group alone does not reach them.
			for _, pid := range Descendants(s.cmd.Process.Pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		}
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
		}
	})
}

// Signal sends sig to every per-connection process of sshd (not to the
// listener), e.g. SIGSTOP to make established connections go silent.
func (s *Server) Signal(sig syscall.Signal) {
	for _, pid := range Descendants(s.cmd.Process.Pid) {
		_ = syscall.Kill(pid, sig)
	}
}

// Descendants lists the processes below pid (children, grandchildren, …),
// read from /proc.
func Descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name is in parentheses and may contain spaces.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 && len(out) < 10000 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// Done is closed when sshd has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// GenerateKey makes a private key of type typ ("ed25519", "rsa", "ecdsa")
// at path with ssh-keygen, protected by passphrase when non-empty, and
// returns the public key line without its comment.
func GenerateKey(t testing.TB, keygen, path, typ, passphrase string) string {
	t.Helper()
	if keygen == "" {
		keygen = testenv.LookPath(t, "ssh-keygen", "openssh-client")
	}
	args := []string{"-q", "-t", typ, "-N", passphrase, "-C", "", "-f", path}
	if typ == "rsa" {
		args = append(args, "-b", "2048")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, keygen, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		t.Fatalf("ssh-keygen wrote a bad public key: %q", pub)
	}
	return f[0] + " " + f[1]
}

// homeOf returns the home directory of user as the password database
// has it, where sshd starts login shells.
func homeOf(t testing.TB, name string) string {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("sshd: look up user %s: %v", name, err)
	}
	if fi, err := os.Stat(u.HomeDir); err != nil || !fi.IsDir() {
		t.Fatalf("sshd: home directory %s of %s is not a directory (it is where an empty one gets mounted): %v", u.HomeDir, name, err)
	}
	return u.HomeDir
}

func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

var versionRE = regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`)

// supportsPenalties reports whether this sshd knows PerSourcePenalties
// (OpenSSH 9.8 and later).
func supportsPenalties() bool {
	out, _ := exec.Command(Path, "-V").CombinedOutput()
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return false
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	return major > 9 || major == 9 && minor >= 8
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
