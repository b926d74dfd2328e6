//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/hook"
	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
	"github.com/guix-offload/guix-offload/test/standin/standintest"
)

// runOffload is issue 14's rows: a whole offloaded build, from starting
// the hook to the output in the master's store, through the daemon
// driver, with the stand-in playing Guix on both sides; the direct path
// (the machine's guix-daemon over the SSH connection, the master's daemon
// exporting) against the guix commands the transport falls back to.
func runOffload(t *testing.T, s *suite) {
	program, why := s.shim(t)
	if program == "" {
		s.add(Row{Measure: "whole offloaded build", Ours: NotMeasured(why), Ratio: "—"})
		return
	}
	s.note("a whole offloaded build: the daemon driver starts the hook, sends the request and, after `# accept`, the inputs and outputs lines, and waits for its exit with the output in the master's store (what guix-daemon waits for). Master and build machine are stand-in Guix hosts on this machine (their own stores, keys and ACLs; sshd on 127.0.0.1 in the machine's mount namespace, a clean login as in row 1). \"Direct\": both run the stand-in's guix-daemon, and the hook talks to the machine's over a stream-local channel of its one SSH connection (query, import, build, export) and exports the inputs itself, signed with the master's key, with data from the master's. \"Commands\": no daemon socket, so the hook says so in one line and runs `guix archive --missing`, `guix archive --import`, `guix build` and `guix archive --export` there and `guix archive --export` locally, as before. The stand-in starts in a few milliseconds; a real `guix` is a Guile start of about half a second, which the direct path saves per build, so the second pair of rows makes every stand-in command wait -bench.guix-start (default 500 ms, what issue 14 measured a `guix` start to cost on a real machine) first, and every signing or checking daemon connection once (guix-daemon starting its `guix authenticate` helper). The direct path starts no `guix` command; the machine's daemon starts its helper once, and the master's none (the hook signs the inputs itself); the hook and its one SSH connection are what remains. On the commands path, `guix archive --export` and `--import` are charged that helper too.")
	direct := newOffloadWorld(t, program, true)
	commands := newOffloadWorld(t, program, false)
	n := max(3, *flagRuns*2)
	for _, startup := range []time.Duration{0, *flagGuixStart} {
		if startup > 0 {
			for _, w := range []*offloadWorld{direct, commands} {
				for _, h := range []*standintest.Host{w.master, w.builder} {
					h.AddEnv(t, "GUIX_STANDIN_STARTUP="+startup.String())
				}
			}
		}
		measureOffload(t, s, direct, commands, n, startup)
		measureTest(t, s, direct, commands, n, startup)
	}
}

// measureTest times `guix-offload test` (connection, checks, the import
// and export round trip, vitals) against the one machine, on each path.
func measureTest(t *testing.T, s *suite, direct, commands *offloadWorld, n int, startup time.Duration) {
	bin := s.buildBinary(t, "guix-offload")
	if bin == "" {
		return
	}
	var dS, cS Sample
	for i := 0; i < n; i++ {
		dS = append(dS, direct.test(t, s.ctx, bin))
		cS = append(cS, commands.test(t, s.ctx, bin))
	}
	stand := "stand-in"
	if startup > 0 {
		stand = fmt.Sprintf("stand-in, %v per Guile start", startup)
	}
	s.add(Row{
		Measure:   "`guix-offload test` of one machine (round trip included), " + stand + ": direct path (ours) vs guix commands (reference)",
		Ours:      fmt.Sprintf("%s (median of %d, worst %s)", Seconds(dS.Median()), len(dS), Seconds(dS.Max())),
		Reference: fmt.Sprintf("%s (median of %d, worst %s)", Seconds(cS.Median()), len(cS), Seconds(cS.Max())),
		Ratio:     Ratio(dS.Median(), cS.Median(), Lower),
	})
}

// test times one `guix-offload test` run in the master's namespace.
func (w *offloadWorld) test(t *testing.T, ctx context.Context, bin string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	argv := append(w.master.Prefix(), bin, "test")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = w.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil || !strings.Contains(string(out), "verdict: usable") {
		t.Fatalf("guix-offload test: %v\n%s", err, out)
	}
	return d.Seconds()
}

func measureOffload(t *testing.T, s *suite, direct, commands *offloadWorld, n int, startup time.Duration) {
	for _, inputs := range []int{1, 10} {
		var dS, cS Sample
		for i := 0; i < n; i++ {
			dS = append(dS, direct.offload(t, s.ctx, inputs))
			cS = append(cS, commands.offload(t, s.ctx, inputs))
		}
		what := "a trivial build (its .drv and 1 source missing on the machine)"
		if inputs > 1 {
			what = fmt.Sprintf("a build with %d inputs missing on the machine (and its .drv), 4 KiB each", inputs)
		}
		stand := "stand-in"
		if startup > 0 {
			stand = fmt.Sprintf("stand-in whose every `guix` command first waits %v, a real Guile start", startup)
		}
		s.add(Row{
			Measure:   "whole offloaded build, " + what + ", daemon driver + " + stand + ": direct path (ours) vs guix commands (reference)",
			Ours:      fmt.Sprintf("%s (median of %d, worst %s)", Seconds(dS.Median()), len(dS), Seconds(dS.Max())),
			Reference: fmt.Sprintf("%s (median of %d, worst %s)", Seconds(cS.Median()), len(cS), Seconds(cS.Max())),
			Ratio:     Ratio(dS.Median(), cS.Median(), Lower),
		})
	}
}

