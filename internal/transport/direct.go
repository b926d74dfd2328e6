package transport

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/nar"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/worker"
)

// NoDaemon, as [Build].RemoteDaemon or [Build].LocalDaemon, means "do not
// talk to that daemon directly": guix commands there instead.
const NoDaemon = "-"

// greetTimeout bounds reaching the machine's daemon and greeting it (Run
// uses [Build].StepTimeout when shorter); past it, Run falls back to guix
// commands.
const greetTimeout = 15 * time.Second

// relayWait bounds how long closing the relay's exec channel waits for
// the relay to end (and say how) before hanging up the session.
const relayWait = 2 * time.Second

// errNoGreeting is greet's error when the daemon did not greet in time.
var errNoGreeting = errors.New("no greeting")

// daemonConn is a greeted connection to a daemon and what carries it.
type daemonConn struct {
	*worker.Conn
	ch io.Closer
	// via names the channel, for the line Run logs.
	via string
}

// dialRemoteDaemon reaches the daemon's socket on the machine over c and
// greets it: first through `guix-offload-agent relay` on an exec channel
// (which a key restricted to no forwarding at all may open), then, when
// the machine lacks the relay or it fails before a greeting, over a
// direct-streamlocal@openssh.com channel. On failure it says why in words
// fit for the one line Run logs before falling back; nothing has been
// done on the machine then.
func dialRemoteDaemon(ctx context.Context, c *ssh.Client, socket string, limit time.Duration) (*daemonConn, string) {
	if limit <= 0 || limit > greetTimeout {
		limit = greetTimeout
	}
	conn, why, again := dialRelay(ctx, c, socket, limit)
	if conn != nil {
		return conn, ""
	}
	if !again {
		return nil, "relay: " + why
	}
	conn, why2 := dialStreamLocal(ctx, c, socket, limit)
	if conn != nil {
		conn.via += "; no relay: " + why
		return conn, ""
	}
	return nil, "relay: " + why + "; direct-streamlocal channel: " + why2
}

// relayChannel is the exec channel running `guix-offload-agent relay`:
// its stdin and stdout are the daemon's stream.
type relayChannel struct {
	// stdout is fed from the session's stdout by a goroutine that ends
	// with the session, so that Close ends a read at once even when the
	// machine (a login shell that hangs) never closes the channel.
	stdout *io.PipeReader
	stdin  io.Writer
	sess   *ssh.Session
	stderr *lockedTail
	// ended: stdout ended, or stdin refused a write (the channel is
	// closed): the relay has exited, or is about to.
	ended atomic.Bool
	done  chan struct{} // closed when the session ended, err set
	err   error
}

func (r *relayChannel) Read(p []byte) (int, error) {
	n, err := r.stdout.Read(p)
	if err == io.EOF {
		r.ended.Store(true)
	}
	return n, err
}

func (r *relayChannel) Write(p []byte) (int, error) {
	n, err := r.stdin.Write(p)
	if err != nil {
		r.ended.Store(true)
	}
	return n, err
}

// Close hangs up the session: the relay, its stdin ended, ends, and with
// it the daemon's client. When the relay's output has ended or its input
// refused a write (it exited, or is about to), it first waits relayWait at most for the session to
// end, so that its exit status can say why. A read in progress ends at
// once.
func (r *relayChannel) Close() error {
	if r.ended.Load() {
		t := time.NewTimer(relayWait)
		defer t.Stop()
		select {
		case <-r.done:
		case <-t.C:
		}
	}
	r.stdout.CloseWithError(net.ErrClosed)
	return r.sess.Close()
}

// failed says how the relay failed when it exited with a status other
// than 0; "" otherwise (the failure was then the daemon's, or the
// stream's).
func (r *relayChannel) failed() string {
	select {
	case <-r.done:
	default:
		return ""
	}
	var exit *ssh.ExitError
	if !errors.As(r.err, &exit) {
		return ""
	}
	last := lastLine(r.stderr.String())
	switch {
	case exit.ExitStatus() == 127:
		return fmt.Sprintf("%s is not on the login's PATH there (exit 127)", Agent)
	case last != "":
		return fmt.Sprintf("exit %d: %s", exit.ExitStatus(), last)
	}
	return fmt.Sprintf("exit %d", exit.ExitStatus())
}

