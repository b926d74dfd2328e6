package hook_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
)

func TestProtocolDeclinePostponeAcceptInOneProcess(t *testing.T) {
	s := sshd.Start(t, sshd.Options{})
	e := newEnv(t)
	m := specFor(s, "x86_64-linux", "i686-linux")
	m.features = []string{"kvm"}
	e.writeMachines(m)
	h := e.start("ok")

	// No machine builds aarch64-linux: decline, with a line saying why.
	rep := mustReply(t, h, req(true, "aarch64-linux", "a"), daemon.Decline)
	if !chatterHas(rep, "no machine builds aarch64-linux", drv("a")) {
		t.Errorf("decline chatter %q", rep.Chatter)
	}
	// A missing feature: decline.
	rep = mustReply(t, h, req(true, "x86_64-linux", "b", "kvm", "big-parallel"), daemon.Decline)
	if !chatterHas(rep, "lacks feature big-parallel") {
		t.Errorf("decline chatter %q", rep.Chatter)
	}
	// Bad request lines: a message and a decline, and the hook goes on.
	for _, line := range []string{"", "garbage", "2 x86_64-linux /gnu/store/x.drv ", "1 x86_64-linux not-a-drv ",
		"1 x86_64-linux /gnu/store/x.drv kvm,,big", "1 x86_64-linux /gnu/store/x.drv a b"} {
		rep, err := h.RequestLine(ctxT(t), line)
		if err != nil || rep.Answer != daemon.Decline || !chatterHas(rep, "bad request") {
			t.Errorf("line %q: %+v, %v", line, rep, err)
		}
	}
	// The machine's only slot is taken by someone else: postpone.
	held := takeSlot(t, e, s.Host, s.Port, 0)
	rep = mustReply(t, h, req(false, "x86_64-linux", "c", "kvm"), daemon.Postpone)
	if !chatterHas(rep, "busy", "all 1 build slots taken") {
		t.Errorf("postpone chatter %q", rep.Chatter)
	}
	held.Release()
	// Now it is free: accept, and build through the (fake) transport.
	rep = mustReply(t, h, req(true, "i686-linux", "c", "kvm"), daemon.Accept)
	if !chatterHas(rep, "accept "+drv("c"), "building on") {
		t.Errorf("accept chatter %q", rep.Chatter)
	}
	out := e.output("c")
	res, err := h.Accept(ctxT(t), []string{drv("c")}, []string{out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != daemon.Succeeded {
		t.Fatalf("outcome %v (%s); messages %q", res.Outcome, res.Reason, res.Messages)
	}
	if !strings.Contains(string(res.Log), "building "+drv("c")) {
		t.Errorf("build log %q", res.Log)
	}
	if !strings.Contains(strings.Join(res.Messages, "\n"), "@ build-remote "+drv("c")+" "+s.Host) {
		t.Errorf("messages %q", res.Messages)
	}
	if _, err := os.Stat(out); err != nil {
		t.Error(err)
	}
}

func TestProtocolEOF(t *testing.T) {
	e := newEnv(t)
	e.writeMachines()
	h := e.start("")
	mustReply(t, h, req(true, "x86_64-linux", "a"), daemon.Decline)
	h.CloseStdin()
	ws, err := h.Wait(ctxT(t))
	if err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("after EOF: %v, %v", ws, err)
	}
}

func TestExitStatuses(t *testing.T) {
	s := sshd.Start(t, sshd.Options{})
	for _, tc := range []struct {
		transport string
		want      daemon.Outcome
		msg       string
		// down: the machine is remembered as down afterwards (a
		// machine-side problem, not the derivation's or ours).
		down bool
	}{
		{"ok", daemon.Succeeded, "done with offloaded", false},
		{"exit:100", daemon.Failed, "failed on", false},
		{"exit:101", daemon.TimedOut, "timed out on", false},
		{"exit:1", daemon.HookFailed, "connection lost", false},
		{"exit:local", daemon.HookFailed, "export inputs locally", false},
		{"exit:127", daemon.HookFailed, "guix archive: command not found", true},
		{"exit:refused", daemon.HookFailed, "unauthorized public key", true},
		{"exit:lost", daemon.HookFailed, "connection lost: EOF", true},
		// A remote step that got no answer in time (a login shell that
		// hangs): one line naming the step, the machine skipped.
		{"exit:unresponsive", daemon.HookFailed, "ask which inputs are missing: the machine did not answer in time", true},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			e := newEnv(t)
			e.writeMachines(specFor(s))
			h := e.start(tc.transport)
			mustReply(t, h, req(true, "x86_64-linux", "t"), daemon.Accept)
			res, err := h.Accept(ctxT(t), []string{drv("t")}, []string{e.output("t")})
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tc.want || !strings.Contains(strings.Join(res.Messages, "\n"), tc.msg) {
				t.Errorf("outcome %v (%s), messages %q", res.Outcome, res.Reason, res.Messages)
			}
			k := s.Host + ":" + strconv.Itoa(s.Port)
			data, err := os.ReadFile(filepath.Join(e.state, "down", k))
			if (err == nil) != tc.down {
				t.Fatalf("down record: %q, %v; want one: %v", data, err, tc.down)
			}
			if !tc.down {
				return
			}
			if !strings.Contains(string(data), tc.msg) {
				t.Errorf("down record %q does not say %q", data, tc.msg)
			}
			// The next hook process skips the machine.
			h = e.start(tc.transport)
			rep := mustReply(t, h, req(false, "x86_64-linux", "t2"), daemon.Postpone)
			if !chatterHas(rep, "'"+k+"': down for", tc.msg) {
				t.Errorf("chatter %q", rep.Chatter)
			}
		})
	}
}

