package standintest

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
	"github.com/guix-offload/guix-offload/internal/worker"
	"github.com/guix-offload/guix-offload/test/standin/internal/derivation"
)

// Package is the stand-in's import path, for netns.BuildBinary.
const Package = "github.com/guix-offload/guix-offload/test/standin"

// Host is one machine's Guix as the stand-in plays it.
type Host struct {
	Name string
	// Store is the store directory as programs see it (e.g. /gnu/store);
	// Backing is the directory that holds this host's items.
	Store, Backing string
	// Dir holds the host's state, keys, ACL and bin directory.
	Dir string
	// Bin is a directory holding `guix` (the wrapper); put it first on
	// PATH. Guix is the wrapper's path.
	Bin, Guix string
	// SigningKey is the host's public key; SigningKeyFile and ACLFile
	// are where the secret key and the ACL live.
	SigningKey     *pki.PublicKey
	SigningKeyFile string
	ACLFile        string

	standin string
	env     []string
	// daemonArgs and stopDaemon are set while StartDaemon's daemon runs.
	daemonArgs []string
	stopDaemon func()
}

// NewHost makes a host whose store appears at store (created when
// missing; with root only) and whose items live in a fresh directory
// bind-mounted there by [Host.Prefix]. With store "", the fresh directory
// is the store itself and needs no mount (a host that is this process). The
// stand-in binary is built once per test process. Env entries are added to
// the wrapper's environment (e.g. GUIX_STANDIN_SYSTEMS=…).
func NewHost(t testing.TB, name, store string, env ...string) *Host {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.LookPath(t, "unshare", "util-linux")
	standin := netns.BuildBinary(t, Package)
	dir := t.TempDir()
	h := &Host{
		Name: name, Store: store, Dir: dir,
		Backing:        filepath.Join(dir, "store"),
		Bin:            filepath.Join(dir, "bin"),
		SigningKeyFile: filepath.Join(dir, "signing-key.sec"),
		ACLFile:        filepath.Join(dir, "acl"),
	}
	h.Guix = filepath.Join(h.Bin, "guix")
	if store == "" {
		h.Store = h.Backing
	}
	dirs := []string{h.Backing, h.Bin, filepath.Join(dir, "state"), h.Store, h.SocketDir()}
	if store != "" {
		// The mount points: the store and the socket directory, as on
		// a Guix system; removed after the tests when they made them.
		MountPoint(t, store)
		MountPoint(t, filepath.Dir(worker.DefaultSocket))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.SigningKey = GenerateKey(t, filepath.Join(dir, "signing-key.pub"), h.SigningKeyFile)
	h.Authorize(t) // an ACL that authorizes no one yet
	h.standin = standin
	h.env = append([]string{
		"GUIX_STANDIN_STORE=" + h.Store,
		"GUIX_STANDIN_STATE=" + filepath.Join(dir, "state"),
		"GUIX_STANDIN_SIGNING_KEY=" + h.SigningKeyFile,
		"GUIX_STANDIN_ACL=" + h.ACLFile,
	}, env...)
	h.writeWrapper(t)
	return h
}

// AddEnv adds environment entries to h's stand-in from now on (e.g.
// GUIX_STANDIN_TAMPER=FROM=TO).
func (h *Host) AddEnv(t testing.TB, env ...string) {
	t.Helper()
	h.env = append(h.env, env...)
	h.writeWrapper(t)
	if h.stopDaemon != nil {
		// The daemon reads its environment once: restart it.
		h.stopDaemon()
		h.StartDaemon(t, h.daemonArgs...)
	}
}

func (h *Host) writeWrapper(t testing.TB) {
	t.Helper()
	var script strings.Builder
	script.WriteString("#!/bin/sh\n# The Guix stand-in for tests (test/standin), configured for host " + h.Name + ".\n")
	for _, v := range h.env {
		k, val, _ := strings.Cut(v, "=")
		fmt.Fprintf(&script, "%s=%s; export %s\n", k, shellQuote(val), k)
	}
	fmt.Fprintf(&script, "exec %s \"$@\"\n", shellQuote(h.standin))
	tmp := h.Guix + ".tmp"
	if err := os.WriteFile(tmp, []byte(script.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.Guix); err != nil {
		t.Fatal(err)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Prefix is a command prefix that runs a program in a private mount
// namespace where h.Store shows h.Backing and guix-daemon's socket
// directory, /var/guix/daemon-socket, shows h's own (where
// [Host.StartDaemon] listens). It execs the program, so killing the
// process group kills it. It is empty when h.Store is h.Backing.
func (h *Host) Prefix() []string {
	if h.Store == h.Backing {
		return nil
	}
	return []string{"unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" "$2" && mount --bind "$3" "$4" && shift 4 && exec "$@"`, "standin-mount",
		h.Backing, h.Store, h.SocketDir(), filepath.Dir(worker.DefaultSocket)}
}

// SocketDir is the directory of h's daemon socket; DaemonSocket the
// socket itself, as this process sees it.
func (h *Host) SocketDir() string { return filepath.Join(h.Dir, "daemon-socket") }

// DaemonSocket is where [Host.StartDaemon] listens, as this process sees
// it (in h's mount namespace it is also /var/guix/daemon-socket/socket).
func (h *Host) DaemonSocket() string { return filepath.Join(h.SocketDir(), "socket") }

// StartDaemon runs the stand-in's guix-daemon (`guix daemon`) for h, in
// h's mount namespace, listening on [Host.DaemonSocket], with extra
// arguments (e.g. --protocol-version=0x160), until the test ends.
func (h *Host) StartDaemon(t testing.TB, extra ...string) {
	t.Helper()
	argv := append(append(h.Prefix(), h.Guix, "daemon", "--listen="+h.DaemonSocket()), extra...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	// Pdeathsig: it goes with the test binary even when that is killed
	// (its timeout) before any cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the stand-in daemon: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			_ = os.Remove(h.DaemonSocket())
		})
	}
	h.daemonArgs, h.stopDaemon = extra, stop
	t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(h.DaemonSocket()); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stand-in daemon did not listen on %s within 20 s", h.DaemonSocket())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Authorize writes h's ACL so that it authorizes exactly keys.
func (h *Host) Authorize(t testing.TB, keys ...*pki.PublicKey) {
	t.Helper()
	if err := os.WriteFile(h.ACLFile, pki.NewACL(keys...).MarshalSexp(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ACL reads h's ACL back.
func (h *Host) ACL(t testing.TB) *pki.ACL {
	t.Helper()
	acl, err := pki.ReadACL(h.ACLFile)
	if err != nil {
		t.Fatal(err)
	}
	return acl
}

// Path returns a fresh store path named name (a random hash part).
func (h *Host) Path(name string) string {
	return filepath.Join(h.Store, RandomHash()+"-"+name)
}

// Local returns where p (a path under h.Store) lives on this machine.
func (h *Host) Local(p string) string {
	rel, err := filepath.Rel(h.Store, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		panic("standintest: " + p + " is not under " + h.Store)
	}
	return filepath.Join(h.Backing, rel)
}

// AddFile adds a regular file item holding content and returns its path.
func (h *Host) AddFile(t testing.TB, name, content string) string {
	t.Helper()
	p := h.Path(name)
	if err := os.WriteFile(h.Local(p), []byte(content), 0o444); err != nil {
		t.Fatal(err)
	}
	return p
}

// AddDerivation writes d as a .drv item named name (".drv" appended) and
// returns its path. d's outputs must already name their paths.
func (h *Host) AddDerivation(t testing.TB, name string, d *derivation.Derivation) string {
	t.Helper()
	d.Sort()
	p := h.Path(name + ".drv")
	if err := os.WriteFile(h.Local(p), []byte(d.String()), 0o444); err != nil {
		t.Fatal(err)
	}
	return p
}

// Exists reports whether store path p exists on h.
func (h *Host) Exists(p string) bool {
	_, err := os.Lstat(h.Local(p))
	return err == nil
}

// Entries lists the names in h's store directory.
func (h *Host) Entries(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir(h.Backing)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// ShellDerivation returns a derivation with one output "out" at a fresh
// path that runs script with /bin/sh (PATH is this machine's /usr/bin and
// /bin: the tests have no Guix packages); inputs are .drv paths (their
// output "out") and sources are other items. env entries are added.
func (h *Host) ShellDerivation(name, system, script string, inputs, sources []string, env ...[2]string) *derivation.Derivation {
	out := h.Path(name)
	d := &derivation.Derivation{
		Outputs: []derivation.Output{{Name: "out", Path: out}},
		Sources: sources,
		System:  system,
		Builder: "/bin/sh",
		Args:    []string{"-c", script},
		Env:     append([][2]string{{"out", out}, {"name", name}, {"system", system}, {"PATH", "/usr/bin:/bin"}}, env...),
	}
	for _, in := range inputs {
		d.Inputs = append(d.Inputs, derivation.Input{Drv: in, Outputs: []string{"out"}})
	}
	return d
}

// RandomHash returns 32 characters of Nix's base-32 alphabet.
func RandomHash() string {
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

const genkey = `(use-modules (gcrypt pk-crypto))
(let* ((pair (generate-key (string->canonical-sexp "(genkey (ecdsa (curve Ed25519) (flags rfc6979)))")))
       (pub (find-sexp-token pair 'public-key))
       (sec (find-sexp-token pair 'private-key)))
  (define (write-sexp file sexp)
    ;; Octet for octet (ISO-8859-1): in the C locale, the octets 0xA1-0xFF
    ;; libgcrypt may leave in a quoted atom would be written as "?".
    (call-with-output-file file
      (lambda (p)
        (set-port-encoding! p "ISO-8859-1")
        (set-port-conversion-strategy! p 'error)
        (display (canonical-sexp->string sexp) p))))
  (write-sexp (cadr (command-line)) pub)
  (write-sexp (caddr (command-line)) sec))
`

// GenerateKey makes a Guix signing key pair with real libgcrypt, as
// `guix archive --generate-key` does (ECDSA on Ed25519), writes it to
// pubFile and secFile, and returns the public key.
func GenerateKey(t testing.TB, pubFile, secFile string) *pki.PublicKey {
	t.Helper()
	guile := testenv.LookPath(t, "guile", "guile-3.0")
	script := filepath.Join(t.TempDir(), "genkey.scm")
	if err := os.WriteFile(script, []byte(genkey), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(guile, "--no-auto-compile", script, pubFile, secFile).CombinedOutput()
	if err != nil {
		testenv.Skip(t, fmt.Sprintf("guile-gcrypt cannot make a key (install Debian's guile-gcrypt): %v: %s", err, out))
	}
	pub, err := pki.ReadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
