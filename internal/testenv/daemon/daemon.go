package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Answers a hook may give, without the "# " prefix.
const (
	Accept   = "accept"
	Decline  = "decline"
	Postpone = "postpone"
)

// Errors the daemon would fail the client's whole request with.
var (
	// ErrBadReply: the hook answered something else than accept, decline
	// or postpone after "# " (the daemon: "bad hook reply").
	ErrBadReply = errors.New("bad hook reply")
	// ErrEOF: the hook closed its output before replying (the daemon:
	// "unexpected EOF reading a line").
	ErrEOF = errors.New("unexpected EOF reading a line")
)

// Options describe how the daemon starts the hook.
type Options struct {
	// Program is the daemon's GUIX: the hook is run as `Program offload …`.
	Program string
	// Prefix is prepended to the command line (e.g. "ip netns exec NS");
	// it must exec, not fork.
	Prefix []string
	// The four arguments. PrintBuildTrace is passed as 1 or 0.
	System          string
	MaxSilentTime   int
	PrintBuildTrace bool
	BuildTimeout    int
	// Env is the hook's whole environment; nil means os.Environ(). GUIX is
	// set to Program, as the daemon's own environment has it.
	Env []string
	// OutputExists tells whether an output path exists after exit 0;
	// nil means os.Lstat in this mount namespace.
	OutputExists func(path string) bool
	// ReplyTimeout bounds each wait for a reply; 0 means 30 s.
	ReplyTimeout time.Duration
}

// Req is one request line: `WILLING SYSTEM DRV FEATURES`.
type Req struct {
	Willing  bool
	System   string
	Drv      string
	Features []string
}

// Line is the request as the daemon writes it (without the newline):
// features joined by commas, the line ending in a space when there are none.
func (r Req) Line() string {
	w := "0"
	if r.Willing {
		w = "1"
	}
	return fmt.Sprintf("%s %s %s %s", w, r.System, r.Drv, strings.Join(r.Features, ","))
}

// Reply is the hook's answer to one request.
type Reply struct {
	Answer string // Accept, Decline or Postpone
	// Chatter are the lines before the answer; the daemon copies them to
	// its stderr.
	Chatter []string
}

// Outcome is what the daemon makes of the hook's exit.
type Outcome int

const (
	// Succeeded: exit 0 and every output exists.
	Succeeded Outcome = iota
	// Failed: exit 100, a permanent build failure ("@ build-failed").
	Failed
	// TimedOut: exit 101 ("@ build-failed DRV - timeout").
	TimedOut
	// HookFailed: any other status, or exit 0 with an output missing
	// ("@ hook-failed"); not cached.
	HookFailed
)

func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	case TimedOut:
		return "timed out"
	case HookFailed:
		return "hook failed"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result is the end of an accepted build.
type Result struct {
	Status   syscall.WaitStatus
	Outcome  Outcome
	Messages []string // the hook's stdout/stderr lines after the answer
	Log      []byte   // everything written to fd 4
	Missing  []string // outputs that did not exist after exit 0
	// Reason reads like the daemon's message for the outcome.
	Reason string
}

// Hook is a running hook process.
type Hook struct {
	t       testing.TB
	opts    Options
	cmd     *exec.Cmd
	stdin   *os.File // write side of the hook's stdin
	out     *os.File // read side of stdout+stderr
	log     *os.File // read side of fd 4
	lines   chan string
	readErr chan error
	logBuf  chan []byte
	waited  chan struct{}
	state   *os.ProcessState
	mu      sync.Mutex
	waitErr error
}

// Start starts the hook; it is killed at t.Cleanup like the daemon does.
func Start(t testing.TB, opts Options) *Hook {
	t.Helper()
	h, err := StartHook(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.t = t
	t.Cleanup(h.Kill)
	return h
}

// StartHook is [Start] without a testing.TB; the caller must call Kill.
func StartHook(opts Options) (*Hook, error) {
	if opts.ReplyTimeout == 0 {
		opts.ReplyTimeout = 30 * time.Second
	}
	trace := "0"
	if opts.PrintBuildTrace {
		trace = "1"
	}
	argv := append(append([]string{}, opts.Prefix...), opts.Program, "offload", opts.System,
		strconv.Itoa(opts.MaxSilentTime), trace, strconv.Itoa(opts.BuildTimeout))
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	env = append(append([]string{}, env...), "GUIX="+opts.Program)

	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	logR, logW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = env
	cmd.Stdin = inR
	cmd.Stdout = outW // stdout and stderr: the same pipe
	cmd.Stderr = outW
	cmd.ExtraFiles = []*os.File{null, logW} // fd 3 harmless, fd 4 the build log
	// Pdeathsig: the hook goes with the test binary even when that is
	// killed (its timeout) before any cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	logW.Close()
	null.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		logR.Close()
		return nil, fmt.Errorf("start hook %s: %w", strings.Join(argv, " "), err)
	}
	h := &Hook{
		opts: opts, cmd: cmd, stdin: inW, out: outR, log: logR,
		lines: make(chan string, 1024), readErr: make(chan error, 1),
		logBuf: make(chan []byte, 1), waited: make(chan struct{}),
	}
	go h.readLines()
	go func() {
		b, _ := io.ReadAll(logR)
		h.logBuf <- b
	}()
	go func() {
		err := cmd.Wait()
		h.mu.Lock()
		h.state, h.waitErr = cmd.ProcessState, err
		h.mu.Unlock()
		close(h.waited)
	}()
	return h, nil
}

