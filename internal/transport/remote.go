package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrConnectionLost reports that the SSH connection or session broke
// before the remote command said how it ended.
var ErrConnectionLost = errors.New("connection lost")

// Quote quotes s for a POSIX shell: OpenSSH hands the command line of an
// exec request to the login user's shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+./:,@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Command joins argv into one shell command line, each word quoted.
func Command(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

// Exec runs cmd (a shell command line, see [Command]) in a new session of
// client with the given stdin, stdout and stderr (nil: none), and blocks
// until it exits or ctx is done. It returns the remote exit status; err
// is non-nil only when no exit status came back: the session could not be
// opened, the connection broke ([ErrConnectionLost]), or ctx was done (the
// session is then closed, which ends the remote command, and err wraps
// ctx.Err()).
func Exec(ctx context.Context, client *ssh.Client, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	sess, err := client.NewSession()
	if err != nil {
		return -1, fmt.Errorf("open SSH session: %w: %v", ErrConnectionLost, err)
	}
	defer sess.Close()
	sess.Stdin = stdin
	sess.Stdout = stdout
	sess.Stderr = stderr
	if err := sess.Start(cmd); err != nil {
		return -1, fmt.Errorf("start remote command: %w: %v", ErrConnectionLost, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// OpenSSH forwards the signal to the process it started (the
		// login shell); closing the channel hangs up the session. A
		// grandchild that keeps the session's pipes open keeps sshd from
		// confirming the close, so do not wait for it for long.
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		return -1, ctx.Err()
	}
	if err == nil {
		return 0, nil
	}
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		if exit.Signal() != "" {
			// Killed by a signal: report it as the shell would.
			return 128 + signalNumber(exit.Signal()), nil
		}
		return exit.ExitStatus(), nil
	}
	return -1, fmt.Errorf("%w: %v", ErrConnectionLost, err)
}

func signalNumber(name string) int {
	switch name {
	case "HUP":
		return 1
	case "INT":
		return 2
	case "KILL":
		return 9
	case "PIPE":
		return 13
	case "TERM":
		return 15
	}
	return 0
}

// Output runs cmd like [Exec] and returns its standard output, failing
// (with the tail of its stderr) unless it exits 0.
func Output(ctx context.Context, client *ssh.Client, cmd string, stdin io.Reader) ([]byte, error) {
	var out strings.Builder
	errBuf := &tail{max: 2048}
	code, err := Exec(ctx, client, cmd, stdin, &out, errBuf)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, &RemoteError{Command: cmd, Status: code, Stderr: errBuf.String()}
	}
	return []byte(out.String()), nil
}

// RemoteError is a remote command that exited with a non-zero status.
type RemoteError struct {
	Command string
	Status  int
	Stderr  string // its last lines
}

func (e *RemoteError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if e.Status == 127 {
		return fmt.Sprintf("%s: command not found", firstWord(e.Command))
	}
	if msg == "" {
		return fmt.Sprintf("%s exited with status %d", firstWord(e.Command), e.Status)
	}
	return fmt.Sprintf("%s exited with status %d: %s", firstWord(e.Command), e.Status, msg)
}

// Is makes a RemoteError that exited 127 (the shell found no such
// command) match [ErrRemoteCommandMissing].
func (e *RemoteError) Is(target error) bool {
	return target == ErrRemoteCommandMissing && e.Status == 127
}

func firstWord(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return cmd
	}
	if len(f) > 1 && !strings.HasPrefix(f[1], "-") {
		return strings.Trim(f[0]+" "+f[1], "'")
	}
	return strings.Trim(f[0], "'")
}

// tail keeps the last max bytes written to it.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.buf) }
