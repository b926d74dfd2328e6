package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/worker"
	"github.com/guix-offload/guix-offload/scm"
)

// Sentinels for errors.Is on what [Run] returns; [ExitCode] maps them.
var (
	// ErrBuildFailed: the remote build itself failed (permanent, exit 100).
	ErrBuildFailed = errors.New("build failed")
	// ErrTimeout: the build exceeded max-silent-time or the build timeout,
	// on the remote side or as we watched it (exit 101).
	ErrTimeout = errors.New("build timed out")
	// ErrRemoteCommandMissing: a command run on the machine was not
	// found there (the shell's exit status 127): guix, or the stream
	// helper, is not installed or not on the PATH of SSH sessions. It
	// says the machine is unusable whatever the derivation (exit 1).
	ErrRemoteCommandMissing = errors.New("command not found on the machine")
	// ErrUnresponsive: a remote step got no answer within its bound (a
	// login shell or a guix that hangs, a build that never starts, a
	// transfer that stalls). It says the machine is unusable for now,
	// whatever the derivation (exit 1).
	ErrUnresponsive = errors.New("the machine did not answer in time")
)

// Build is one offloaded build: what the daemon asked for after `# accept`
// and where to do it.
type Build struct {
	// Client is the open SSH connection to the build machine; Run uses it
	// for every remote command and does not close it.
	Client *ssh.Client
	// Host is the machine's name in messages ("builder1").
	Host string

	// Drv is the derivation to build; Inputs the paths the daemon wants
	// available remotely (its first line after accept), Outputs the paths
	// to bring back (its second line).
	Drv     string
	Inputs  []string
	Outputs []string

	// MaxSilent and Timeout are the daemon's max-silent-time and build
	// timeout; 0 means none. Both are sent to the machine as they are
	// (0 included, so that its daemon's own defaults do not apply).
	MaxSilent, Timeout time.Duration
	// PrintBuildTrace makes Run print `@ build-remote DRV HOST` on Msg.
	PrintBuildTrace bool
	// Grace is how much longer than MaxSilent and Timeout Run waits for
	// the machine's own verdict before deciding that the machine stopped
	// answering (and returning ErrTimeout); 0 means 30 s.
	Grace time.Duration
	// Stall is how long sending the inputs or retrieving the outputs may
	// move no byte (or wait for the remote command to end) before Run
	// gives up on the machine (exit 1); 0 means 10 minutes.
	Stall time.Duration
	// StepTimeout bounds each remote step that moves no build data
	// (`command -v`, `guix archive --missing`): a machine that has not
	// answered by then, a login shell that hangs for instance, is
	// given up on with [ErrUnresponsive] (exit 1). 0 means 1 minute.
	// Until `guix build` prints its first byte, the build is bounded by
	// Stall, and by MaxSilent and Timeout (plus Grace) when set.
	StepTimeout time.Duration

	// Store is the store directory, "/gnu/store" when empty.
	Store string
	// ACL holds the keys whose signatures are accepted on retrieved
	// outputs (the local /etc/guix/acl); it is required.
	ACL *pki.ACL
	// Guix is the local guix program, for `guix archive --export`;
	// empty means "guix" on PATH.
	Guix string

	// Log receives the remote build log (the daemon's fd 4); Msg receives
	// progress messages (the daemon's stderr). Nil discards.
	Log io.Writer
	Msg io.Writer

	// Compress lets Run compress archives when the machine has
	// guix-offload-agent on its PATH (checked with `command -v`).
	Compress bool
	// RemoteGuix is the guix program on the machine; "guix" when empty.
	RemoteGuix string

	// RemoteDaemon is the machine's guix-daemon socket, reached over the
	// SSH connection (through `guix-offload-agent relay`, or a
	// direct-streamlocal@openssh.com channel); empty
	// means /var/guix/daemon-socket/socket, [NoDaemon] means guix
	// commands there always. LocalDaemon is the local daemon's socket,
	// which exports the inputs; empty means the same default, NoDaemon
	// or an unreachable socket means `guix archive --export`.
	RemoteDaemon, LocalDaemon string
	// SigningKey is the master's signing key (Guix's
	// /etc/guix/signing-key.sec when empty, [NoDaemon] for none): with
	// the local daemon, the inputs are signed with it here rather than
	// by the daemon, which would start its `guix authenticate` helper.
	// When it cannot be read, the local daemon signs.
	SigningKey string
}

