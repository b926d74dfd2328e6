//go:build bench

package bench

import (
	"fmt"
	"testing"
)

// runDecide is issue 7 row 1: the hook's decision for `# decline` and
// `# postpone` with 1, 10 and 100 machines, as a Go benchmark of the
// decision function and through the process with the daemon driver,
// against one Guix-style machine probe with Guile-SSH.
func runDecide(t *testing.T, s *suite) {
	srv, known := loopbackSSHD(t)
	ref := guileProbes(t, s.ctx, srv, known, *flagProbes)
	s.note("the reference is one Guix-style machine probe: a Guile-SSH (Debian's guile-ssh, libssh) session to the same sshd on 127.0.0.1 (bench/guile/probe.scm: connect, check the host key, authenticate with an Ed25519 key, run `cat /proc/loadavg`, read it, disconnect), timed inside one Guile process. Guix's hook does at least this per candidate machine and per request; ours decides from the static file and the announcement cache without the network.")
	s.note("sshd runs with an empty /root (a private mount namespace), so remote commands start from a clean login rather than this machine's root ~/.bashrc.")
	for _, reply := range []string{"decline", "postpone"} {
		for _, n := range []int{1, 10, 100} {
			for _, how := range []string{"Go benchmark of the decision", "through the process (daemon driver)"} {
				s.add(Row{
					Measure:   fmt.Sprintf("`# %s`, %d machines: %s", reply, n, how),
					Ours:      NotMeasured("the hook's decision (issue 5) has not landed"),
					Reference: probeRef(ref),
					Ratio:     "—",
				})
			}
		}
	}
}

// runAccept is issue 7 row 2: `# accept` including our one SSH handshake,
// against the same Guile-SSH probe.
func runAccept(t *testing.T, s *suite) {
	srv, known := loopbackSSHD(t)
	s.note("same sshd and probe as row 1; ours and the reference are interleaved in three rounds.")
	n := *flagProbes
	var ref, ours Sample
	// Interleave ours and the reference so that both see the same noise.
	for i := 0; i < 3; i++ {
		ref = append(ref, guileProbes(t, s.ctx, srv, known, n/3+1)...)
		ours = append(ours, ourHandshakes(t, s.ctx, srv, n/3+1)...)
	}
	s.add(Row{
		Measure:   "`# accept`, through the process (daemon driver), SSH handshake included",
		Ours:      NotMeasured("the hook's accept path (issue 5) has not landed"),
		Reference: probeRef(ref),
		Ratio:     "—",
	})
	s.add(Row{
		Measure:   "our one SSH connection alone (sshconn.Dial: TCP, key exchange, pinned host key, Ed25519 key)",
		Ours:      fmt.Sprintf("%s (median of %d, worst %s)", Seconds(ours.Median()), len(ours), Seconds(ours.Max())),
		Reference: probeRef(ref),
		Ratio:     Ratio(ours.Median(), ref.Median(), Lower),
		Note:      "the network part of `# accept`; the probe also runs a remote command, which our hook does not need (the load comes from the announcement)",
	})
}
