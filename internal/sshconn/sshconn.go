package sshconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/boundedread"
	"github.com/guix-offload/guix-offload/scm"
)

// Sentinels for errors.Is on what [Dial] returns.
var (
	// ErrUnreachable: the connection was refused, there is no route, the
	// name does not resolve, or the peer closed the connection.
	ErrUnreachable = errors.New("machine unreachable")
	// ErrTimeout: no answer within the connect/handshake bound.
	ErrTimeout = errors.New("connection timed out")
	// ErrHostKeyMismatch: the server's host key is not the pinned one.
	ErrHostKeyMismatch = errors.New("host key mismatch")
	// ErrAuthRefused: the server refused our key.
	ErrAuthRefused = errors.New("authentication refused")
	// ErrBadKey: our private key or the pinned host key cannot be used
	// (unreadable, malformed, encrypted).
	ErrBadKey = errors.New("unusable key")
)

// Target is the machine to connect to.
type Target struct {
	Host string
	Port int // 0 means scm.DefaultPort, 22
	User string
	// PrivateKeyFile is an OpenSSH (or PEM) private key without passphrase:
	// Ed25519, RSA or ECDSA.
	PrivateKeyFile string
	// HostKey is the pinned host key as an OpenSSH public key line
	// ("ssh-ed25519 AAAA… [comment]"). It is required.
	HostKey string
}

// Addr is HOST:PORT.
func (t Target) Addr() string {
	port := t.Port
	if port == 0 {
		port = scm.DefaultPort
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}

// Options tune [Dial]. The zero value is usable.
type Options struct {
	// Timeout bounds connect plus handshake; 0 means 10 s. The context's
	// deadline, when earlier, wins.
	Timeout time.Duration
	// KeepAlive is the interval between keepalive requests; 0 means 15 s,
	// negative disables them. After KeepAliveMax unanswered intervals
	// (0 means 4) the connection is closed, so a vanished machine is
	// noticed during a silent build.
	KeepAlive    time.Duration
	KeepAliveMax int
	// DialContext replaces net.Dialer.DialContext (tests).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Error is what [Dial] returns: Kind is one of the sentinels, Err the cause.
type Error struct {
	Addr string
	Kind error
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("ssh %s: %v: %v", e.Addr, e.Kind, e.Err)
}

// Unwrap lets errors.Is match both the kind and the cause.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// ParseHostKey parses an OpenSSH public key line.
func ParseHostKey(line string) (ssh.PublicKey, error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return nil, errors.New("no host key given")
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("parse host key %q: %w", abbrev(line), err)
	}
	return k, nil
}

// LoadPrivateKey reads an unencrypted private key file into a signer.
func LoadPrivateKey(path string) (ssh.Signer, error) {
	if path == "" {
		return nil, errors.New("no private key file given")
	}
	data, err := boundedread.ReadFile(path, boundedread.Key)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, fmt.Errorf("private key %s is encrypted: the daemon cannot prompt for a passphrase; use a key without one", path)
		}
		return nil, fmt.Errorf("parse private key %s: %w", path, err)
	}
	return s, nil
}

// Fingerprint is the OpenSSH SHA256 fingerprint with the key type.
func Fingerprint(k ssh.PublicKey) string {
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}

// Dial connects to t and authenticates both ends. It blocks for at most
// the timeout (or until ctx is done) and returns a client whose keepalive
// goroutine ends when the client is closed.
func Dial(ctx context.Context, t Target, opts *Options) (*ssh.Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	addr := t.Addr()
	fail := func(kind, err error) error { return &Error{Addr: addr, Kind: kind, Err: err} }

	pinned, err := ParseHostKey(t.HostKey)
	if err != nil {
		return nil, fail(ErrBadKey, err)
	}
	signer, err := LoadPrivateKey(t.PrivateKeyFile)
	if err != nil {
		return nil, fail(ErrBadKey, err)
	}
	if t.User == "" {
		return nil, fail(ErrBadKey, errors.New("no user given"))
	}

	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var mismatch error
	cfg := &ssh.ClientConfig{
		User:              t.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyAlgorithms: hostKeyAlgorithms(pinned),
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if bytes.Equal(key.Marshal(), pinned.Marshal()) {
				return nil
			}
			mismatch = fmt.Errorf("server presented %s, expected %s", Fingerprint(key), Fingerprint(pinned))
			return mismatch
		},
		ClientVersion: "SSH-2.0-guix-offload",
	}

	dial := o.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fail(classifyDial(ctx, err), err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	// Close the connection when ctx ends during the handshake.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	interrupted := !stop()
	if err != nil {
		conn.Close()
		switch {
		case mismatch != nil:
			return nil, fail(ErrHostKeyMismatch, mismatch)
		case interrupted || isTimeout(err) || ctx.Err() != nil:
			if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fail(ErrTimeout, ctx.Err())
			}
			return nil, fail(ErrTimeout, fmt.Errorf("no SSH handshake within %v", timeout))
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fail(ErrAuthRefused, fmt.Errorf("%s@%s refused key %s (%s)", t.User, t.Host, t.PrivateKeyFile, ssh.FingerprintSHA256(signer.PublicKey())))
		case strings.Contains(err.Error(), "no common algorithm for host key"):
			return nil, fail(ErrHostKeyMismatch, fmt.Errorf("server has no %s host key (pinned %s): %w", pinned.Type(), Fingerprint(pinned), err))
		case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
			return nil, fail(ErrUnreachable, fmt.Errorf("connection closed during handshake: %w", err))
		default:
			return nil, fail(ErrUnreachable, err)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	client := ssh.NewClient(c, chans, reqs)
	if o.KeepAlive >= 0 {
		interval := o.KeepAlive
		if interval == 0 {
			interval = 15 * time.Second
		}
		max := o.KeepAliveMax
		if max <= 0 {
			max = 4
		}
		go keepAlive(client, interval, max)
	}
	return client, nil
}

// keepAlive sends keepalive requests until the client is closed, and
// closes it when the server stops answering.
func keepAlive(c *ssh.Client, interval time.Duration, max int) {
	done := make(chan struct{})
	go func() {
		_ = c.Wait()
		close(done)
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		res := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			res <- err
		}()
		timer := time.NewTimer(interval * time.Duration(max))
		select {
		case err := <-res:
			timer.Stop()
			if err != nil {
				c.Close()
				return
			}
		case <-timer.C:
			c.Close()
			return
		case <-done:
			timer.Stop()
			return
		}
	}
}

func hostKeyAlgorithms(k ssh.PublicKey) []string {
	switch k.Type() {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	default:
		return []string{k.Type()}
	}
}

func classifyDial(ctx context.Context, err error) error {
	if ctx.Err() != nil || isTimeout(err) {
		return ErrTimeout
	}
	return ErrUnreachable
}

func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