// offloadWorld is a master and a build machine for runOffload.
type offloadWorld struct {
	master, builder *standintest.Host
	srv             *sshd.Server
	program         string
	env             []string
	n               int
}

func newOffloadWorld(t *testing.T, program string, withDaemons bool) *offloadWorld {
	t.Helper()
	const system = "x86_64-linux"
	w := &offloadWorld{program: program}
	w.master = standintest.NewHost(t, "master", "/gnu/store", "GUIX_STANDIN_SYSTEMS="+system)
	w.builder = standintest.NewHost(t, "builder", "/gnu/store", "GUIX_STANDIN_SYSTEMS="+system)
	w.builder.Authorize(t, w.master.SigningKey)
	w.master.Authorize(t, w.builder.SigningKey)
	if withDaemons {
		w.master.StartDaemon(t)
		w.builder.StartDaemon(t)
	}
	// A clean login, as for the other rows (see loopbackSSHD): this
	// machine's own root ~/.bashrc would run for every command.
	w.srv = sshd.Start(t, sshd.Options{
		Prefix: append(w.builder.Prefix(), "sh", "-c",
			`mount -t tmpfs -o mode=0700 bench-root /root && exec "$@"`, "sh"),
		ExtraConfig: "SetEnv PATH=" + w.builder.Bin + ":/usr/sbin:/usr/bin:/sbin:/bin",
	})
	dir := t.TempDir()
	scm := fmt.Sprintf("(list (build-machine (name %q) (port %d) (systems (list %q)) (user %q) (host-key %q) (private-key %q) (parallel-builds 1) (speed 1.0) (overload-threshold #f)))\n",
		w.srv.Host, w.srv.Port, system, w.srv.User, w.srv.HostKey, w.srv.ClientKeyFile)
	cfg := fmt.Sprintf("machines-file = %q\nstate-directory = %q\nacl = %q\ndiscovery = false\ncache = %q\nbrowse-timeout = \"0s\"\nuser = \"root\"\nreal-guix = %q\nstore = \"/gnu/store\"\ncompress = false\nconnect-timeout = \"10s\"\n",
		filepath.Join(dir, "machines.scm"), filepath.Join(dir, "state"), w.master.ACLFile, filepath.Join(dir, "machines.json"), w.master.Guix)
	for name, text := range map[string]string{"machines.scm": scm, "hook.toml": cfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.env = append(os.Environ(), hook.ConfigEnv+"="+filepath.Join(dir, "hook.toml"))
	return w
}

// offload makes a fresh derivation with inputs fresh sources (so that
// all are missing on the machine), then times one whole offloaded build
// of it.
func (w *offloadWorld) offload(t *testing.T, ctx context.Context, inputs int) float64 {
	t.Helper()
	w.n++
	m := w.master
	var srcs []string
	var env [][2]string
	script := `echo "building on the machine"; : > "$out"`
	for i := 0; i < inputs; i++ {
		src := m.AddFile(t, fmt.Sprintf("src%d-%d.txt", w.n, i), strings.Repeat(fmt.Sprintf("input %d of run %d\n", i, w.n), 200))
		srcs = append(srcs, src)
		env = append(env, [2]string{fmt.Sprintf("src%d", i), src})
		script += fmt.Sprintf(`; cat "$src%d" >> "$out"`, i)
	}
	d := m.ShellDerivation(fmt.Sprintf("bench%d", w.n), "x86_64-linux", script, nil, srcs, env...)
	drv := m.AddDerivation(t, fmt.Sprintf("bench%d", w.n), d)
	out := d.Outputs[0].Path

	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	h, err := daemon.StartHook(daemon.Options{
		Program: w.program, Prefix: m.Prefix(), System: "x86_64-linux",
		MaxSilentTime: 3600, BuildTimeout: 86400, Env: w.env, OutputExists: m.Exists,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Kill()
	rep, err := h.Request(ctx, daemon.Req{Willing: true, System: "x86_64-linux", Drv: drv})
	if err != nil || rep.Answer != daemon.Accept {
		t.Fatalf("hook answered %q (%v), want accept; chatter: %q\nsshd:\n%s", rep.Answer, err, rep.Chatter, w.srv.Logs())
	}
	res, err := h.Accept(ctx, append([]string{drv}, srcs...), []string{out})
	d2 := time.Since(start)
	if err != nil || res.Outcome != daemon.Succeeded {
		t.Fatalf("offloaded build: %v %+v", err, res)
	}
	return d2.Seconds()
}