// dialRelay runs `guix-offload-agent relay --socket SOCKET` on an exec
// channel and greets the daemon through it. When that fails, again says
// whether another channel may do better: not when the daemon was reached
// but did not greet in time, or ctx ended.
func dialRelay(ctx context.Context, c *ssh.Client, socket string, limit time.Duration) (conn *daemonConn, why string, again bool) {
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Sprintf("cannot open an exec channel: %v", err), true
	}
	stdin, err1 := sess.StdinPipe()
	stdout, err2 := sess.StdoutPipe()
	if err := errors.Join(err1, err2); err != nil {
		sess.Close()
		return nil, err.Error(), true
	}
	pr, pw := io.Pipe()
	r := &relayChannel{stdout: pr, stdin: stdin, sess: sess, stderr: &lockedTail{t: tail{max: 4096}}, done: make(chan struct{})}
	sess.Stderr = r.stderr
	if err := sess.Start("exec " + Command(Agent, "relay", "--socket", socket)); err != nil {
		sess.Close()
		return nil, fmt.Sprintf("cannot start %s relay: %v", Agent, err), true
	}
	// These end when the session does: at the latest when the relay
	// ends or the connection closes.
	go func() {
		_, err := io.Copy(pw, stdout)
		pw.CloseWithError(err)
	}()
	go func() {
		r.err = sess.Wait()
		close(r.done)
	}()
	conn, err = greet(ctx, r, limit)
	if err == nil {
		conn.via = "exec channel to " + Agent + " relay"
		return conn, "", false
	}
	// greet closed r, having waited for the relay to end if it did.
	if ctx.Err() != nil {
		return nil, ctx.Err().Error(), false
	}
	if errors.Is(err, errNoGreeting) {
		return nil, fmt.Sprintf("its daemon at %s (or the login shell): %v", socket, err), false
	}
	if why := r.failed(); why != "" {
		return nil, why, true
	}
	return nil, fmt.Sprintf("its daemon at %s: %v", socket, err), true
}

// lockedTail is a tail written by one goroutine and read by another.
type lockedTail struct {
	mu sync.Mutex
	t  tail
}

func (l *lockedTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.t.Write(p)
}

func (l *lockedTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.t.String()
}

// dialStreamLocal opens a direct-streamlocal@openssh.com channel to the
// daemon's socket on the machine and greets it.
func dialStreamLocal(ctx context.Context, c *ssh.Client, socket string, limit time.Duration) (*daemonConn, string) {
	type dialed struct {
		ch  net.Conn
		err error
	}
	res := make(chan dialed, 1)
	go func() {
		ch, err := c.Dial("unix", socket)
		res <- dialed{ch, err}
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	var d dialed
	select {
	case d = <-res:
	case <-t.C:
		go func() {
			if d := <-res; d.ch != nil {
				d.ch.Close()
			}
		}()
		return nil, fmt.Sprintf("opening %s took more than %v", socket, limit)
	case <-ctx.Done():
		go func() {
			if d := <-res; d.ch != nil {
				d.ch.Close()
			}
		}()
		return nil, ctx.Err().Error()
	}
	if d.err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(d.err, &oce) && oce.Reason == ssh.Prohibited {
			return nil, "its sshd forbids stream-local forwarding (AllowStreamLocalForwarding, or the key's restrict/no-port-forwarding)"
		}
		if errors.As(d.err, &oce) {
			// OpenSSH says "open failed" alike for a missing socket, one
			// the login may not use, and AllowStreamLocalForwarding no.
			return nil, fmt.Sprintf("cannot connect to %s there (no guix-daemon listening, a login that may not use it, or an sshd that forbids stream-local forwarding): %s", socket, oce.Message)
		}
		return nil, fmt.Sprintf("cannot open a channel to %s: %v", socket, d.err)
	}
	conn, err := greet(ctx, d.ch, limit)
	if err != nil {
		return nil, fmt.Sprintf("its daemon at %s: %v", socket, err)
	}
	conn.via = "direct-streamlocal channel"
	return conn, ""
}

