//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/nar"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
	"github.com/guix-offload/guix-offload/internal/transport"
)

// dataset is a file whose bytes every method pushes to the same sshd.
type dataset struct {
	name string
	path string
	size int64
}

// runTransfer is issue 7 row 3: our transport's throughput for random
// bytes and a store-like corpus, plain and zstd-compressed, against
// OpenSSH (`ssh host 'cat > /dev/null'`) and Guile-SSH without and with
// zlib level 3 (Guix's default), all pushing the same bytes to the same
// sshd on 127.0.0.1.
func runTransfer(t *testing.T, s *suite) {
	srv, known := loopbackSSHD(t)
	dir := t.TempDir()
	sets := [...]dataset{
		randomData(t, filepath.Join(dir, "random"), int64(*flagTransfer)<<20),
		corpusData(t, filepath.Join(dir, "corpus"), int64(*flagCorpus)<<20),
	}

	client, err := sshconn.Dial(s.ctx, sshconn.Target{Host: srv.Host, Port: srv.Port, User: srv.User,
		PrivateKeyFile: srv.ClientKeyFile, HostKey: srv.HostKey}, &sshconn.Options{KeepAlive: -1})
	if err != nil {
		t.Fatalf("sshconn.Dial: %v\n%s", err, srv.Logs())
	}
	defer client.Close()
	ctl := openSSHMaster(t, s.ctx, srv, known)
	// The far end of the compressed pipe is the real one: the agent's
	// `stream import`, with a `guix` whose `archive --import` only
	// swallows its input.
	var sink string
	if agent := s.buildBinary(t, "guix-offload-agent"); agent != "" {
		guix := filepath.Join(dir, "guix-sink")
		if err := os.WriteFile(guix, []byte("#!/bin/sh\nexec cat > /dev/null\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		sink = transport.Command(agent, "stream", "import", "--guix", guix)
	}

	type method struct {
		name string
		push func(ds dataset) (time.Duration, int64) // wall time, bytes on the wire (0: unknown)
	}
	methods := []method{
		{"ours plain", func(ds dataset) (time.Duration, int64) {
			return ourPush(t, s.ctx, client, ds, false, sink)
		}},
		{"ours zstd", func(ds dataset) (time.Duration, int64) {
			if sink == "" {
				return 0, 0
			}
			return ourPush(t, s.ctx, client, ds, true, sink)
		}},
		{"OpenSSH", func(ds dataset) (time.Duration, int64) {
			return openSSHPush(t, s.ctx, srv, known, ctl, ds), 0
		}},
		{"Guile-SSH plain", func(ds dataset) (time.Duration, int64) {
			return guilePush(t, s.ctx, srv, known, ds, "none"), 0
		}},
		{"Guile-SSH zlib 3", func(ds dataset) (time.Duration, int64) {
			return guilePush(t, s.ctx, srv, known, ds, "zlib@openssh.com,zlib"), 0
		}},
	}

	// The random set gets 60% of the time budget, the corpus the rest.
	budgets := []time.Duration{*flagTransferBudget * 6 / 10, *flagTransferBudget * 4 / 10}
	for i, ds := range sets {
		rates := map[string]Sample{}
		wire := map[string]int64{}
		// Round robin: each run pushes the set once with every method, so
		// a burst of load on this shared machine hits all of them alike.
		// A round that would overrun the budget is not started (Guile-SSH
		// with zlib can take minutes for 512 MiB on a loaded machine); the
		// cells say how many runs each median has.
		dsStart := time.Now()
		for run := 0; run < *flagRuns; run++ {
			if spent := time.Since(dsStart); run > 0 && spent+spent/time.Duration(run) > budgets[i] {
				t.Logf("%s: %d runs in %v; another would overrun the budget of %v", ds.name, run, spent.Round(time.Second), budgets[i])
				break
			}
			for _, m := range methods {
				if s.ctx.Err() != nil {
					t.Fatal("interrupted")
				}
				d, w := m.push(ds)
				if d == 0 {
					continue // not measurable in this tree
				}
				rates[m.name] = append(rates[m.name], float64(ds.size)/d.Seconds())
				if w > 0 {
					wire[m.name] = w
				}
				t.Logf("%s, %s, run %d: %v (%s)", ds.name, m.name, run+1, d.Round(time.Millisecond), Rate(float64(ds.size)/d.Seconds()))
			}
		}
		cellOf := func(name string) string {
			r := rates[name]
			if len(r) == 0 {
				return NotMeasured("guix-offload-agent (its `stream import`) does not build")
			}
			return fmt.Sprintf("%s %s (median of %d, worst %s)", name, Rate(r.Median()), len(r), Rate(r.Min()))
		}
		row := func(ours, ref, note string) {
			s.add(Row{
				Measure:   fmt.Sprintf("transfer, %s, %s vs %s", ds.name, ours, ref),
				Ours:      cellOf(ours),
				Reference: cellOf(ref),
				Ratio:     Ratio(rates[ours].Median(), rates[ref].Median(), Higher),
				Note:      note,
			})
		}
		zstdNote := ""
		if w := wire["ours zstd"]; w > 0 {
			zstdNote = fmt.Sprintf("zstd sends %s for %s (%.2f of the input)", Bytes(float64(w)), Bytes(float64(ds.size)), float64(w)/float64(ds.size))
		}
		row("ours plain", "OpenSSH", "")
		row("ours plain", "Guile-SSH plain", "")
		row("ours zstd", "Guile-SSH zlib 3", zstdNote)
		row("ours zstd", "OpenSSH", "")
	}
	s.note("throughput = input bytes ÷ wall time from opening the channel to the remote exit status, over one already authenticated connection per method (OpenSSH: a ControlMaster connection; Guile-SSH: bench/guile/push.scm, the session made before the clock starts); the remote command writes to /dev/null.")
	s.note("ours = internal/transport's pipe over one `sshconn.Dial` connection: `transport.Exec` with the data as the remote command's stdin; zstd = `transport.Compress` here and `guix-offload-agent stream import` at the far end (its `guix archive --import` replaced by `cat > /dev/null`), as the transport sends archives to a machine that runs the agent. On loopback the wire is free, so zstd can only cost; on a LAN it pays when the link is slower than zstd.")
	s.note("up to %d runs per set, round robin over the methods; a round that would overrun the time budget (%v for both sets) is not started.", *flagRuns, *flagTransferBudget)
	s.note("data: %d MiB from math/rand (incompressible) and a store-like corpus: a signed `guix archive --export` stream written with internal/nar, one store item per regular file /usr/lib/x86_64-linux-gnu/*.so* in name order, up to %d MiB of libraries.", *flagTransfer, *flagCorpus)
}

// randomData writes size pseudo-random bytes to path.
func randomData(t *testing.T, path string, size int64) dataset {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{'g', 'u', 'i', 'x'})
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, rng, size); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return dataset{name: fmt.Sprintf("%d MiB random", size>>20), path: path, size: size}
}