// Run transfers the missing inputs, builds remotely and retrieves the
// outputs into b.Store (see the package documentation). It blocks until
// done or ctx is done. On success every output exists under b.Store; on
// any error none of them was created by Run. Errors name the machine.
func Run(ctx context.Context, b *Build) error {
	if err := b.check(); err != nil {
		return fmt.Errorf("offload to '%s': %w", b.Host, err)
	}
	err := run(ctx, b)
	if err != nil && !errors.Is(err, ErrBuildFailed) && !errors.Is(err, ErrTimeout) {
		return fmt.Errorf("offload to '%s': %w", b.Host, err)
	}
	return err
}

// The offload hook's exit statuses, as guix-daemon reads them (DESIGN
// §2): only a build that ran and failed is a permanent failure.
const (
	ExitOK          = 0
	ExitError       = 1   // anything else: the daemon may try again
	ExitBuildFailed = 100 // the build failed (permanent)
	ExitTimedOut    = 101 // the build timed out
)

// ExitCode maps an error from [Run] to the hook's exit status as
// guix-daemon reads it: [ExitOK], [ExitBuildFailed], [ExitTimedOut] or
// [ExitError].
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrTimeout):
		return ExitTimedOut
	case errors.Is(err, ErrBuildFailed):
		return ExitBuildFailed
	}
	return ExitError
}

func (b *Build) check() error {
	switch {
	case b.Client == nil:
		return errors.New("offload: no SSH connection")
	case b.Drv == "":
		return errors.New("offload: no derivation")
	case len(b.Outputs) == 0:
		return fmt.Errorf("offload %s: no outputs to retrieve", b.Drv)
	case b.ACL == nil:
		return fmt.Errorf("offload %s: no ACL to verify the outputs with", b.Drv)
	}
	if b.Store == "" {
		b.Store = scm.DefaultStore
	}
	if b.RemoteGuix == "" {
		b.RemoteGuix = "guix"
	}
	if b.Log == nil {
		b.Log = io.Discard
	}
	if b.Msg == nil {
		b.Msg = io.Discard
	}
	// Everything goes on command lines and into the store: only plain
	// store paths.
	for _, p := range b.Outputs {
		if !b.inStore(p) {
			return fmt.Errorf("offload %s: output %q is not in the store %s", b.Drv, p, b.Store)
		}
	}
	for _, p := range append([]string{b.Drv}, b.Inputs...) {
		if !b.inStore(p) {
			return fmt.Errorf("offload %s: input %q is not in the store %s", b.Drv, p, b.Store)
		}
	}
	return nil
}

func (b *Build) inStore(p string) bool {
	name := filepath.Base(p)
	return filepath.Dir(p) == b.Store && validName(name) && !strings.HasPrefix(name, "-") && !strings.ContainsAny(name, "\n\t ")
}

func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

func (b *Build) msgf(format string, args ...any) {
	fmt.Fprintf(b.Msg, format+"\n", args...)
}