// readLines reads the hook's stdout/stderr line by line, like the
// daemon's readLine: bytes up to '\n'.
func (h *Hook) readLines() {
	r := bufio.NewReader(h.out)
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			if s != "" {
				h.lines <- s // a last line without newline
			}
			close(h.lines)
			h.readErr <- err
			return
		}
		h.lines <- strings.TrimSuffix(s, "\n")
	}
}

// Request writes r's line and reads the reply.
func (h *Hook) Request(ctx context.Context, r Req) (Reply, error) {
	return h.RequestLine(ctx, r.Line())
}

// RequestLine writes line (a newline is added) and reads until the first
// line starting with "# ". Other lines are returned as chatter.
func (h *Hook) RequestLine(ctx context.Context, line string) (Reply, error) {
	var rep Reply
	if _, err := io.WriteString(h.stdin, line+"\n"); err != nil {
		return rep, fmt.Errorf("write request to hook: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.ReplyTimeout)
	defer cancel()
	for {
		select {
		case s, ok := <-h.lines:
			if !ok {
				return rep, ErrEOF
			}
			if strings.HasPrefix(s, "# ") {
				rep.Answer = s[2:]
				switch rep.Answer {
				case Accept, Decline, Postpone:
					return rep, nil
				}
				return rep, fmt.Errorf("%w: %q", ErrBadReply, s)
			}
			rep.Chatter = append(rep.Chatter, s)
		case <-ctx.Done():
			return rep, fmt.Errorf("no reply from hook to %q: %w", line, ctx.Err())
		}
	}
}

// Accept writes the inputs and outputs lines after an accept, closes the
// hook's stdin, reads its messages and fd 4 until both are closed, waits
// for it and interprets its exit status.
func (h *Hook) Accept(ctx context.Context, inputs, outputs []string) (*Result, error) {
	if _, err := io.WriteString(h.stdin, pathsLine(inputs)+"\n"+pathsLine(outputs)+"\n"); err != nil {
		return nil, fmt.Errorf("write inputs and outputs to hook: %w", err)
	}
	h.stdin.Close()
	res := &Result{}
	done := false
	for !done {
		select {
		case s, ok := <-h.lines:
			if !ok {
				done = true
				break
			}
			res.Messages = append(res.Messages, s)
		case <-ctx.Done():
			return res, fmt.Errorf("hook still running: %w", ctx.Err())
		}
	}
	select {
	case res.Log = <-h.logBuf:
	case <-ctx.Done():
		return res, fmt.Errorf("hook's fd 4 still open: %w", ctx.Err())
	}
	select {
	case <-h.waited:
	case <-ctx.Done():
		return res, fmt.Errorf("hook did not exit: %w", ctx.Err())
	}
	h.mu.Lock()
	st := h.state
	h.mu.Unlock()
	res.Status = st.Sys().(syscall.WaitStatus)
	interpret(res, outputs, h.opts.OutputExists)
	return res, nil
}

// pathsLine is how the daemon writes a set of paths: each followed by a
// space.
func pathsLine(paths []string) string {
	var b strings.Builder
	for _, p := range paths {
		b.WriteString(p)
		b.WriteByte(' ')
	}
	return b.String()
}

func interpret(res *Result, outputs []string, exists func(string) bool) {
	if exists == nil {
		exists = func(p string) bool { _, err := os.Lstat(p); return err == nil }
	}
	ws := res.Status
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		for _, o := range outputs {
			if !exists(o) {
				res.Missing = append(res.Missing, o)
			}
		}
		if len(res.Missing) > 0 {
			res.Outcome = HookFailed
			res.Reason = "builder failed to produce output path " + res.Missing[0]
		} else {
			res.Outcome = Succeeded
			res.Reason = "succeeded"
		}
	case ws.Exited() && ws.ExitStatus() == 100:
		res.Outcome = Failed
		res.Reason = "failed with exit code 100"
	case ws.Exited() && ws.ExitStatus() == 101:
		res.Outcome = TimedOut
		res.Reason = "timeout"
	case ws.Exited():
		res.Outcome = HookFailed
		res.Reason = fmt.Sprintf("failed with exit code %d", ws.ExitStatus())
	case ws.Signaled():
		res.Outcome = HookFailed
		res.Reason = fmt.Sprintf("failed due to signal %d (%v)", int(ws.Signal()), ws.Signal())
	default:
		res.Outcome = HookFailed
		res.Reason = "died abnormally"
	}
}

// CloseStdin closes the hook's stdin, as the daemon does when a client's
// request is over; a well-behaved idle hook then exits 0.
func (h *Hook) CloseStdin() { h.stdin.Close() }

// Wait waits (bounded by ctx) for the hook to exit and returns its status.
func (h *Hook) Wait(ctx context.Context) (syscall.WaitStatus, error) {
	select {
	case <-h.waited:
	case <-ctx.Done():
		return 0, fmt.Errorf("hook did not exit: %w", ctx.Err())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state.Sys().(syscall.WaitStatus), nil
}

// Kill ends the hook the daemon's way: close its stdin and SIGKILL its
// whole process group, then reap it. Safe to call more than once.
func (h *Hook) Kill() {
	h.stdin.Close()
	_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-h.waited:
	case <-time.After(10 * time.Second):
		if h.t != nil {
			h.t.Errorf("hook %d did not die after SIGKILL", h.cmd.Process.Pid)
		}
	}
	h.out.Close()
	h.log.Close()
}
