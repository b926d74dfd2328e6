package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/nar"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/worker"
	"github.com/guix-offload/guix-offload/scm"
)

// Probe is one machine for [Check]: where it is and what to test.
type Probe struct {
	Name   string // in reports
	Origin string // "machines.scm" or "discovered"
	Target sshconn.Target
	// OverloadThreshold is the machine's, nil for none (#f).
	OverloadThreshold *float64

	// RoundTrip adds the import and export round trip (`guix-offload
	// test`); without it Check only looks (`guix-offload status`).
	RoundTrip bool
	// Guix is the local guix (for the round trip), RemoteGuix the
	// machine's ("guix" when empty), Store the store directory
	// ("/gnu/store" when empty) and ACL the local ACL that must authorize
	// what the machine signs.
	Guix, RemoteGuix, Store string
	ACL                     *pki.ACL
	// Timeout bounds the whole check; 0 means 60 s.
	Timeout time.Duration
	// DaemonSocket and LocalDaemon are the machine's and the local
	// daemon's sockets, as [Build].RemoteDaemon and LocalDaemon.
	DaemonSocket, LocalDaemon string
	// SigningKey is the master's signing key, as [Build].SigningKey.
	SigningKey string
}

// Step is one check and its outcome.
type Step struct {
	Name   string
	OK     bool
	Warn   bool // passed, but something deserves attention
	Detail string
}

// Report is what [Check] found about one machine.
type Report struct {
	Name, Origin, Addr string
	Steps              []Step
	// Load is the normalized load (÷ cores), NaN when unknown; FreeMiB the
	// free space in the store's file system, -1 when unknown; ClockSkew
	// the machine's clock minus ours.
	Load      float64
	FreeMiB   int64
	ClockSkew time.Duration
	// Usable says whether the hook could offload to the machine now;
	// Verdict says so in words.
	Usable  bool
	Verdict string
}

func (r *Report) add(name string, ok bool, detail string, args ...any) *Step {
	r.Steps = append(r.Steps, Step{Name: name, OK: ok, Detail: fmt.Sprintf(detail, args...)})
	return &r.Steps[len(r.Steps)-1]
}

// Thresholds the verdict uses: Guix's hook skips a machine with less free
// store space than MinFreeMiB; a clock off by more than MaxClockSkew
// deserves a warning (build timestamps, certificates).
const (
	MinFreeMiB   = 100
	MaxClockSkew = 30 * time.Second
)

// CheckAll checks every probe in parallel and returns the reports in the
// same order. It blocks until all are done or their timeouts pass.
func CheckAll(ctx context.Context, probes []Probe) []*Report {
	reports := make([]*Report, len(probes))
	var wg sync.WaitGroup
	for i := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i] = Check(ctx, probes[i])
		}()
	}
	wg.Wait()
	return reports
}

// Check connects to the machine and checks, in order: the connection, its
// host key, that guix is there, that its daemon answers, (with
// RoundTrip) an import and an export round trip with signatures checked
// both ways, its load, free store space and clock. It stops at the first
// failure that makes the rest meaningless. It never returns nil.
func Check(ctx context.Context, p Probe) *Report {
	r := &Report{Name: p.Name, Origin: p.Origin, Addr: p.Target.Addr(), Load: math.NaN(), FreeMiB: -1}
	if p.Timeout == 0 {
		p.Timeout = 60 * time.Second
	}
	if p.RemoteGuix == "" {
		p.RemoteGuix = "guix"
	}
	if p.Store == "" {
		p.Store = scm.DefaultStore
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	defer r.judge(p)
	// A step cut by the check's deadline failed because the machine did
	// not answer (a login shell or a guix that hangs): say so, as the
	// hook does for its steps, not "context deadline exceeded".
	defer func() {
		if n := len(r.Steps); n > 0 && !r.Steps[n-1].OK && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) &&
			strings.Contains(r.Steps[n-1].Detail, context.DeadlineExceeded.Error()) {
			r.Steps[n-1].Detail = fmt.Sprintf("%v (nothing within the check's %v; a login shell or a guix that hangs?)", ErrUnresponsive, p.Timeout)
		}
	}()

	start := time.Now()
	client, err := sshconn.Dial(ctx, p.Target, &sshconn.Options{Timeout: min(p.Timeout, 15*time.Second)})
	if err != nil {
		if errors.Is(err, sshconn.ErrHostKeyMismatch) {
			r.add("connection", true, "%s answers", r.Addr)
			r.add("host key", false, "%v", err)
			return r
		}
		r.add("connection", false, "%v", err)
		return r
	}
	defer client.Close()
	r.add("connection", true, "%s as %s in %v", r.Addr, p.Target.User, time.Since(start).Round(time.Millisecond))
	if k, err := sshconn.ParseHostKey(p.Target.HostKey); err == nil {
		r.add("host key", true, "%s %s (pinned)", k.Type(), ssh.FingerprintSHA256(k))
	}

	// The path builds take: the machine's daemon directly, or commands.
	if p.DaemonSocket != NoDaemon {
		socket := p.DaemonSocket
		if socket == "" {
			socket = worker.DefaultSocket
		}
		conn, why := dialRemoteDaemon(ctx, client, socket, 0)
		if conn != nil {
			checkDirect(ctx, client, p, r, conn)
			return r
		}
		r.add("path", true, "guix commands (cannot talk to guix-daemon directly: %s)", why)
	}

	out, err := Output(ctx, client, Command(p.RemoteGuix, "--version"), nil)
	if err != nil {
		r.add("guix", false, "%v", err)
		return r
	}
	r.add("guix", true, "%s", firstLine(string(out)))

	// Asking which of a made-up path is missing needs the daemon.
	probe := filepath.Join(p.Store, strings.Repeat("0", 32)+"-guix-offload-probe")
	out, err = Output(ctx, client, Command(p.RemoteGuix, "archive", "--missing"), strings.NewReader(probe+"\n"))
	switch {
	case err != nil:
		r.add("daemon", false, "%v", err)
		return r
	case strings.TrimSpace(string(out)) != probe:
		r.add("daemon", false, "unexpected answer to 'guix archive --missing': %q", firstLine(string(out)))
		return r
	}
	r.add("daemon", true, "answers queries")

	if p.RoundTrip {
		if !roundTrip(ctx, client, p, r) {
			return r
		}
	}
	r.vitals(ctx, client, p)
	return r
}