func run(ctx context.Context, b *Build) error {
	// The machine's daemon, over this connection: one operation per step
	// and no guix process anywhere. Without it, guix commands, as before.
	if b.RemoteDaemon != NoDaemon {
		socket := b.RemoteDaemon
		if socket == "" {
			socket = worker.DefaultSocket
		}
		conn, why := dialRemoteDaemon(ctx, b.Client, socket, b.StepTimeout)
		if conn != nil {
			return runDirect(ctx, b, conn)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b.msgf("cannot talk to guix-daemon on '%s' directly: %s; using guix commands there", b.Host, why)
	}
	return runCommands(ctx, b)
}

// runCommands is Run with guix commands on the machine (steps 1-4 of the
// package documentation).
func runCommands(ctx context.Context, b *Build) error {
	compress := false
	if b.Compress {
		// `command -v` is POSIX and answers without running the program.
		err := b.step(ctx, "look for "+Agent, func(ctx context.Context) error {
			code, err := Exec(ctx, b.Client, "command -v "+Agent, nil, io.Discard, io.Discard)
			compress = code == 0
			return err
		})
		if err != nil {
			return err
		}
	}

	// 1. Which inputs does the machine lack?
	missing, err := remoteMissing(ctx, b)
	if err != nil {
		return err
	}
	// 2. Send them.
	if len(missing) > 0 {
		if err := send(ctx, b, missing, compress); err != nil {
			return err
		}
	}
	// 3. Build.
	if err := build(ctx, b); err != nil {
		return err
	}
	// 4. Retrieve.
	return retrieve(ctx, b, compress)
}

// defaultStepTimeout bounds a remote step when [Build].StepTimeout is 0.
const defaultStepTimeout = time.Minute

// step runs the remote step called name (in errors) with a deadline of
// b.StepTimeout. A step cut by that deadline returns [ErrUnresponsive];
// any other error is returned wrapped in name.
func (b *Build) step(ctx context.Context, name string, f func(context.Context) error) error {
	d := b.StepTimeout
	if d <= 0 {
		d = defaultStepTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := f(sctx)
	switch {
	case err == nil:
		return nil
	case ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: %w (no answer within %v)", name, ErrUnresponsive, d)
	}
	return fmt.Errorf("%s: %w", name, err)
}

func remoteMissing(ctx context.Context, b *Build) ([]string, error) {
	in := strings.Join(b.Inputs, "\n")
	if in != "" {
		in += "\n"
	}
	var out []byte
	err := b.step(ctx, "ask which inputs are missing", func(ctx context.Context) error {
		var err error
		out, err = Output(ctx, b.Client, Command(b.RemoteGuix, "archive", "--missing"), strings.NewReader(in))
		return err
	})
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(b.Inputs))
	for _, p := range b.Inputs {
		want[p] = true
	}
	var missing []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !want[line] {
			return nil, fmt.Errorf("ask which inputs are missing: unexpected answer %q", line)
		}
		missing = append(missing, line)
	}
	return missing, nil
}