// Without a fake, the real transport runs; sshd's machine has no guix,
// so the build must fail transiently (exit 1), never succeed.
func TestRealTransportFailsTransiently(t *testing.T) {
	s := sshd.Start(t, sshd.Options{})
	e := newEnv(t)
	e.writeMachines(specFor(s))
	h := e.start("")
	// The derivation lies in the hook's store, so the transport gets as
	// far as the machine before it fails.
	d := filepath.Join(e.store, "aaaa-r.drv")
	if err := os.WriteFile(d, []byte("Derive([],[],[],\"x86_64-linux\",\"/bin/sh\",[],[])"), 0o444); err != nil {
		t.Fatal(err)
	}
	mustReply(t, h, daemon.Req{Willing: true, System: "x86_64-linux", Drv: d}, daemon.Accept)
	res, err := h.Accept(ctxT(t), []string{d}, []string{e.output("r")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != daemon.HookFailed || res.Status.ExitStatus() != 1 {
		t.Fatalf("outcome %v (%s), messages %q", res.Outcome, res.Reason, res.Messages)
	}
	if !strings.Contains(strings.Join(res.Messages, "\n"), s.Host) {
		t.Errorf("messages do not name the machine: %q", res.Messages)
	}
}

func TestBadConfigurationDeclines(t *testing.T) {
	for _, tc := range []struct {
		name, config, want string
	}{
		{"unknown key", "colour = \"blue\"", "colour: unknown key"},
		{"bad value", "trust = \"everyone\"", "trust: unknown policy"},
		{"syntax", "state-directory = ", "hook.toml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.writeMachines()
			e.writeConfig(tc.config)
			h := e.start("")
			for i := 0; i < 2; i++ {
				rep := mustReply(t, h, req(true, "x86_64-linux", "a"), daemon.Decline)
				if len(rep.Chatter) != 1 || !chatterHas(rep, tc.want) {
					t.Errorf("chatter %q, want one line with %q", rep.Chatter, tc.want)
				}
			}
		})
	}
	t.Run("unreadable machines file", func(t *testing.T) {
		e := newEnv(t)
		os.WriteFile(e.machines, []byte("(list (build-machine (name \"x\")\n"), 0o644)
		h := e.start("")
		rep := mustReply(t, h, req(true, "x86_64-linux", "a"), daemon.Decline)
		if !chatterHas(rep, "machines.scm:") {
			t.Errorf("chatter %q", rep.Chatter)
		}
	})
	t.Run("missing config file", func(t *testing.T) {
		e := newEnv(t)
		e.config = e.config + ".missing"
		h := e.start("")
		rep := mustReply(t, h, req(true, "x86_64-linux", "a"), daemon.Decline)
		if !chatterHas(rep, "hook.toml.missing") {
			t.Errorf("chatter %q", rep.Chatter)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		e := newEnv(t)
		exe, _ := os.Executable()
		h := daemon.Start(t, daemon.Options{Program: exe, System: "x86_64-linux", MaxSilentTime: -5,
			Env: append(os.Environ(), modeEnv+"=hook", "GUIX_OFFLOAD_CONFIG="+e.config)})
		rep := mustReply(t, h, req(true, "x86_64-linux", "a"), daemon.Decline)
		if !chatterHas(rep, "MAX-SILENT-TIME") {
			t.Errorf("chatter %q", rep.Chatter)
		}
	})
}

// A machines.scm using more of Guile than the built-in evaluator knows is
// evaluated by the real Guile (evaluator "auto", the default).
func TestMachinesFileNeedingGuile(t *testing.T) {
	testenv.LookPath(t, "guile", "guile-3.0")
	e := newEnv(t)
	src := `(use-modules (srfi srfi-1))
(define-syntax-rule (builder n sys)
  (build-machine (name n) (systems (list sys)) (user "root") (host-key "ssh-ed25519 AAAA")))
(filter-map (lambda (sys) (and (not (string=? sys "mips64el-linux")) (builder (string-append "b-" sys) sys)))
            '("aarch64-linux" "mips64el-linux"))
`
	if err := os.WriteFile(e.machines, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		evaluator, answer, says string
	}{
		{"auto", daemon.Decline, "'b-aarch64-linux:22': does not build mips64el-linux"},
		{"guile", daemon.Decline, "'b-aarch64-linux:22': does not build mips64el-linux"},
		{"builtin", daemon.Decline, "unbound variable define-syntax-rule"},
	} {
		t.Run(tc.evaluator, func(t *testing.T) {
			e.writeConfig("evaluator = \"" + tc.evaluator + "\"")
			h := e.start("")
			rep := mustReply(t, h, req(true, "mips64el-linux", "g"), tc.answer)
			if !chatterHas(rep, tc.says) {
				t.Errorf("chatter %q", rep.Chatter)
			}
		})
	}
}

// What an accepted build needs locally (the ACL, the local guix, the
// store) is checked before accepting: when one is missing, the hook
// declines with one line naming the hook.toml key, so the daemon builds
// locally instead of failing every offloaded build after "# accept".
func TestLocalProblemsDeclineBeforeAccept(t *testing.T) {
	for _, tc := range []struct {
		name, config, want string
	}{
		{"acl", `acl = "/nonexistent/acl"`, `acl in hook.toml: "/nonexistent/acl" cannot be read`},
		{"real-guix", `real-guix = "/nonexistent/guix"`, `real-guix in hook.toml: "/nonexistent/guix": no such file`},
		{"no guix on PATH", `real-guix = ""`, "real-guix in hook.toml is not set and there is no guix"},
		{"store", `store = "/nonexistent/store"`, `store in hook.toml: "/nonexistent/store": no such file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.override(tc.config)
			e.writeMachines(unreachable())
			h := e.start("ok", "PATH=/nonexistent")
			for i := 0; i < 2; i++ { // checked once, the same answer each time
				rep := mustReply(t, h, req(true, "x86_64-linux", "l"+strconv.Itoa(i)), daemon.Decline)
				if len(rep.Chatter) != 1 || !chatterHas(rep, tc.want, "building locally") {
					t.Errorf("chatter %q, want one line with %q", rep.Chatter, tc.want)
				}
			}
			if _, err := os.Stat(filepath.Join(e.state, "down")); err == nil {
				t.Error("a local problem marked a machine down")
			}
		})
	}
}
