//go:build bench

package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
)

// loopbackSSHD starts a real OpenSSH sshd on 127.0.0.1 (package sshd) and
// writes a known_hosts file for it that Guile-SSH (libssh) and OpenSSH's
// client both read.
func loopbackSSHD(t *testing.T) (*sshd.Server, string) {
	t.Helper()
	// sshd runs in a mount namespace of its own with an empty /root: the
	// remote commands then start from a clean login, as for a dedicated
	// offload account, instead of paying for whatever this machine's own
	// root ~/.bashrc runs (bash sources it for every SSH command).
	srv := sshd.Start(t, sshd.Options{
		Prefix: []string{"unshare", "--mount", "--propagation", "private",
			"sh", "-c", `mount -t tmpfs -o mode=0700 bench-root /root && exec "$@"`, "sh"},
	})
	known := filepath.Join(t.TempDir(), "known_hosts")
	line := fmt.Sprintf("[%s]:%d %s\n", srv.Host, srv.Port, srv.HostKey)
	if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, known
}

// guileProbes runs n Guix-style machine probes with Guile-SSH against srv
// (guile/probe.scm: session, host key check, key authentication,
// `cat /proc/loadavg`, disconnect) in one Guile process, as Guix's hook
// would inside its own process, and returns each probe's wall time.
func guileProbes(t *testing.T, ctx context.Context, srv *sshd.Server, known string, n int) Sample {
	t.Helper()
	guile := testenv.LookPath(t, "guile", "guile-3.0")
	script := filepath.Join(benchDir(t), "guile", "probe.scm")
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n)*10*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, guile, "--no-auto-compile", script,
		srv.Host, strconv.Itoa(srv.Port), srv.User, srv.ClientKeyFile, known, strconv.Itoa(n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("guile probe.scm: %v\n%s", err, stderr.String())
	}
	var s Sample
	for _, f := range strings.Fields(string(out)) {
		ns, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("guile probe.scm printed %q: %v", f, err)
		}
		s = append(s, ns/1e9)
	}
	if len(s) != n {
		t.Fatalf("guile probe.scm gave %d timings, want %d:\n%s", len(s), n, out)
	}
	return s
}

// probeRef formats the reference cell of a row compared with the probe.
func probeRef(s Sample) string {
	return fmt.Sprintf("Guile-SSH probe %s (median of %d, worst %s)", Seconds(s.Median()), len(s), Seconds(s.Max()))
}

// ourHandshakes dials srv n times with sshconn.Dial (host key pinned,
// Ed25519 client key) and closes each connection: the one SSH connection
// the hook opens before it says `# accept`.
func ourHandshakes(t *testing.T, ctx context.Context, srv *sshd.Server, n int) Sample {
	t.Helper()
	target := sshconn.Target{Host: srv.Host, Port: srv.Port, User: srv.User,
		PrivateKeyFile: srv.ClientKeyFile, HostKey: srv.HostKey}
	var s Sample
	for i := 0; i < n; i++ {
		start := time.Now()
		c, err := sshconn.Dial(ctx, target, &sshconn.Options{KeepAlive: -1})
		if err != nil {
			t.Fatalf("sshconn.Dial: %v\n%s", err, srv.Logs())
		}
		d := time.Since(start)
		c.Close()
		s = append(s, d.Seconds())
	}
	return s
}