// send exports missing locally and streams the export into the remote
// import.
func send(ctx context.Context, b *Build, missing []string, compress bool) error {
	noun := "store item"
	if len(missing) != 1 {
		noun += "s"
	}
	b.msgf("sending %d %s (%s MiB) to '%s'...", len(missing), noun, mib(diskUsage(missing)), b.Host)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	export := exec.CommandContext(ctx, lookGuix(b.Guix), append([]string{"archive", "--export"}, missing...)...)
	localErr := &tail{max: 2048}
	export.Stderr = localErr
	stdout, err := export.StdoutPipe()
	if err != nil {
		return err
	}
	if err := export.Start(); err != nil {
		return fmt.Errorf("export inputs: start %s: %w", export.Path, err)
	}

	var remoteCmd string
	var body io.Reader = stdout
	var raw, wire int64
	var compErr error
	var wg sync.WaitGroup
	var pr *io.PipeReader
	if compress {
		remoteCmd = Command(Agent, "stream", "import")
		var pw *io.PipeWriter
		pr, pw = io.Pipe()
		body = pr
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw, wire, compErr = Compress(pw, stdout)
			pw.CloseWithError(compErr)
		}()
	} else {
		remoteCmd = Command(b.RemoteGuix, "archive", "--import")
		body = &countReader{r: stdout, n: &raw}
	}
	remoteErr := &tail{max: 2048}
	guard := newStallGuard(b.Stall, cancel)
	guard.start(ctx)
	code, err := Exec(ctx, b.Client, remoteCmd, guard.reader(body), io.Discard, remoteErr)
	guard.stop()
	if err != nil || code != 0 {
		cancel()
	}
	if pr != nil {
		// Nobody reads the compressed stream any more: let the
		// compressor's writes fail rather than block.
		pr.CloseWithError(errors.New("the remote import has ended"))
	}
	// Let the exporter finish or die before waiting for it.
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	wg.Wait()
	werr := export.Wait()
	switch {
	case guard.stalled():
		return fmt.Errorf("send inputs: stalled: nothing moved for %v before '%s' finished the import: %w", guard.d, b.Host, ErrUnresponsive)
	case werr != nil && strings.TrimSpace(localErr.String()) != "":
		// The export said why it failed; the import only saw a stream
		// cut short.
		return fmt.Errorf("export inputs locally: %s archive --export: %v: %s", lookGuix(b.Guix), werr, lastLine(localErr.String()))
	case err != nil:
		return fmt.Errorf("send inputs: %w", err)
	case code != 0:
		return fmt.Errorf("send inputs: %w", &RemoteError{Command: remoteCmd, Status: code, Stderr: remoteErr.String()})
	case werr != nil:
		return fmt.Errorf("export inputs locally: %s archive --export: %v: %s", lookGuix(b.Guix), werr, lastLine(localErr.String()))
	case compErr != nil:
		return fmt.Errorf("send inputs: %w", compErr)
	}
	if compress {
		b.msgf("sent %s MiB to '%s' as %s MiB (zstd)", mib(raw), b.Host, mib(wire))
	}
	return nil
}

type countReader struct {
	r io.Reader
	n *int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// diskUsage adds up the sizes of the files under paths (a close estimate of
// their NAR size, which is what Guix reports).
func diskUsage(paths []string) int64 {
	var n int64
	for _, p := range paths {
		_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
				n += info.Size()
			}
			return nil
		})
	}
	return n
}

func mib(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64)
}

func build(ctx context.Context, b *Build) error {
	if b.PrintBuildTrace {
		b.msgf("@ build-remote %s %s", b.Drv, b.Host)
	}
	b.msgf("offloading '%s' to '%s'...", b.Drv, b.Host)
	// --verbosity=3 shows the whole build log (Guix's default, 1, only
	// says what is being built), and with it the daemon's own messages.
	// The master's limits always go along, 0 meaning "no limit", as
	// Guix's hook sends them: left out, the machine's daemon would apply
	// its own --timeout and --max-silent-time.
	argv := []string{b.RemoteGuix, "build", "--no-offload", "--verbosity=3",
		"--max-silent-time=" + seconds(b.MaxSilent), "--timeout=" + seconds(b.Timeout), b.Drv}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &watch{log: newLogFilter(b.Log, b.Store), last: time.Now(), verdicts: newVerdicts(b.Drv, b.Outputs)}
	defer w.flush()
	// Before its first byte, guix build has not started the build: a
	// machine whose login shell or guix hangs must not hold the slot
	// for longer than the stall guard, nor past the master's limits.
	watchdog := watchBuild(ctx, b, w, cancel)
	// exec: the signal that ends the session on our timeout then reaches
	// guix itself, not just the login shell (and the daemon cancels the
	// build when its client goes).
	// stdout has only the output paths `guix build` prints at the end:
	// not the build log.
	code, err := Exec(ctx, b.Client, "exec "+Command(argv...), nil, w.quiet(), w)
	cancel()
	select {
	case werr := <-watchdog:
		return werr
	default:
	}
	if err != nil {
		return fmt.Errorf("build %s: %w", b.Drv, err)
	}
	w.flush()
	return buildResult(b, code, w.verdict(), w.tailString())
}