// roundTrip sends a fresh local item to the machine and fetches a fresh
// item of the machine's, as Guix's `guix offload test` does.
func roundTrip(ctx context.Context, client *ssh.Client, p Probe, r *Report) bool {
	token := randomToken()
	item, err := localTestItem(ctx, p, "guix-offload-test-import-"+token, token)
	if err != nil {
		r.add("import", false, "make a test item locally: %v", err)
		return false
	}
	b := &Build{Client: client, Host: p.Name, Drv: "-", Guix: p.Guix, RemoteGuix: p.RemoteGuix, Store: p.Store, Msg: io.Discard, Log: io.Discard}
	if err := send(ctx, b, []string{item}, false); err != nil {
		r.add("import", false, "%v", err)
		return false
	}
	out, err := Output(ctx, client, Command(p.RemoteGuix, "archive", "--missing"), strings.NewReader(item+"\n"))
	if err != nil || strings.TrimSpace(string(out)) != "" {
		r.add("import", false, "%s is still missing on the machine after the import (%v)", item, err)
		return false
	}
	r.add("import", true, "the machine accepts our signature (%s)", filepath.Base(item))

	content := "export " + token
	remote, err := remoteTextItem(ctx, client, p.RemoteGuix, p.Store, "guix-offload-test-export-"+token, content)
	if err != nil {
		r.add("export", false, "make a test item on the machine: %v", err)
		return false
	}
	if err := fetchAndCheck(ctx, client, p, remote, content); err != nil {
		r.add("export", false, "%v", err)
		return false
	}
	r.add("export", true, "its signature is authorized here (%s)", filepath.Base(remote))
	return true
}

// fetchAndCheck reads the machine's export of item, verifies it against
// the local ACL and compares its content, without touching the store.
func fetchAndCheck(ctx context.Context, client *ssh.Client, p Probe, item, content string) error {
	cmd := Command(p.RemoteGuix, "archive", "--export", item)
	return checkExport(p, item, content, func(w io.Writer) error {
		errBuf := &tail{max: 2048}
		code, err := Exec(ctx, client, cmd, nil, w, errBuf)
		if err == nil && code != 0 {
			err = &RemoteError{Command: cmd, Status: code, Stderr: errBuf.String()}
		}
		return err
	})
}

// checkExport reads the export of item that export writes, verifies it
// against the local ACL and compares its content, without touching the
// store.
func checkExport(p Probe, item, content string, export func(io.Writer) error) error {
	dir, err := os.MkdirTemp("", "guix-offload-test-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := export(pw)
		pw.CloseWithError(err)
		done <- err
	}()
	dst := filepath.Join(dir, "item")
	xr := nar.NewExportReader(pr)
	it, rerr := xr.Next(dst)
	if rerr == nil {
		if _, err := xr.Next(filepath.Join(dir, "extra")); err != io.EOF {
			rerr = fmt.Errorf("%w: more than %s in the export", ErrUnexpectedItem, item)
		}
	}
	if rerr == nil {
		_, _ = io.Copy(io.Discard, pr)
	} else {
		pr.CloseWithError(rerr)
	}
	if err := <-done; err != nil && rerr == nil {
		return err
	}
	if rerr != nil {
		return rerr
	}
	if it.Path != item {
		return fmt.Errorf("%w: asked for %s, got %s", ErrUnexpectedItem, item, it.Path)
	}
	if _, err := it.Verify(p.ACL); err != nil {
		return err
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		return err
	}
	if string(got) != content {
		return fmt.Errorf("%s holds %q, want %q", item, got, content)
	}
	return nil
}

