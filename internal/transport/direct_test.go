package transport_test

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/transport"
	"github.com/guix-offload/guix-offload/internal/worker"
)

const directLine = "talking to guix-daemon on 'builder' directly"
const fallbackLine = "cannot talk to guix-daemon on 'builder' directly"
const relayVia = "exec channel to guix-offload-agent relay)"
const streamLocalVia = "direct-streamlocal channel; no relay: guix-offload-agent is not on the login's PATH there (exit 127))"

// TestRunDirect: with a daemon on the machine, Run talks to it over the
// SSH connection: no guix command there; the inputs come from the local
// daemon when there is one, from `guix archive --export` otherwise.
func TestRunDirect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		local  bool   // a local daemon
		signer string // the master's signing key for Build.SigningKey
		agent  bool   // the machine has the relay
	}{
		{"local daemon, signed here, relay", true, "master", true},
		{"local daemon signs, stream-local", true, transport.NoDaemon, false},
		{"local guix archive, relay", false, "master", true},
		{"local guix archive, stream-local", false, "master", false},
	} {
		local := tc.local
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{trustMaster: true, trustSigner: true, daemon: true, masterDaemon: local, agent: tc.agent})
			j := w.job(t, goodScript)
			// The machine has no guix command: everything must go
			// through its daemon.
			b, log, msg := w.build(j, func(b *transport.Build) {
				b.ACL = w.master.ACL(t)
				b.RemoteGuix = "/nonexistent/guix"
				b.LocalDaemon = w.master.DaemonSocket()
				b.SigningKey = tc.signer
				if tc.signer == "master" {
					b.SigningKey = w.master.SigningKeyFile
				}
				if local {
					b.Guix = "/nonexistent/guix" // the local daemon exports
				}
			})
			baseline := runtime.NumGoroutine()
			err := transport.Run(context.Background(), b)
			checkLeaks(t, baseline)
			if err != nil {
				t.Fatalf("Run: %v\nmessages:\n%s\nlog:\n%s", err, msg, log)
			}
			got, err := os.ReadFile(w.master.Local(j.out))
			if err != nil || string(got) != "hello from the master\ndep-output" {
				t.Fatalf("output %q, %v", got, err)
			}
			if !strings.Contains(log.String(), "building main on the machine") {
				t.Errorf("build log lacks the builder's output:\n%s", log)
			}
			for _, want := range []string{directLine, "sending 4 store items", "@ build-remote " + j.drv + " builder",
				"retrieving 1 store item from 'builder'", "found valid signature for '" + j.out + "'"} {
				if !strings.Contains(msg.String(), want) {
					t.Errorf("messages lack %q:\n%s", want, msg)
				}
			}
			if strings.Contains(msg.String(), fallbackLine) {
				t.Errorf("fell back:\n%s", msg)
			}
			via := streamLocalVia
			if tc.agent {
				via = relayVia
			}
			if n := strings.Count(msg.String(), directLine); n != 1 || !strings.Contains(msg.String(), via) {
				t.Errorf("want one line %q…%q, got %d:\n%s", directLine, via, n, msg)
			}
			checkNoTemporaries(t, w.master)
			// A second run sends nothing.
			if err := os.RemoveAll(w.master.Local(j.out)); err != nil {
				t.Fatal(err)
			}
			b, _, msg = w.build(j, func(b *transport.Build) { b.ACL = w.master.ACL(t); b.LocalDaemon = w.master.DaemonSocket() })
			if err := transport.Run(context.Background(), b); err != nil {
				t.Fatalf("second Run: %v\n%s", err, msg)
			}
			if strings.Contains(msg.String(), "sending") {
				t.Errorf("second run sent inputs again:\n%s", msg)
			}
		})
	}
}

