package transport_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
	"github.com/guix-offload/guix-offload/internal/transport"
	"github.com/guix-offload/guix-offload/test/standin/standintest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	netns.CleanupBinaries()
	os.Exit(code)
}

const system = "x86_64-linux"

// world is a master (this process, its store a plain directory) and one
// build machine: the real sshd in a private mount namespace where the
// master's store path shows the machine's own store.
type world struct {
	master, builder *standintest.Host
	sshd            *sshd.Server
	client          *ssh.Client
}

type worldOptions struct {
	agent       bool     // the machine has guix-offload-agent
	trustMaster bool     // the machine's ACL authorizes the master
	trustSigner bool     // the master's ACL authorizes the machine
	builderEnv  []string // extra stand-in environment on the machine
	// daemon runs the stand-in's guix-daemon on the machine, with
	// daemonArgs; masterDaemon on the master too.
	daemon, masterDaemon bool
	daemonArgs           []string
	sshdConfig           string // more sshd_config lines
	// loginRC is the .bashrc of the machine's login user (its login
	// shell reads it before every remote command).
	loginRC string
}

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	w := &world{}
	w.master = standintest.NewHost(t, "master", "", "GUIX_STANDIN_SYSTEMS="+system)
	w.builder = standintest.NewHost(t, "builder", w.master.Store, append([]string{"GUIX_STANDIN_SYSTEMS=" + system}, o.builderEnv...)...)
	if o.trustMaster {
		w.builder.Authorize(t, w.master.SigningKey)
	}
	if o.trustSigner {
		w.master.Authorize(t, w.builder.SigningKey)
	}
	if o.agent {
		agent := netns.BuildBinary(t, "github.com/guix-offload/guix-offload/cmd/guix-offload-agent")
		// The agent runs the machine's guix, found on PATH.
		if err := os.Symlink(agent, filepath.Join(w.builder.Bin, transport.Agent)); err != nil {
			t.Fatal(err)
		}
	}
	if o.daemon {
		w.builder.StartDaemon(t, o.daemonArgs...)
	}
	if o.masterDaemon {
		w.master.StartDaemon(t)
	}
	home := ""
	if o.loginRC != "" {
		home = t.TempDir()
		if err := os.WriteFile(filepath.Join(home, ".bashrc"), []byte(o.loginRC), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.sshd = sshd.Start(t, sshd.Options{
		Home:        home,
		Prefix:      w.builder.Prefix(),
		ExtraConfig: "SetEnv PATH=" + w.builder.Bin + ":/usr/sbin:/usr/bin:/sbin:/bin\n" + o.sshdConfig,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := sshconn.Dial(ctx, sshconn.Target{
		Host: w.sshd.Host, Port: w.sshd.Port, User: w.sshd.User,
		PrivateKeyFile: w.sshd.ClientKeyFile, HostKey: w.sshd.HostKey,
	}, nil)
	if err != nil {
		t.Fatalf("dial sshd: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	w.client = c
	return w
}

// job is a derivation with inputs on the master: a dependency built
// locally first and a source file.
type job struct {
	drv, out string
	inputs   []string
}

func (w *world) job(t *testing.T, script string) job {
	t.Helper()
	m := w.master
	src := m.AddFile(t, "greeting.txt", "hello from the master\n")
	dep := m.ShellDerivation("dep", system, `echo dep >&2; printf 'dep-output' > "$out"`, nil, nil)
	depDrv := m.AddDerivation(t, "dep", dep)
	// Build the dependency locally with the master's stand-in.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := runGuix(ctx, m, "build", depDrv); err != nil {
		t.Fatalf("build dependency on the master: %v\n%s", err, out)
	}
	d := m.ShellDerivation("main", system, script, []string{depDrv}, []string{src},
		[2]string{"dep", dep.Outputs[0].Path}, [2]string{"src", src})
	drv := m.AddDerivation(t, "main", d)
	return job{drv: drv, out: d.Outputs[0].Path, inputs: []string{dep.Outputs[0].Path, depDrv, drv, src}}
}

func (w *world) build(j job, mod func(*transport.Build)) (*transport.Build, *lockedBuffer, *lockedBuffer) {
	log, msg := &lockedBuffer{}, &lockedBuffer{}
	b := &transport.Build{
		Client: w.client, Host: "builder",
		Drv: j.drv, Inputs: j.inputs, Outputs: []string{j.out},
		MaxSilent: 20 * time.Second, Timeout: time.Minute, PrintBuildTrace: true,
		Store: w.master.Store, ACL: nil, Guix: w.master.Guix,
		Log: log, Msg: msg, Compress: true,
	}
	if mod != nil {
		mod(b)
	}
	return b, log, msg
}

const goodScript = `echo "building main on the machine"; cat "$src" > "$out"; cat "$dep" >> "$out"`

func TestRunOffloadsAndRetrieves(t *testing.T) {
	for _, agent := range []bool{false, true} {
		name := "plain"
		if agent {
			name = "compressed"
		}
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, worldOptions{agent: agent, trustMaster: true, trustSigner: true})
			j := w.job(t, goodScript)
			b, log, msg := w.build(j, func(b *transport.Build) { b.ACL = w.master.ACL(t) })
			baseline := runtime.NumGoroutine()
			err := transport.Run(context.Background(), b)
			checkLeaks(t, baseline)
			if err != nil {
				t.Fatalf("Run: %v\nmessages:\n%s\nlog:\n%s", err, msg, log)
			}
			got, err := os.ReadFile(w.master.Local(j.out))
			if err != nil {
				t.Fatalf("output not in the master's store: %v", err)
			}
			if want := "hello from the master\ndep-output"; string(got) != want {
				t.Errorf("output = %q, want %q", got, want)
			}
			if !strings.Contains(log.String(), "building main on the machine") {
				t.Errorf("build log lacks the builder's output:\n%s", log)
			}
			for _, want := range []string{
				"sending 4 store items",
				"@ build-remote " + j.drv + " builder",
				"retrieving 1 store item from 'builder'",
				"found valid signature for '" + j.out + "'",
			} {
				if !strings.Contains(msg.String(), want) {
					t.Errorf("messages lack %q:\n%s", want, msg)
				}
			}
			if agent != strings.Contains(msg.String(), "from 'builder' as") {
				t.Errorf("retrieval compressed = %v, want %v:\n%s", !agent, agent, msg)
			}
			if agent != strings.Contains(msg.String(), "(zstd)") {
				t.Errorf("compression used = %v, want %v:\n%s", !agent, agent, msg)
			}
			// Everything the master sent is on the machine, and nothing
			// was sent twice: a second run sends nothing.
			for _, p := range j.inputs {
				if !w.builder.Exists(p) {
					t.Errorf("input %s missing on the machine", p)
				}
			}
			checkNoTemporaries(t, w.master)
			if err := os.RemoveAll(w.master.Local(j.out)); err != nil {
				t.Fatal(err)
			}
			b, _, msg = w.build(j, func(b *transport.Build) { b.ACL = w.master.ACL(t) })
			if err := transport.Run(context.Background(), b); err != nil {
				t.Fatalf("second Run: %v\n%s", err, msg)
			}
			if strings.Contains(msg.String(), "sending") {
				t.Errorf("second run sent inputs again:\n%s", msg)
			}
		})
	}
}

// checkLeaks waits (boundedly) for the goroutines Run started to end:
// the connection stays open, everything else of Run's must be gone.
func checkLeaks(t *testing.T, baseline int) {
	t.Helper()
	// A leaked goroutine stays: the wait only has to outlast a loaded
	// machine's scheduling.
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines after Run, %d before:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkNoTemporaries(t *testing.T, h *standintest.Host) {
	t.Helper()
	for _, e := range h.Entries(t) {
		if strings.HasPrefix(e, ".") {
			t.Errorf("leftover temporary %s in the store", e)
		}
	}
}

func TestRunFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   worldOptions
		script string
		mod    func(*transport.Build)
		code   int
		want   string
		// lingers: the remote command outlives the session we gave up
		// on, and so do that session's goroutines, until it ends or the
		// connection closes (the hook exits at once).
		lingers bool
		// remote, when set, is the machine's guix (in its PATH as
		// guix-odd) for this case.
		remote string
	}{
		{name: "build fails", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: `echo "about to fail"; exit 3`, code: 100, want: "build failed"},
		// The real daemon prints its verdict right after the builder's
		// last output, on the same line when that lacks a newline
		// ("partialbuilder for `…' failed with exit code 7").
		{name: "build fails after a partial line", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: `printf partial; exit 7`, code: 100, want: "build failed"},
		{name: "silent after a partial line", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: `printf partial; sleep 30; echo late > "$out"`, mod: func(b *transport.Build) { b.MaxSilent = time.Second },
			code: 101, want: "timed out"},
		{name: "timeout after a partial line", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: `printf partial; while :; do printf .; sleep 0.2; done`, mod: func(b *transport.Build) { b.Timeout = 2 * time.Second },
			code: 101, want: "timed out"},
		{name: "build fails, its log mentions a timeout", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: `echo "test net/http timed out after 60 seconds"; exit 1`, code: 100, want: "build failed"},
		{name: "the machine's daemon fails, the log mentions a failed build", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: goodScript,
			remote: "#!/bin/sh\nif [ \"$1\" = build ]; then\n" +
				"  echo \"builder for foo failed to produce output path \\`/tmp/x'\" >&2\n" +
				"  echo \"hash mismatch in fixed-output derivation \\`/gnu/store/x-foo.drv':\" >&2\n" +
				"  echo \"guix build: error: failed to connect to \\`/var/guix/daemon-socket/socket': Connection refused\" >&2\n" +
				"  exit 1\nfi\nexec guix \"$@\"\n",
			code: 1, want: "Connection refused"},
		{name: "silent build", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: `sleep 30; echo late > "$out"`, mod: func(b *transport.Build) { b.MaxSilent = time.Second },
			code: 101, want: "timed out"},
		{name: "build timeout", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: `while :; do echo tick; sleep 0.2; done`, mod: func(b *transport.Build) { b.Timeout = 2 * time.Second },
			code: 101, want: "timed out"},
		{name: "output signed by an unauthorized key", opts: worldOptions{trustMaster: true, trustSigner: false},
			script: goodScript, code: 1, want: "not authorized"},
		{name: "tampered archive", opts: worldOptions{trustMaster: true, trustSigner: true, builderEnv: []string{"GUIX_STANDIN_TAMPER=hello=HELLO"}},
			script: goodScript, code: 1, want: "hash mismatch"},
		{name: "tampered compressed archive", opts: worldOptions{agent: true, trustMaster: true, trustSigner: true, builderEnv: []string{"GUIX_STANDIN_TAMPER=hello=HELLO"}},
			script: goodScript, code: 1, want: "hash mismatch"},
		{name: "machine does not trust the master", opts: worldOptions{trustMaster: false, trustSigner: true},
			script: goodScript, code: 1, want: "lacks a valid signature"},
		{name: "machine does not trust the master, compressed", opts: worldOptions{agent: true, trustMaster: false, trustSigner: true},
			script: goodScript, code: 1, want: "lacks a valid signature"},
		{name: "an input is not valid on the master", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: goodScript, mod: func(b *transport.Build) {
				b.Inputs = append(b.Inputs, b.Store+"/00000000000000000000000000000000-gone")
			},
			code: 1, want: "export inputs locally"},
		{name: "machine stops answering", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: goodScript, mod: func(b *transport.Build) {
				// A guix whose build hangs silently and ignores the limits.
				b.RemoteGuix = "guix-hangs"
				b.MaxSilent, b.Grace = time.Second, time.Second
			},
			code: 101, want: "no output from 'builder'", lingers: true},
		{name: "no guix on the machine", opts: worldOptions{trustMaster: true, trustSigner: true},
			script: goodScript, mod: func(b *transport.Build) { b.RemoteGuix = "guix-not-installed" },
			code: 1, want: "guix-not-installed archive: command not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts)
			// It starts (guix build says what it builds), then goes
			// silent.
			hangs := "#!/bin/sh\nif [ \"$1\" = build ]; then echo \"building $*\" >&2; exec sleep 15; fi\nexec guix \"$@\"\n"
			if err := os.WriteFile(filepath.Join(w.builder.Bin, "guix-hangs"), []byte(hangs), 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.remote != "" {
				if err := os.WriteFile(filepath.Join(w.builder.Bin, "guix-odd"), []byte(tc.remote), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			j := w.job(t, tc.script)
			before := w.master.Entries(t)
			b, log, msg := w.build(j, func(b *transport.Build) {
				b.ACL = w.master.ACL(t)
				if tc.remote != "" {
					b.RemoteGuix = "guix-odd"
				}
				if tc.mod != nil {
					tc.mod(b)
				}
			})
			baseline := runtime.NumGoroutine()
			err := transport.Run(context.Background(), b)
			if !tc.lingers {
				checkLeaks(t, baseline)
			}
			if got := transport.ExitCode(err); got != tc.code {
				t.Fatalf("Run = %v (exit %d), want exit %d\nmessages:\n%s\nlog:\n%s", err, got, tc.code, msg, log)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.code == 1 && !strings.Contains(err.Error(), "'builder'") {
				t.Errorf("error %q does not name the machine", err)
			}
			if after := w.master.Entries(t); strings.Join(after, " ") != strings.Join(before, " ") {
				t.Errorf("the master's store changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestRunBuildLog: the master's build log gets the builder's output and
// the daemon's verdict only, as with Guix's hook, not the remote `guix
// build`'s own lines ("The following derivation will be built:",
// "building …", "successfully built …", "build of … failed", "View
// build log at …", "guix build: error: …", the output path on stdout).
func TestRunBuildLog(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
		code               int
	}{
		{"success", `echo "building main on the machine"; printf 'no newline'; ` + goodScript, "building main on the machine\nno newlinebuilding main on the machine\n", 0},
		{"failure", `printf partial; exit 7`, "partialbuilder for `DRV' failed with exit code 7\n", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{trustMaster: true, trustSigner: true})
			j := w.job(t, tc.script)
			b, log, msg := w.build(j, func(b *transport.Build) { b.ACL = w.master.ACL(t) })
			err := transport.Run(context.Background(), b)
			if got := transport.ExitCode(err); got != tc.code {
				t.Fatalf("Run = %v (exit %d), want exit %d\nmessages:\n%s\nlog:\n%s", err, got, tc.code, msg, log)
			}
			if want := strings.ReplaceAll(tc.want, "DRV", j.drv); log.String() != want {
				t.Errorf("build log:\n%q\nwant\n%q", log.String(), want)
			}
		})
	}
}

// TestRunSendsTheMastersLimits: the master's limits reach the machine,
// 0 meaning "no limit", as Guix's hook sends them. Left out, the
// machine's daemon applies its own --timeout and --max-silent-time
// (here 1 s), and cuts a build the master allowed to run.
func TestRunSendsTheMastersLimits(t *testing.T) {
	w := newWorld(t, worldOptions{trustMaster: true, trustSigner: true,
		builderEnv: []string{"GUIX_STANDIN_DAEMON_TIMEOUT=1", "GUIX_STANDIN_DAEMON_MAX_SILENT_TIME=1"}})
	j := w.job(t, `echo working; sleep 2; `+goodScript)
	b, log, msg := w.build(j, func(b *transport.Build) {
		b.ACL = w.master.ACL(t)
		b.MaxSilent, b.Timeout = 0, 0
	})
	if err := transport.Run(context.Background(), b); err != nil {
		t.Fatalf("Run: %v\nmessages:\n%s\nlog:\n%s", err, msg, log)
	}
	if !w.master.Exists(j.out) {
		t.Errorf("%s not retrieved", j.out)
	}
}

// TestRunConnectionLost kills the machine's sshd during the build and
// while the output is coming back: exit 1 naming the machine, nothing in
// the store.
func TestRunConnectionLost(t *testing.T) {
	for _, phase := range []string{"building", "retrieving"} {
		t.Run(phase, func(t *testing.T) {
			w := newWorld(t, worldOptions{trustMaster: true, trustSigner: true})
			// A big incompressible output, so that retrieval takes a while.
			j := w.job(t, `echo "build started"; sleep 1; head -c 64000000 /dev/urandom > "$out"; echo made`)
			before := w.master.Entries(t)
			b, log, msg := w.build(j, func(b *transport.Build) { b.ACL = w.master.ACL(t) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			switch phase {
			case "building":
				b.Log = &trigger{w: log, pattern: "build started", fire: func() { w.sshd.Stop() }}
			case "retrieving":
				// Kill once the output is being written into the store.
				go func() {
					for ctx.Err() == nil {
						for _, e := range w.master.Entries(t) {
							if strings.HasPrefix(e, ".guix-offload-") {
								w.sshd.Stop()
								return
							}
						}
						time.Sleep(2 * time.Millisecond)
					}
				}()
			}
			err := transport.Run(ctx, b)
			if got := transport.ExitCode(err); got != 1 {
				t.Fatalf("Run = %v (exit %d), want exit 1\n%s", err, got, msg)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), "'builder'") {
				t.Errorf("error %q does not name the machine", err)
			}
			if after := w.master.Entries(t); strings.Join(after, " ") != strings.Join(before, " ") {
				t.Errorf("the master's store changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestRunConnectionFrozen freezes the machine's sshd (SIGSTOP) during a
// build with a short max-silent-time: the link is dead, not the build
// silent, so the verdict is a lost connection (exit 1), not a timeout,
// long before the connection's own keepalive would notice.
func TestRunConnectionFrozen(t *testing.T) {
	w := newWorld(t, worldOptions{trustMaster: true, trustSigner: true})
	// Let the frozen processes go before the harness kills them.
	t.Cleanup(func() { w.sshd.Signal(syscall.SIGCONT) })
	j := w.job(t, `echo "build started"; sleep 20; echo late > "$out"`)
	before := w.master.Entries(t)
	b, log, msg := w.build(j, func(b *transport.Build) {
		b.ACL = w.master.ACL(t)
		b.MaxSilent, b.Grace = time.Second, time.Second
	})
	b.Log = &trigger{w: log, pattern: "build started", fire: func() { w.sshd.Signal(syscall.SIGSTOP) }}
	start := time.Now()
	err := transport.Run(context.Background(), b)
	if got := transport.ExitCode(err); got != 1 {
		t.Fatalf("Run = %v (exit %d), want exit 1\n%s", err, got, msg)
	}
	t.Logf("error after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, transport.ErrConnectionLost) || !strings.Contains(err.Error(), "'builder'") {
		t.Errorf("error %q is not a lost connection naming the machine", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v to notice", d)
	}
	if after := w.master.Entries(t); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("the master's store changed:\nbefore %v\nafter  %v", before, after)
	}
}

// TestRunRetrievalAfterTheEnd: a machine whose export goes on after a
// valid archive, writing or just not exiting, cannot hold the build:
// Run gives up within seconds, exit 1, nothing in the store.
func TestRunRetrievalAfterTheEnd(t *testing.T) {
	for _, tc := range []struct{ name, after, want string }{
		{"keeps writing", "exec yes", "after the end of the archive"},
		{"stalls", "exec sleep 60", "did not end its export"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			odd := "if [ \"$1\" = archive ] && [ \"$2\" = --export ]; then\n  guix \"$@\" || exit\n  " + tc.after + "\nfi"
			runOddMachine(t, odd, 0, tc.want)
		})
	}
}

// TestRunTransferStalls: a machine whose import or export stops moving
// data (the connection still up) is given up on after Build.Stall:
// exit 1 naming the machine, nothing in the store.
func TestRunTransferStalls(t *testing.T) {
	for _, tc := range []struct{ name, odd, want string }{
		{"import never ends",
			"if [ \"$1\" = archive ] && [ \"$2\" = --import ]; then exec sleep 60; fi",
			"send inputs: stalled"},
		{"export stops midway",
			"if [ \"$1\" = archive ] && [ \"$2\" = --export ]; then guix \"$@\" | head -c 300; exec sleep 60; fi",
			"retrieve outputs: stalled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runOddMachine(t, tc.odd, 2*time.Second, tc.want)
		})
	}
}

// runOddMachine offloads a good build to a machine whose guix first runs
// the shell code odd, and checks that Run ends within 40 s with exit 1,
// an error saying want and naming the machine, and the master's store
// untouched. stall is Build.Stall (0: the default).
func runOddMachine(t *testing.T, odd string, stall time.Duration, want string) {
	t.Helper()
	runOddMachineWith(t, worldOptions{trustMaster: true, trustSigner: true}, odd, func(b *transport.Build) { b.Stall = stall }, want)
}

// runOddMachineWith is runOddMachine on a world made with o, the build
// changed by mod. It returns Run's error.
func runOddMachineWith(t *testing.T, o worldOptions, odd string, mod func(*transport.Build), want string) error {
	t.Helper()
	w := newWorld(t, o)
	script := "#!/bin/sh\n" + odd + "\nexec guix \"$@\"\n"
	if err := os.WriteFile(filepath.Join(w.builder.Bin, "guix-odd"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	j := w.job(t, goodScript)
	before := w.master.Entries(t)
	b, _, msg := w.build(j, func(b *transport.Build) {
		b.ACL = w.master.ACL(t)
		b.RemoteGuix = "guix-odd"
		mod(b)
	})
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- transport.Run(context.Background(), b) }()
	var err error
	select {
	case err = <-errc:
	case <-time.After(40 * time.Second):
		// The harness's cleanup kills sshd, which ends Run.
		t.Fatalf("Run still running after 40 s\n%s", msg)
	}
	t.Logf("error after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if got := transport.ExitCode(err); got != 1 {
		t.Fatalf("Run = %v (exit %d), want exit 1\n%s", err, got, msg)
	}
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "'builder'") {
		t.Errorf("error %q does not say %q naming the machine", err, want)
	}
	if after := w.master.Entries(t); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("the master's store changed:\nbefore %v\nafter  %v", before, after)
	}
	return err
}

// TestRunBoundedSteps: every remote step has a deadline. A machine that
// does not answer one in time (a login shell that hangs, a guix that
// never answers, a build that never starts) is given up on: exit 1, one
// line naming the step and the machine, and ErrUnresponsive, by which
// the hook marks it down.
func TestRunBoundedSteps(t *testing.T) {
	trusted := worldOptions{trustMaster: true, trustSigner: true}
	hanging := trusted
	hanging.loginRC = "sleep 60\n"
	for _, tc := range []struct {
		name string
		o    worldOptions
		odd  string
		mod  func(*transport.Build)
		want string
	}{
		{"login shell hangs", hanging, "",
			func(b *transport.Build) { b.StepTimeout = 2 * time.Second }, "look for guix-offload-agent"},
		{"login shell hangs, no compression", hanging, "",
			func(b *transport.Build) { b.StepTimeout, b.Compress = 2*time.Second, false }, "ask which inputs are missing"},
		{"archive --missing hangs", trusted,
			`if [ "$1" = archive ] && [ "$2" = --missing ]; then exec sleep 60; fi`,
			func(b *transport.Build) { b.StepTimeout = 2 * time.Second }, "ask which inputs are missing"},
		{"build never starts, no limits", trusted,
			`if [ "$1" = build ]; then exec sleep 60; fi`,
			func(b *transport.Build) { b.MaxSilent, b.Timeout, b.Stall = 0, 0, 2*time.Second }, "did not start"},
		{"build never starts, with limits", trusted,
			`if [ "$1" = build ]; then exec sleep 60; fi`,
			func(b *transport.Build) { b.MaxSilent, b.Grace = time.Second, time.Second }, "did not start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runOddMachineWith(t, tc.o, tc.odd, tc.mod, tc.want)
			if !errors.Is(err, transport.ErrUnresponsive) {
				t.Errorf("error %q is not ErrUnresponsive", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{transport.ErrBuildFailed, 100},
		{transport.ErrTimeout, 101},
		{errors.New("offload to 'x': connection lost"), 1},
		{context.Canceled, 1},
	} {
		if got := transport.ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/gnu/store/abc-x.drv": "/gnu/store/abc-x.drv",
		"":                     "''",
		"a b":                  "'a b'",
		"it's":                 `'it'\''s'`,
		"$(rm -rf /)":          "'$(rm -rf /)'",
	} {
		if got := transport.Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
}

func runGuix(ctx context.Context, h *standintest.Host, args ...string) ([]byte, error) {
	return commandContext(ctx, h.Guix, args...).CombinedOutput()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// trigger calls fire once, the first time pattern is written.
type trigger struct {
	w       *lockedBuffer
	pattern string
	fire    func()
	once    sync.Once
}

func (t *trigger) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if strings.Contains(t.w.String(), t.pattern) {
		t.once.Do(t.fire)
	}
	return n, err
}

func (w *world) probe(t *testing.T) transport.Probe {
	return transport.Probe{
		Name: "builder", Origin: "machines.scm",
		Target: sshconn.Target{Host: w.sshd.Host, Port: w.sshd.Port, User: w.sshd.User,
			PrivateKeyFile: w.sshd.ClientKeyFile, HostKey: w.sshd.HostKey},
		RoundTrip: true, Guix: w.master.Guix, Store: w.master.Store, ACL: w.master.ACL(t),
		Timeout: 30 * time.Second, LocalDaemon: w.master.DaemonSocket(), SigningKey: w.master.SigningKeyFile,
	}
}

func TestCheck(t *testing.T) {
	t.Run("guix commands", func(t *testing.T) {
		testCheck(t, false, "connection,host key,path,guix,daemon,import,export,load,free space,clock")
	})
	// Through the machine's daemon (and the local one): no guix command.
	t.Run("direct", func(t *testing.T) {
		testCheck(t, true, "connection,host key,daemon,import,export,load,free space,clock")
	})
}

func testCheck(t *testing.T, direct bool, steps string) {
	w := newWorld(t, worldOptions{trustMaster: true, trustSigner: true, daemon: direct, masterDaemon: direct})
	good := w.probe(t)
	wrongKey := w.probe(t)
	wrongKey.Name = "impostor"
	wrongKey.Target.HostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	distrust := w.probe(t)
	distrust.Name = "distrusted"
	distrust.ACL = w.builder.ACL(t) // authorizes the master only, not the machine
	probes := []transport.Probe{good, wrongKey, distrust}
	if direct {
		for i := range probes {
			probes[i].RemoteGuix = "/nonexistent/guix" // only the daemon there
			probes[i].Guix = "/nonexistent/guix"       // only the daemon here
		}
	}
	reports := transport.CheckAll(context.Background(), probes)
	var out strings.Builder
	if err := transport.WriteReports(&out, reports); err != nil {
		t.Fatal(err)
	}
	t.Logf("reports:\n%s", out.String())

	r := reports[0]
	if !r.Usable {
		t.Fatalf("good machine unusable: %s", r.Verdict)
	}
	var names []string
	for _, s := range r.Steps {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, ","), steps; got != want {
		t.Errorf("steps %s, want %s", got, want)
	}
	if r.FreeMiB <= 0 || r.Load != r.Load || r.ClockSkew > time.Second || r.ClockSkew < -time.Second {
		t.Errorf("vitals: load %v, free %d MiB, clock %v", r.Load, r.FreeMiB, r.ClockSkew)
	}
	if r := reports[1]; r.Usable || !strings.Contains(r.Verdict, "host key") {
		t.Errorf("wrong host key: %s", r.Verdict)
	}
	if r := reports[2]; r.Usable || !strings.Contains(r.Verdict, "export") || !strings.Contains(r.Verdict, "not authorized") {
		t.Errorf("unauthorized signer: %s", r.Verdict)
	}
	var status strings.Builder
	if err := transport.WriteStatus(&status, reports); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status.String(), "MACHINE") || !strings.Contains(status.String(), "usable") {
		t.Errorf("status:\n%s", status.String())
	}
	checkNoTemporaries(t, w.master)
}

// TestCheckLoginShellHangs: `test` on a machine whose login shell hangs
// ends within its timeout, unusable, saying the machine did not answer
// in time rather than quoting a context error.
func TestCheckLoginShellHangs(t *testing.T) {
	w := newWorld(t, worldOptions{trustMaster: true, trustSigner: true, loginRC: "sleep 60\n"})
	p := w.probe(t)
	p.Timeout = 3 * time.Second
	start := time.Now()
	r := transport.Check(context.Background(), p)
	var out strings.Builder
	_ = transport.WriteReports(&out, []*transport.Report{r})
	t.Logf("after %v:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if r.Usable || !strings.Contains(r.Verdict, "did not answer in time") || strings.Contains(r.Verdict, "context deadline") {
		t.Errorf("verdict %q", r.Verdict)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v", d)
	}
}
