package hook_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guix-offload/guix-offload/hook"
	"github.com/guix-offload/guix-offload/internal/transport"
)

// The test binary doubles as the hook the daemon driver starts (like the
// real `guix-offload hook`, but with a fake transport when asked), and as
// a process that holds a POSIX record lock the way Guix's hook does.
const (
	modeEnv      = "GUIX_OFFLOAD_HOOK_TEST_MODE"
	transportEnv = "GUIX_OFFLOAD_HOOK_TEST_TRANSPORT"
)

func TestMain(m *testing.M) {
	switch os.Getenv(modeEnv) {
	case "hook":
		os.Exit(runHook())
	case "posixlock":
		os.Exit(holdPOSIXLock(os.Args[1]))
	}
	os.Exit(m.Run())
}

// runHook is main() of the hook under test: argv is PROG offload ARGS….
func runHook() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 || os.Args[1] != "offload" {
		fmt.Fprintln(os.Stderr, "test hook: want 'offload' as first argument")
		return 2
	}
	log := os.NewFile(4, "build-log")
	o := &hook.Options{Stdin: os.Stdin, Out: os.Stdout, BuildLog: log, Env: os.Getenv}
	if spec := os.Getenv(transportEnv); spec != "" {
		o.Transport = fakeTransport(spec)
	}
	return hook.Serve(ctx, os.Args[2:], o)
}

// fakeTransport plays the transport after accept:
//   - "ok": write a log line and the outputs, succeed;
//   - "hold:DIR": write DIR/held.PID, wait (at most a minute) for
//     DIR/release, then succeed;
//   - "exit:N": fail so that the exit status is N (100, 101 or other);
//     "exit:127", "exit:refused", "exit:lost", "exit:unresponsive" fail
//     as an unusable machine
//     does, "exit:local" as a problem on the master does.
func fakeTransport(spec string) func(context.Context, *transport.Build) error {
	return func(ctx context.Context, b *transport.Build) error {
		if b.PrintBuildTrace {
			fmt.Fprintf(b.Msg, "@ build-remote %s %s\n", b.Drv, b.Host)
		}
		fmt.Fprintf(b.Log, "building %s on %s\n", b.Drv, b.Host)
		kind, arg, _ := strings.Cut(spec, ":")
		switch kind {
		case "hold":
			mine := filepath.Join(arg, "held."+strconv.Itoa(os.Getpid()))
			if err := os.WriteFile(mine, []byte(b.Host), 0o644); err != nil {
				return err
			}
			deadline := time.Now().Add(time.Minute)
			for time.Now().Before(deadline) {
				if _, err := os.Stat(filepath.Join(arg, "release")); err == nil {
					break
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
			}
		case "exit":
			switch arg {
			case "100":
				return fmt.Errorf("remote: %w", transport.ErrBuildFailed)
			case "101":
				return fmt.Errorf("remote: %w", transport.ErrTimeout)
			case "127":
				return fmt.Errorf("offload to '%s': ask which inputs are missing: %w", b.Host,
					&transport.RemoteError{Command: "guix archive --missing", Status: 127})
			case "refused":
				return fmt.Errorf("offload to '%s': send inputs: %w", b.Host, &transport.RemoteError{Command: "guix archive --import",
					Status: 1, Stderr: "guix archive: error: unauthorized public key: (public-key …)"})
			case "lost":
				return fmt.Errorf("offload to '%s': build %s: %w: EOF", b.Host, b.Drv, transport.ErrConnectionLost)
			case "unresponsive":
				return fmt.Errorf("offload to '%s': ask which inputs are missing: %w (no answer within 1m0s)", b.Host, transport.ErrUnresponsive)
			case "local":
				return fmt.Errorf("offload to '%s': export inputs locally: guix archive --export: exit status 1: no such path", b.Host)
			}
			return errors.New("connection lost (fake)")
		}
		for _, o := range b.Outputs {
			if err := os.WriteFile(o, []byte("output of "+b.Drv), 0o444); err != nil {
				return err
			}
		}
		return nil
	}
}

// holdPOSIXLock takes a classic fcntl(F_SETLK) write lock on path, as
// Guix's hook does, says "locked" and sleeps until killed.
func holdPOSIXLock(path string) int {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	return 0
}