// TestRunDirectFailures: the daemon's statuses decide 100 and 101; our
// refusals and the machine's are exit 1; nothing partial in the store.
func TestRunDirectFailures(t *testing.T) {
	for i, tc := range []struct {
		name   string
		opts   worldOptions
		script string
		mod    func(*transport.Build)
		code   int
		want   string
	}{
		{"build fails", worldOptions{trustMaster: true, trustSigner: true},
			`echo "about to fail"; exit 3`, nil, 100, "build of `"},
		{"silent too long", worldOptions{trustMaster: true, trustSigner: true},
			`sleep 30`, func(b *transport.Build) { b.MaxSilent = time.Second }, 101, "timed out"},
		{"runs too long", worldOptions{trustMaster: true, trustSigner: true},
			`while :; do echo .; sleep 0.2; done`, func(b *transport.Build) { b.Timeout = time.Second }, 101, "timed out"},
		{"machine refuses our signature", worldOptions{trustSigner: true},
			goodScript, nil, 1, "lacks a valid signature"},
		{"we refuse the machine's signature", worldOptions{trustMaster: true},
			goodScript, nil, 1, "refuse output"},
		{"tampered output", worldOptions{trustMaster: true, trustSigner: true, builderEnv: []string{"GUIX_STANDIN_TAMPER=dep-output=XXX-output"}},
			goodScript, nil, 1, "hash"},
	} {

		t.Run(tc.name, func(t *testing.T) {
			tc.opts.daemon = true
			// Half of them through the relay, half over stream-local.
			tc.opts.agent = i%2 == 0
			w := newWorld(t, tc.opts)
			j := w.job(t, tc.script)
			b, log, msg := w.build(j, func(b *transport.Build) {
				b.ACL = w.master.ACL(t)
				b.Grace = 20 * time.Second
				if tc.mod != nil {
					tc.mod(b)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := transport.Run(ctx, b)
			if code := transport.ExitCode(err); code != tc.code || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v (exit %d), want exit %d and %q\nmessages:\n%s\nlog:\n%s", err, code, tc.code, tc.want, msg, log)
			}
			if !strings.Contains(msg.String(), directLine) {
				t.Errorf("not on the direct path:\n%s", msg)
			}
			if w.master.Exists(j.out) {
				t.Errorf("%s is in the master's store after a failure", j.out)
			}
			checkNoTemporaries(t, w.master)
			if tc.code == 100 && !strings.Contains(log.String(), "about to fail") {
				t.Errorf("the failed build's log did not come:\n%s", log)
			}
		})
	}
}

// TestRunDirectFallback: a machine without the direct path gets today's
// transport, with one line saying why.
func TestRunDirectFallback(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts worldOptions
		why  string
	}{
		{"no daemon socket", worldOptions{}, "no guix-daemon listening"},
		{"streamlocal forbidden", worldOptions{daemon: true, sshdConfig: "AllowStreamLocalForwarding no"}, "forbids stream-local forwarding): open failed"},
		{"older daemon", worldOptions{daemon: true, daemonArgs: []string{"--protocol-version=0x160"}}, "too old"},
		{"relay, no daemon socket", worldOptions{agent: true}, "relay: exit 1: guix-offload-agent: error: cannot connect to guix-daemon's socket"},
		{"relay, older daemon", worldOptions{agent: true, daemon: true, daemonArgs: []string{"--protocol-version=0x160"}}, "too old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.trustMaster, tc.opts.trustSigner = true, true
			w := newWorld(t, tc.opts)
			j := w.job(t, goodScript)
			b, log, msg := w.build(j, func(b *transport.Build) { b.ACL = w.master.ACL(t) })
			if err := transport.Run(context.Background(), b); err != nil {
				t.Fatalf("Run: %v\nmessages:\n%s\nlog:\n%s", err, msg, log)
			}
			if n := strings.Count(msg.String(), fallbackLine); n != 1 || !strings.Contains(msg.String(), tc.why) {
				t.Errorf("want one line %q…%q, got %d:\n%s", fallbackLine, tc.why, n, msg)
			}
			if !w.master.Exists(j.out) {
				t.Errorf("no output after the fallback")
			}
		})
	}
}

// oddDaemon listens on the machine's daemon socket in place of
// guix-daemon and greets each client properly, then lets misbehave take
// over the connection.
func oddDaemon(t *testing.T, w *world, greet bool, misbehave func(c net.Conn, r *worker.Reader, wr *worker.Writer)) {
	t.Helper()
	if err := os.MkdirAll(w.builder.SocketDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", w.builder.DaemonSocket())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r, wr := worker.NewReader(c), worker.NewWriter(c)
				if greet {
					_, _ = r.Int() // magic
					wr.Int(worker.Magic2)
					wr.Int(worker.Version)
					_, _ = r.Int() // version
					_, _ = r.Int() // affinity
					_, _ = r.Int() // reserve space
					wr.Int(worker.StderrLast)
				}
				misbehave(c, r, wr)
			}()
		}
	}()
}