// vitals reads load, free space and clock in one command.
func (r *Report) vitals(ctx context.Context, client *ssh.Client, p Probe) {
	cmd := "cat /proc/loadavg; getconf _NPROCESSORS_ONLN; df -Pk " + Quote(p.Store) + " | tail -n 1; date +%s.%N"
	before := time.Now()
	out, err := Output(ctx, client, cmd, nil)
	after := time.Now()
	if err != nil {
		r.add("load", false, "%v", err)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 {
		r.add("load", false, "unexpected answer %q", out)
		return
	}
	load, err1 := strconv.ParseFloat(strings.Fields(lines[0] + " x")[0], 64)
	cores, err2 := strconv.Atoi(strings.TrimSpace(lines[1]))
	if err1 != nil || err2 != nil || cores < 1 {
		r.add("load", false, "cannot read /proc/loadavg and the number of processors: %q", lines[:2])
	} else {
		r.Load = load / float64(cores)
		s := r.add("load", true, "%.2f (1-minute load %.2f on %d cores)", r.Load, load, cores)
		if p.OverloadThreshold != nil && r.Load >= *p.OverloadThreshold {
			s.Warn = true
			s.Detail += fmt.Sprintf("; at or above its overload threshold %.2f", *p.OverloadThreshold)
		}
	}
	if f := strings.Fields(lines[2]); len(f) >= 4 {
		if kib, err := strconv.ParseInt(f[3], 10, 64); err == nil {
			r.FreeMiB = kib / 1024
			s := r.add("free space", true, "%d MiB in %s", r.FreeMiB, p.Store)
			if r.FreeMiB < MinFreeMiB {
				s.Warn = true
				s.Detail += fmt.Sprintf("; under %d MiB", MinFreeMiB)
			}
		}
	}
	if r.FreeMiB < 0 {
		r.add("free space", false, "cannot read df output %q", lines[2])
	}
	if secs, err := strconv.ParseFloat(strings.TrimSpace(lines[3]), 64); err == nil {
		remote := time.Unix(0, int64(secs*1e9))
		mid := before.Add(after.Sub(before) / 2)
		r.ClockSkew = remote.Sub(mid).Round(time.Millisecond)
		s := r.add("clock", true, "%+.1f s from ours", r.ClockSkew.Seconds())
		if r.ClockSkew > MaxClockSkew || r.ClockSkew < -MaxClockSkew {
			s.Warn = true
			s.Detail += "; synchronize the clocks (NTP)"
		}
	} else {
		r.add("clock", false, "cannot read the machine's time %q", lines[3])
	}
}

func (r *Report) judge(p Probe) {
	var warns []string
	for _, s := range r.Steps {
		if !s.OK {
			r.Usable = false
			r.Verdict = "unusable: " + s.Name + ": " + s.Detail
			return
		}
		if s.Warn {
			warns = append(warns, s.Name)
		}
	}
	if len(r.Steps) == 0 {
		r.Verdict = "unusable: not checked"
		return
	}
	r.Usable = true
	r.Verdict = "usable"
	overloaded := p.OverloadThreshold != nil && !math.IsNaN(r.Load) && r.Load >= *p.OverloadThreshold
	if overloaded || (r.FreeMiB >= 0 && r.FreeMiB < MinFreeMiB) {
		r.Verdict = "usable, but the hook skips it while it is overloaded or short of space"
	} else if len(warns) > 0 {
		r.Verdict = "usable, with warnings: " + strings.Join(warns, ", ")
	}
}

// WriteReports prints each report step by step, then its verdict, as
// `guix-offload test` shows them.
func WriteReports(w io.Writer, reports []*Report) error {
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s (%s, %s)\n", r.Name, r.Addr, r.Origin)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, s := range r.Steps {
			mark := "ok"
			switch {
			case !s.OK:
				mark = "FAIL"
			case s.Warn:
				mark = "warn"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, mark, s.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "  verdict: %s\n", r.Verdict)
	}
	return nil
}

// WriteStatus prints one line per machine, as `guix-offload status`
// shows them.
func WriteStatus(w io.Writer, reports []*Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tADDRESS\tORIGIN\tLOAD\tFREE\tCLOCK\tSTATE")
	for _, r := range reports {
		load, free, clock := "-", "-", "-"
		if !math.IsNaN(r.Load) {
			load = strconv.FormatFloat(r.Load, 'f', 2, 64)
		}
		if r.FreeMiB >= 0 {
			free = strconv.FormatInt(r.FreeMiB, 10) + " MiB"
		}
		for _, s := range r.Steps {
			if s.Name == "clock" && s.OK {
				clock = fmt.Sprintf("%+.1fs", r.ClockSkew.Seconds())
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Addr, r.Origin, load, free, clock, r.Verdict)
	}
	return tw.Flush()
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