// seconds formats a limit for guix's command line: whole seconds, 0 for
// none, and at least 1 for a limit under a second (0 would lift it).
func seconds(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Second:
		return "1"
	}
	return strconv.Itoa(int(d / time.Second))
}

// probeTimeout is how long the watchdog waits for the machine to answer
// a keepalive before calling the connection lost.
const probeTimeout = 3 * time.Second

// answers reports whether the SSH server behind c answers a global
// request within d. OpenSSH answers "keepalive@openssh.com" with a
// failure, which is an answer all the same. On a dead link the request
// stays pending until the connection closes (the hook exits right
// after); ctx done counts as an answer, since nobody is waiting then.
func answers(ctx context.Context, c *ssh.Client, d time.Duration) bool {
	res := make(chan error, 1)
	go func() {
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		res <- err
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-res:
		return err == nil
	case <-t.C:
		return false
	case <-ctx.Done():
		return true
	}
}

// buildResult turns how `guix build` ended into Run's error: the
// daemon's last word about this derivation decides; without one, the
// exit status when it is the daemon's own (100, 101); otherwise the
// failure is transient (exit 1), since 100 could be cached as permanent.
func buildResult(b *Build, code int, v verdict, tail string) error {
	if code == 0 {
		return nil
	}
	if v == verdictNone {
		switch code {
		case 101:
			v = verdictTimeout
		case 100:
			v = verdictFailed
		}
	}
	switch {
	case v == verdictTimeout:
		return fmt.Errorf("%w: %s on '%s'", ErrTimeout, b.Drv, b.Host)
	case v == verdictFailed:
		return fmt.Errorf("%w: %s on '%s'", ErrBuildFailed, b.Drv, b.Host)
	case v == verdictTransient:
		return fmt.Errorf("build %s: failed on '%s' for lack of free disk space there: %s", b.Drv, b.Host, lastLine(tail))
	case code == 127:
		return fmt.Errorf("build %s: %s: %w", b.Drv, b.RemoteGuix, ErrRemoteCommandMissing)
	}
	return fmt.Errorf("build %s: %s build exited with status %d: %s", b.Drv, b.RemoteGuix, code, lastLine(tail))
}

// watch copies the remote build output to the log, remembers when it last
// saw any, and looks for the daemon's verdict lines.
type watch struct {
	mu       sync.Mutex
	log      io.Writer
	last     time.Time
	started  bool // some output came
	line     []byte
	tail     tail
	verdicts *verdicts
}

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = time.Now()
	w.started = true
	if w.tail.max == 0 {
		w.tail.max = 2048
	}
	_, _ = w.tail.Write(p)
	// Keep logging even when the log reader went away: the build goes on.
	_, _ = w.log.Write(p)
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		w.scan(w.line[:i])
		w.line = w.line[i+1:]
	}
	if len(w.line) > 64<<10 {
		w.line = w.line[:0]
	}
	return len(p), nil
}

// quiet returns a writer that counts as output from the machine (for
// the silence watchdog) but neither logs nor scans what it gets.
func (w *watch) quiet() io.Writer { return quietWatch{w} }

type quietWatch struct{ w *watch }

func (q quietWatch) Write(p []byte) (int, error) {
	q.w.mu.Lock()
	defer q.w.mu.Unlock()
	q.w.last = time.Now()
	q.w.started = true
	return len(p), nil
}

func (w *watch) scan(line []byte) {
	if w.verdicts != nil {
		w.verdicts.scan(string(line))
	}
}

func (w *watch) verdict() verdict {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.verdicts == nil {
		return verdictNone
	}
	return w.verdicts.last
}

func (w *watch) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.line) > 0 {
		w.scan(w.line)
		w.line = nil
	}
	if f, ok := w.log.(interface{ Flush() }); ok {
		f.Flush()
	}
}

func (w *watch) tailString() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tail.String()
}

func (w *watch) startedOutput() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.started
}

func (w *watch) lastOutput() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}