// TestRunDirectHostileDaemon: what answers on the machine's daemon
// socket may be anything; it can fail the build (exit 1) or be passed
// over, never hang the hook, blow up its memory or reach the store.
func TestRunDirectHostileDaemon(t *testing.T) {
	for _, tc := range []struct {
		name      string
		greet     bool
		misbehave func(c net.Conn, r *worker.Reader, wr *worker.Writer)
		fallback  bool   // Run falls back to guix commands and succeeds
		want      string // else: Run fails with exit 1 saying this
	}{
		{"not a daemon", false, func(c net.Conn, r *worker.Reader, wr *worker.Writer) {
			_, _ = r.Int()
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n\x00\x00\x00\x00"))
		}, true, ""},
		{"greets, then silence", true, func(c net.Conn, r *worker.Reader, wr *worker.Writer) {
			_, _ = io.Copy(io.Discard, c)
		}, false, "no answer within"},
		{"a frame of 2^60 bytes", true, func(c net.Conn, r *worker.Reader, wr *worker.Writer) {
			wr.Int(worker.StderrNext)
			wr.Int(1 << 60)
			_, _ = io.Copy(io.Discard, c)
		}, false, "more than"},
		{"an unknown frame", true, func(c net.Conn, r *worker.Reader, wr *worker.Writer) {
			wr.Int(0xdeadbeef)
			_, _ = io.Copy(io.Discard, c)
		}, false, "unknown frame"},
	} {
		for _, agent := range []bool{false, true} {
			name := tc.name + ", stream-local"
			if agent {
				name = tc.name + ", relay"
			}
			t.Run(name, func(t *testing.T) {
				w := newWorld(t, worldOptions{trustMaster: true, trustSigner: true, agent: agent})
				oddDaemon(t, w, tc.greet, tc.misbehave)
				j := w.job(t, goodScript)
				b, log, msg := w.build(j, func(b *transport.Build) {
					b.ACL = w.master.ACL(t)
					b.Stall = 2 * time.Second
					b.StepTimeout = 2 * time.Second
				})
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				start := time.Now()
				err := transport.Run(ctx, b)
				if tc.fallback {
					if err != nil || !strings.Contains(msg.String(), fallbackLine) {
						t.Fatalf("Run = %v, want a fallback that succeeds\nmessages:\n%s\nlog:\n%s", err, msg, log)
					}
					return
				}
				if transport.ExitCode(err) != 1 || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Run = %v (exit %d), want exit 1 saying %q\nmessages:\n%s", err, transport.ExitCode(err), tc.want, msg)
				}
				if d := time.Since(start); d > 30*time.Second {
					t.Errorf("Run took %v", d)
				}
				if w.master.Exists(j.out) {
					t.Errorf("output in the store after a failure")
				}
				checkNoTemporaries(t, w.master)
			})
		}
	}
}

// TestRunRelayNoForwarding: through guix-offload-agent relay, a machine
// whose sshd forwards nothing at all still gets the direct path.
func TestRunRelayNoForwarding(t *testing.T) {
	w := newWorld(t, worldOptions{trustMaster: true, trustSigner: true, daemon: true, agent: true, sshdConfig: "DisableForwarding yes"})
	j := w.job(t, goodScript)
	b, log, msg := w.build(j, func(b *transport.Build) {
		b.ACL = w.master.ACL(t)
		b.RemoteGuix = "/nonexistent/guix"
	})
	baseline := runtime.NumGoroutine()
	err := transport.Run(context.Background(), b)
	checkLeaks(t, baseline)
	if err != nil {
		t.Fatalf("Run: %v\nmessages:\n%s\nlog:\n%s", err, msg, log)
	}
	if n := strings.Count(msg.String(), directLine); n != 1 || !strings.Contains(msg.String(), relayVia) {
		t.Errorf("want one line %q…%q, got %d:\n%s", directLine, relayVia, n, msg)
	}
	if !w.master.Exists(j.out) {
		t.Errorf("no output")
	}
}