// corpusData writes a signed `guix archive --export` stream (package nar,
// the format the transport sends) of store items made from the machine's
// shared libraries (regular files only, in name order, one item each)
// into path, until the libraries add up to limit bytes.
func corpusData(t *testing.T, path string, limit int64) dataset {
	t.Helper()
	names, err := filepath.Glob("/usr/lib/x86_64-linux-gnu/*.so*")
	if err != nil || len(names) == 0 {
		t.Fatalf("no shared libraries under /usr/lib/x86_64-linux-gnu: %v", err)
	}
	slices.Sort(names)
	key, err := pki.GenerateKey(pki.TypeECDSA, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	export := nar.NewExportWriter(w)
	var total int64
	items := 0
	for _, name := range names {
		if total >= limit {
			break
		}
		fi, err := os.Lstat(name)
		if err != nil || !fi.Mode().IsRegular() || total+fi.Size() > limit {
			continue
		}
		if err := export.WriteItem(storePath(filepath.Base(name)), nil, "", name, key.Sign); err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
		items++
	}
	if err := export.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	st, err := out.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return dataset{name: fmt.Sprintf("store-like export (%d items, %d MiB)", items, st.Size()>>20), path: path, size: st.Size()}
}

// storePath makes a store file name for name, with a hash part in Nix's
// base-32 alphabet.
func storePath(name string) string {
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	sum := sha256.Sum256([]byte(name))
	var hash [32]byte
	for i := range hash {
		hash[i] = alphabet[sum[i]%32]
	}
	return "/gnu/store/" + string(hash[:]) + "-" + strings.ReplaceAll(name, "/", "_")
}

// ourPush sends ds through the transport's remote-command pipe and returns
// the wall time and, compressed, the bytes on the wire.
func ourPush(t *testing.T, ctx context.Context, client *ssh.Client, ds dataset, compress bool, sink string) (time.Duration, int64) {
	t.Helper()
	f, err := os.Open(ds.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stderr bytes.Buffer
	start := time.Now()
	var code int
	var wire int64
	if compress {
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, out, err := transport.Compress(pw, f)
			wire = out
			pw.CloseWithError(err)
			done <- err
		}()
		code, err = transport.Exec(ctx, client, sink, pr, io.Discard, &stderr)
		pr.Close()
		if cerr := <-done; cerr != nil && err == nil && code == 0 {
			t.Fatalf("compress: %v", cerr)
		}
	} else {
		code, err = transport.Exec(ctx, client, "cat > /dev/null", f, io.Discard, &stderr)
	}
	d := time.Since(start)
	if err != nil || code != 0 {
		t.Fatalf("push %s: status %d, %v: %s", ds.name, code, err, stderr.String())
	}
	return d, wire
}

// openSSHMaster starts an OpenSSH ControlMaster connection to srv and
// returns its control socket, so that each timed `ssh` reuses an
// authenticated connection like the other methods do.
func openSSHMaster(t *testing.T, ctx context.Context, srv *sshd.Server, known string) string {
	t.Helper()
	sshPath := testenv.LookPath(t, "ssh", "openssh-client")
	ctl := filepath.Join(t.TempDir(), "ctl")
	cmd := exec.Command(sshPath, append(openSSHArgs(srv, known, ctl), "-o", "ControlMaster=yes", "-N", srv.User+"@"+srv.Host)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ctl); err == nil {
			return ctl
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("OpenSSH master connection did not come up: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func openSSHArgs(srv *sshd.Server, known, ctl string) []string {
	return []string{"-p", strconv.Itoa(srv.Port), "-i", srv.ClientKeyFile,
		"-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "ControlPath=" + ctl}
}

// openSSHPush runs `ssh host 'cat > /dev/null' < FILE` over the master
// connection.
func openSSHPush(t *testing.T, ctx context.Context, srv *sshd.Server, known, ctl string, ds dataset) time.Duration {
	t.Helper()
	f, err := os.Open(ds.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "ssh", append(openSSHArgs(srv, known, ctl), srv.User+"@"+srv.Host, "cat > /dev/null")...)
	cmd.Stdin = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssh … 'cat > /dev/null' < %s: %v: %s", ds.path, err, stderr.String())
	}
	return time.Since(start)
}

// guilePush runs bench/guile/push.scm and returns the time it reports.
func guilePush(t *testing.T, ctx context.Context, srv *sshd.Server, known string, ds dataset, compression string) time.Duration {
	t.Helper()
	guile := testenv.LookPath(t, "guile", "guile-3.0")
	cmd := exec.CommandContext(ctx, guile, "--no-auto-compile", filepath.Join(benchDir(t), "guile", "push.scm"),
		srv.Host, strconv.Itoa(srv.Port), srv.User, srv.ClientKeyFile, known, ds.path, compression, "3")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("guile push.scm %s: %v: %s", compression, err, stderr.String())
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("guile push.scm printed %q", out)
	}
	return time.Duration(ns)
}
