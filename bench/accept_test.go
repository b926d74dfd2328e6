//go:build bench

package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
)

// runAccept is issue 7 row 2: `# accept` including our one SSH handshake,
// against the same Guile-SSH probe.
func runAccept(t *testing.T, s *suite) {
	srv, known := loopbackSSHD(t)
	program, why := s.shim(t)
	s.note("same sshd and probe as row 1, interleaved with ours in three rounds. `# accept`: one static machine, the sshd on 127.0.0.1, host key pinned from machines.scm; the hook takes the slot, opens its one SSH connection and answers; timed from starting the hook process to the reply (the daemon starts a fresh hook for every build it offloads).")
	n := max(3, *flagProbes)
	setup := writeHookSetup(t, []machineSpec{{name: srv.Host, port: srv.Port, system: "x86_64-linux",
		user: srv.User, hostKey: srv.HostKey, privateKey: srv.ClientKeyFile}},
		benchRequest)
	var ref, dial, accept Sample
	for round := 0; round < 3; round++ {
		ref = append(ref, guileProbes(t, s.ctx, srv, known, n/3)...)
		dial = append(dial, ourHandshakes(t, s.ctx, srv, n/3)...)
		if program != "" {
			accept = append(accept, processAccepts(t, s.ctx, program, setup, srv, n/3)...)
		}
	}
	row := Row{Measure: "`# accept`, through the process (daemon driver), our one SSH connection included", Reference: probeRef(ref)}
	if program == "" {
		row.Ours, row.Ratio = NotMeasured(why), "—"
	} else {
		row.Ours = fmt.Sprintf("%s (median of %d, worst %s)", Seconds(accept.Median()), len(accept), Seconds(accept.Max()))
		row.Ratio = Ratio(accept.Median(), ref.Median(), Lower)
	}
	s.add(row)
	s.add(Row{
		Measure:   "our one SSH connection alone (sshconn.Dial: TCP, key exchange, pinned host key, Ed25519 key)",
		Ours:      fmt.Sprintf("%s (median of %d, worst %s)", Seconds(dial.Median()), len(dial), Seconds(dial.Max())),
		Reference: probeRef(ref),
		Ratio:     Ratio(dial.Median(), ref.Median(), Lower),
		Note:      "the network part of `# accept`; the probe also runs a remote command, which our hook does not need (the load comes from the announcement)",
	})
}

// processAccepts starts the hook n times through the daemon driver with a
// request one machine (srv) can take, and times each from the start of
// the process to `# accept`. The hook is then killed, as the daemon
// would kill it at the end of the client's request.
func processAccepts(t *testing.T, ctx context.Context, program string, setup hookSetup, srv *sshd.Server, n int) Sample {
	t.Helper()
	var out Sample
	for i := 0; i < n; i++ {
		start := time.Now()
		h, err := daemon.StartHook(daemon.Options{Program: program, System: hookArgs[0], MaxSilentTime: 3600, BuildTimeout: 86400, Env: setup.env})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := h.RequestLine(ctx, setup.request)
		d := time.Since(start)
		h.Kill()
		if err != nil || rep.Answer != daemon.Accept {
			t.Fatalf("hook answered %q (%v), want accept; chatter: %q\nsshd:\n%s", rep.Answer, err, rep.Chatter, srv.Logs())
		}
		out = append(out, d.Seconds())
	}
	return out
}
