package hook_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
)

// spec is one machines.scm entry for a test.
type spec struct {
	name     string
	port     int
	systems  []string
	features []string
	user     string
	key      string
	hostKey  string
	parallel int
	speed    float64
	overload string // "" → Guix's default; "#f" or a number
}

func (s spec) scm() string {
	q := func(xs []string) string {
		parts := make([]string, len(xs))
		for i, x := range xs {
			parts[i] = fmt.Sprintf("%q", x)
		}
		return "'(" + strings.Join(parts, " ") + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  (build-machine\n   (name %q)\n   (port %d)\n   (systems %s)\n   (user %q)\n", s.name, s.port, q(s.systems), s.user)
	fmt.Fprintf(&b, "   (private-key %q)\n   (host-key %q)\n", s.key, s.hostKey)
	if s.parallel > 0 {
		fmt.Fprintf(&b, "   (parallel-builds %d)\n", s.parallel)
	}
	if s.speed > 0 {
		fmt.Fprintf(&b, "   (speed %g)\n", s.speed)
	}
	if s.overload != "" {
		fmt.Fprintf(&b, "   (overload-threshold %s)\n", s.overload)
	}
	fmt.Fprintf(&b, "   (features %s))\n", q(s.features))
	return b.String()
}

// specFor describes the machine served by sshd s.
func specFor(s *sshd.Server, systems ...string) spec {
	if len(systems) == 0 {
		systems = []string{"x86_64-linux"}
	}
	return spec{name: s.Host, port: s.Port, systems: systems, user: s.User, key: s.ClientKeyFile,
		hostKey: s.HostKey, parallel: 1, speed: 1}
}

// env is a master for one test: configuration, machines.scm, state
// directory and store, all in a temporary directory.
type env struct {
	t        testing.TB
	dir      string
	state    string
	store    string
	machines string
	config   string
	hold     string
}

func newEnv(t testing.TB) *env {
	dir := t.TempDir()
	e := &env{t: t, dir: dir, state: filepath.Join(dir, "state"), store: filepath.Join(dir, "store"),
		machines: filepath.Join(dir, "machines.scm"), config: filepath.Join(dir, "hook.toml"), hold: filepath.Join(dir, "hold")}
	for _, d := range []string{e.store, e.hold, filepath.Join(dir, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The local guix an accepted build needs (the fake transports never
	// run it; the real one fails on the machine first).
	if err := os.WriteFile(filepath.Join(dir, "bin", "guix"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeConfig("")
	return e
}

// writeConfig writes hook.toml: our paths, discovery off unless extra
// turns it on (never browse this machine's own network), plus extra.
// The connect timeout is generous (a real sshd's handshake on a loaded
// machine can take more than a second): a test about the bound sets its
// own.
func (e *env) writeConfig(extra string) {
	acl, _ := filepath.Abs("testdata/acl")
	cfg := fmt.Sprintf(`machines-file = %q
state-directory = %q
store = %q
acl = %q
real-guix = %q
connect-timeout = "5s"
down-time = "1m"
`, e.machines, e.state, e.store, acl, filepath.Join(e.dir, "bin", "guix"))
	if !strings.Contains(extra, "browse-timeout") {
		cfg += "browse-timeout = \"0s\"\n"
	}
	if !strings.Contains(extra, "discovery") {
		cfg += "discovery = false\n"
	}
	if err := os.WriteFile(e.config, []byte(cfg+extra+"\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// override replaces keys of the written hook.toml with settings, each
// "key = value".
func (e *env) override(settings ...string) {
	data, err := os.ReadFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for _, set := range settings {
		key, _, _ := strings.Cut(set, " ")
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, key+" ") })
	}
	lines = append(lines, settings...)
	if err := os.WriteFile(e.config, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// unreachable is a machines.scm entry for a machine nothing listens on.
func unreachable(systems ...string) spec {
	if len(systems) == 0 {
		systems = []string{"x86_64-linux"}
	}
	return spec{name: "127.0.0.1", port: 9, systems: systems, user: "u", key: "/nonexistent/key",
		hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDs8rR0lXyZk6iQ2F4kOcbq6uMFIk2x1sBlHPo2kYmbJ", parallel: 1, speed: 1}
}

func (e *env) writeMachines(specs ...spec) {
	var b strings.Builder
	b.WriteString(";; machines for a test\n(list\n")
	for _, s := range specs {
		b.WriteString(s.scm())
	}
	b.WriteString(")\n")
	if err := os.WriteFile(e.machines, []byte(b.String()), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// start runs the test binary as the hook through the daemon driver.
func (e *env) start(transportSpec string, extraEnv ...string) *daemon.Hook {
	exe, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	envv := append(os.Environ(), modeEnv+"=hook", "GUIX_OFFLOAD_CONFIG="+e.config)
	if transportSpec != "" {
		envv = append(envv, transportEnv+"="+transportSpec)
	}
	return daemon.Start(e.t, daemon.Options{Program: exe, System: "x86_64-linux", MaxSilentTime: 3600,
		PrintBuildTrace: true, BuildTimeout: 7200, Env: append(envv, extraEnv...), ReplyTimeout: 20 * time.Second})
}

func (e *env) output(name string) string { return filepath.Join(e.store, "zzzz-"+name) }

func drv(name string) string { return "/gnu/store/aaaa-" + name + ".drv" }

func req(willing bool, system, name string, features ...string) daemon.Req {
	return daemon.Req{Willing: willing, System: system, Drv: drv(name), Features: features}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustReply(t testing.TB, h *daemon.Hook, r daemon.Req, want string) daemon.Reply {
	t.Helper()
	rep, err := h.Request(ctxT(t), r)
	if err != nil {
		t.Fatalf("request %q: %v", r.Line(), err)
	}
	if rep.Answer != want {
		t.Fatalf("request %q: answer %q, want %q; chatter:\n%s", r.Line(), rep.Answer, want, strings.Join(rep.Chatter, "\n"))
	}
	for _, c := range rep.Chatter {
		if strings.HasPrefix(c, "#") {
			t.Errorf("chatter line starts with '#': %q", c)
		}
	}
	return rep
}

func chatterHas(rep daemon.Reply, subs ...string) bool {
	all := strings.Join(rep.Chatter, "\n")
	for _, s := range subs {
		if !strings.Contains(all, s) {
			return false
		}
	}
	return true
}

func ssh256(k interface{ Marshal() []byte }) string {
	sum := sha256.Sum256(k.Marshal())
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
