package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// Relay is the build machine's end of the master's connection to its
// guix-daemon, run as `guix-offload-agent relay --socket SOCKET` on an
// SSH exec channel: it connects to the Unix socket SOCKET and copies
// stdin to the socket and the socket to stdout until either side ends,
// then closes both. So the master reaches the daemon with a key that may
// forward nothing (authorized_keys "restrict"), where a
// direct-streamlocal@openssh.com channel needs port forwarding allowed.
//
// An end of either stream, or ctx's end, is a clean end (nil). Failing to
// reach the socket is an error naming it; it also comes when the daemon
// or the stream breaks off with an error.
func Relay(ctx context.Context, socket string, stdin io.Reader, stdout io.Writer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot connect to guix-daemon's socket %s (is guix-daemon running, and may this login use the socket?): %w", socket, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	up, down := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := io.Copy(c, stdin)
		up <- relayErr("master to daemon", err)
	}()
	go func() {
		_, err := io.Copy(stdout, c)
		down <- relayErr("daemon to master", err)
	}()
	// Either side's end ends the relay: closing the socket makes the
	// daemon drop this client (and stop a build it runs for it), and
	// returning lets the process exit, which closes the SSH channel. The
	// copy from stdin may stay blocked on a read until then; it holds
	// nothing but the closed socket.
	select {
	case err = <-up:
		c.Close()
		err = errors.Join(err, <-down)
	case err = <-down:
		c.Close()
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// relayErr is nil for the ends of a relayed stream that are no fault: an
// end of file, a closed connection, a reader gone (EPIPE).
func relayErr(what string, err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, os.ErrClosed) {
		return nil
	}
	return fmt.Errorf("relay %s: %w", what, err)
}