// greet runs the handshake on ch, closing ch when it fails or takes more
// than limit.
func greet(ctx context.Context, ch io.ReadWriteCloser, limit time.Duration) (*daemonConn, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ch.Close() })
	conn, err := worker.Handshake(ch)
	if !stop() {
		err = errors.Join(err, fmt.Errorf("%w within %v", errNoGreeting, limit))
	}
	if err != nil {
		ch.Close()
		return nil, err
	}
	return &daemonConn{Conn: conn, ch: ch}, nil
}

// dialLocalDaemon greets the local daemon on its Unix socket.
func dialLocalDaemon(ctx context.Context, socket string) (*daemonConn, error) {
	var d net.Dialer
	ch, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	return greet(ctx, ch, greetTimeout)
}

// runDirect is Run over the machine's daemon: one query, one import, one
// build, one export per output, all on conn.
func runDirect(ctx context.Context, b *Build, conn *daemonConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Cancelling closes the channel: that ends any operation in flight,
	// and the remote daemon, seeing its client gone, stops the build.
	defer context.AfterFunc(ctx, func() { conn.ch.Close() })()
	defer conn.ch.Close()
	b.msgf("talking to guix-daemon on '%s' directly (store protocol %#x, %s)", b.Host, conn.DaemonVersion, conn.via)

	// Time limits are exactly the master daemon's (0: none); the log
	// comes as the remote daemon writes it; no offloading from there.
	// These two answer at once from a working daemon; one that does not
	// answer within Build.StepTimeout must not hold the build (and its
	// slot).
	var valid []string
	err := b.step(ctx, "ask which inputs are missing", func(sctx context.Context) error {
		defer context.AfterFunc(sctx, func() { conn.ch.Close() })()
		err := conn.SetOptions(worker.Options{
			MaxSilent: b.MaxSilent, Timeout: b.Timeout,
			Verbosity: 1, Substitutes: true,
		})
		if err == nil {
			valid, err = conn.ValidPaths(b.Inputs)
		}
		if err != nil && sctx.Err() != nil {
			return sctx.Err()
		}
		if err != nil {
			return daemonErr(ctx, "", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(valid))
	for _, p := range valid {
		have[p] = true
	}
	var missing []string
	for _, p := range b.Inputs {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		if err := sendDirect(ctx, cancel, b, conn, missing); err != nil {
			return err
		}
	}
	if err := buildDirect(ctx, b, conn); err != nil {
		return err
	}
	return retrieveDirect(ctx, cancel, b, conn)
}

// daemonErr words a failed operation: the daemon's own refusal, or the
// connection lost (ctx's end counts as ctx's error).
func daemonErr(ctx context.Context, what string, err error) error {
	var de *worker.Error
	switch {
	case errors.As(err, &de):
	case ctx.Err() != nil:
		err = ctx.Err()
	default:
		err = fmt.Errorf("%w: %v", ErrConnectionLost, err)
	}
	if what == "" {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// sendDirect exports missing from the local store (through the local
// daemon, or `guix archive --export` when it cannot be reached) into the
// machine daemon's import, which checks every signature against its ACL.
func sendDirect(ctx context.Context, cancel context.CancelFunc, b *Build, conn *daemonConn, missing []string) error {
	noun := "store item"
	if len(missing) != 1 {
		noun += "s"
	}
	b.msgf("sending %d %s (%s MiB) to '%s'...", len(missing), noun, mib(diskUsage(missing)), b.Host)

	pr, pw := io.Pipe()
	var exportErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		exportErr = exportLocal(ctx, b, missing, pw)
		pw.CloseWithError(exportErr)
	}()
	guard := newStallGuard(b.Stall, cancel)
	guard.start(ctx)
	_, err := conn.Import(guard.reader(pr))
	guard.stop()
	pr.CloseWithError(errImportEnded)
	wg.Wait()
	var de *worker.Error
	switch {
	case guard.stalled():
		return fmt.Errorf("send inputs: stalled: nothing moved for %v before '%s' finished the import: %w", guard.d, b.Host, ErrUnresponsive)
	case errors.As(err, &de) && !strings.Contains(de.Message, "end-of-file"):
		// The machine refused what we sent (a signature, a reference).
		return fmt.Errorf("send inputs: %w: %w", ErrRefused, err)
	case exportErr != nil && !errors.Is(exportErr, errImportEnded) && ctx.Err() == nil:
		// The export failed; the import only saw a stream cut short.
		return fmt.Errorf("export inputs locally: %w", exportErr)
	case err != nil:
		return daemonErr(ctx, "send inputs", err)
	}
	return nil
}

// ErrRefused: the machine's daemon refused the inputs we sent it (our
// signing key not in its ACL, a signature that does not match). It says
// the machine is unusable for us whatever the derivation (exit 1), like
// a failed `guix archive --import` on the commands path.
var ErrRefused = errors.New("the machine refused our store items")

// errImportEnded ends the pipe of the local export once the remote
// import stopped reading.
var errImportEnded = errors.New("the import has ended")

// exportLocal writes the signed export stream of paths to w, dependencies
// first: from the local daemon when b.LocalDaemon can be reached, else
// from `guix archive --export`.
func exportLocal(ctx context.Context, b *Build, paths []string, w io.Writer) error {
	if b.LocalDaemon != NoDaemon {
		socket := b.LocalDaemon
		if socket == "" {
			socket = worker.DefaultSocket
		}
		if local, err := dialLocalDaemon(ctx, socket); err == nil {
			defer local.ch.Close()
			defer context.AfterFunc(ctx, func() { local.ch.Close() })()
			sorted, err := local.SortByReferences(paths)
			if err != nil {
				return fmt.Errorf("local guix-daemon: %w", err)
			}
			if key := readSigningKey(b.SigningKey); key != nil {
				return exportSigned(local, sorted, key, w)
			}
			if err := local.ExportStream(sorted, true, w); err != nil {
				return fmt.Errorf("local guix-daemon: %w", err)
			}
			return nil
		}
	}
	cmd := exec.CommandContext(ctx, lookGuix(b.Guix), append([]string{"archive", "--export"}, paths...)...)
	errBuf := &tail{max: 2048}
	cmd.Stdout = w
	cmd.Stderr = errBuf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s archive --export: %v: %s", cmd.Path, err, lastLine(errBuf.String()))
	}
	return nil
}

// readSigningKey reads the master's signing key, or returns nil when it
// cannot (no such file, no permission, a type we cannot sign with): the
// local daemon then signs.
func readSigningKey(file string) *pki.PrivateKey {
	if file == NoDaemon {
		return nil
	}
	if file == "" {
		file = DefaultSigningKey
	}
	key, err := pki.ReadPrivateKey(file)
	if err != nil {
		return nil
	}
	if _, err := key.Sign([32]byte{}); err != nil {
		return nil
	}
	return key
}

// DefaultSigningKey is where Guix keeps the master's signing key.
const DefaultSigningKey = "/etc/guix/signing-key.sec"

// exportSigned writes the export stream of paths (in that order) to w,
// signed with key: the NARs dumped from the store here, references,
// deriver and recorded NAR hash from the local daemon. An item whose
// contents no longer match the hash the daemon recorded stops the stream
// before its signature, as the daemon's exportPath refuses it. This saves
// the daemon's start of its `guix authenticate` signing helper (a Guile
// process) on every build.
func exportSigned(local *daemonConn, paths []string, key *pki.PrivateKey, w io.Writer) error {
	infos := make([]*worker.PathInfo, len(paths))
	for i, p := range paths {
		info, err := local.PathInfo(p)
		if err != nil {
			return fmt.Errorf("local guix-daemon: %s: %w", p, err)
		}
		infos[i] = info
	}
	xw := nar.NewExportWriter(w)
	for i, p := range paths {
		info := infos[i]
		want := strings.TrimPrefix(info.Hash, "sha256:")
		xw.CheckNAR = func(sum [32]byte, _ uint64) error {
			if got := hex.EncodeToString(sum[:]); want != got && want != strings.Repeat("0", 64) {
				return fmt.Errorf("hash of path `%s' has changed from `%s' to `%s'", p, want, got)
			}
			return nil
		}
		refs := append([]string(nil), info.References...)
		sort.Strings(refs)
		if err := xw.WriteItem(p, refs, info.Deriver, p, key.Sign); err != nil {
			return err
		}
	}
	return xw.Close()
}

// lastOutput is a log writer that remembers when it last wrote.
type lastOutput struct {
	mu   sync.Mutex
	w    io.Writer
	last time.Time
}

func (l *lastOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = time.Now()
	_, _ = l.w.Write(p) // keep going when the log reader went away
	return len(p), nil
}

func (l *lastOutput) lastOutput() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// startedOutput is true: the daemon has answered the build request, so
// the build has started, whether or not it has written to the log yet.
func (l *lastOutput) startedOutput() bool { return true }

// buildDirect has the machine's daemon build b.Drv; the log goes to
// b.Log as it comes, and the outcome is the daemon's status: 101 a
// timeout, 100 (or 102, 104: a hash or determinism check failed) a
// permanent failure, anything else transient.
func buildDirect(ctx context.Context, b *Build, conn *daemonConn) error {
	if b.PrintBuildTrace {
		b.msgf("@ build-remote %s %s", b.Drv, b.Host)
	}
	b.msgf("offloading '%s' to '%s'...", b.Drv, b.Host)
	log := &lastOutput{w: b.Log, last: time.Now()}
	conn.Log = log
	defer func() { conn.Log = nil }()

	// The daemon enforces the limits; past them plus a grace period the
	// watchdog asks the machine once whether it is still there.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchdog := watchBuild(ctx, b, log, func() { conn.ch.Close() })
	err := conn.Build([]string{b.Drv})
	cancel()
	select {
	case werr := <-watchdog:
		return werr
	default:
	}
	if err == nil {
		return nil
	}
	var de *worker.Error
	if errors.As(err, &de) {
		switch de.Status {
		case 101:
			return fmt.Errorf("%w: %s on '%s': %s", ErrTimeout, b.Drv, b.Host, de.Message)
		case 100, 102, 104:
			return fmt.Errorf("%w: %s on '%s': %s", ErrBuildFailed, b.Drv, b.Host, de.Message)
		}
		return fmt.Errorf("build %s: failed on '%s' for a reason of the machine's (status %d): %s", b.Drv, b.Host, de.Status, de.Message)
	}
	return daemonErr(ctx, "build "+b.Drv, err)
}

// retrieveDirect exports b.Outputs from the machine's daemon, signed by
// its key, and restores them as the text path does: verified, under
// temporary names, renamed into place only when all arrived.
func retrieveDirect(ctx context.Context, cancel context.CancelFunc, b *Build, conn *daemonConn) error {
	noun := "store item"
	if len(b.Outputs) != 1 {
		noun += "s"
	}
	b.msgf("retrieving %d %s from '%s'...", len(b.Outputs), noun, b.Host)
	sweepStale(b.Store)

	pr, pw := io.Pipe()
	guard := newStallGuard(b.Stall, cancel)
	guard.start(ctx)
	defer guard.stop()
	done := make(chan error, 1)
	go func() {
		err := conn.ExportStream(b.Outputs, true, guard.writer(pw))
		pw.CloseWithError(err)
		done <- err
	}()
	temps := map[string]string{}
	err := receive(b, pr, false, temps)
	if err == nil {
		// Nothing may follow the end of the stream: the export is over.
		var one [1]byte
		if n, _ := pr.Read(one[:]); n > 0 {
			err = fmt.Errorf("%w: '%s' sent more than the outputs", ErrUnexpectedItem, b.Host)
		}
	}
	pr.CloseWithError(errRetrievalEnded)
	eerr := <-done
	if err != nil || eerr != nil {
		removeTemps(temps)
		switch {
		case guard.stalled():
			return fmt.Errorf("retrieve outputs: stalled: nothing came from '%s' for %v (archive cut short): %w", b.Host, guard.d, ErrUnresponsive)
		case eerr != nil && !errors.Is(eerr, errRetrievalEnded):
			// The export failed (the daemon refused, or the
			// connection broke): that is why the archive ended early.
			return daemonErr(ctx, "retrieve outputs", eerr)
		}
		return fmt.Errorf("retrieve outputs: %w", err)
	}
	return place(b, temps)
}

// errRetrievalEnded ends the export's pipe once the retrieval stopped
// reading: an export failing with it failed because of us.
var errRetrievalEnded = errors.New("the retrieval has ended")

// removeTemps removes the temporary names of a failed retrieval.
func removeTemps(temps map[string]string) {
	for _, tmp := range temps {
		_ = os.RemoveAll(tmp)
	}
}
