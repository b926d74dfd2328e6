package pairing

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Version is the protocol version both sides must speak.
const Version = 1

// maxMessage bounds one protocol message: an identity holds two public
// keys (an RSA-4096 Guix key is about 1.5 KiB in advanced form).
const maxMessage = 32 << 10

// nonceSize is the size of each side's fresh nonce.
const nonceSize = 32

// Errors callers branch on, each wrapped with details.
var (
	// ErrRefused: this side's operator refused, or typed a --code other
	// than the one computed here.
	ErrRefused = errors.New("pairing refused here")
	// ErrPeerRefused: the other side refused (or its --code differed).
	ErrPeerRefused = errors.New("pairing refused by the other side")
	// ErrTampered: the exchange was altered on the way (a revealed
	// identity that does not match its commitment, a malformed message).
	ErrTampered = errors.New("pairing exchange was altered or malformed")
	// ErrApply: a side could not make its changes; both sides undid
	// theirs.
	ErrApply = errors.New("pairing changes failed")
)

// Code is the six-digit short authentication string both operators
// compare.
type Code string

// String returns the code as printed: "DDD DDD".
func (c Code) String() string {
	if len(c) != 6 {
		return string(c)
	}
	return string(c[:3]) + " " + string(c[3:])
}

// Matches reports whether s, as typed by an operator ("123456" or
// "123 456"), is this code.
func (c Code) Matches(s string) bool {
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	return len(s) == 6 && subtle.ConstantTimeCompare([]byte(s), []byte(c)) == 1
}

// Undo reverts what an [Options].Apply call changed.
type Undo func() error

// Options are one side's part in a pairing.
type Options struct {
	// Self is what this side shows of itself.
	Self Identity
	// Rand makes the nonce; nil means crypto/rand.
	Rand io.Reader
	// Check, when set, vets the peer's identity before a code is shown
	// (the master checks it is the machine the operator picked).
	Check func(peer *Identity) error
	// Confirm shows the code and the peer and returns the operator's
	// decision. It must return when ctx is done. A false answer or an
	// error refuses.
	Confirm func(ctx context.Context, code Code, peer *Identity) (bool, error)
	// Apply makes this side's changes for peer, once both sides have
	// accepted, and returns how to undo them.
	Apply func(ctx context.Context, peer *Identity) (Undo, error)
}

// Result is a completed pairing.
type Result struct {
	Code Code
	Peer *Identity
}

// message is one line of the protocol, JSON-encoded.
type message struct {
	Type     string `json:"type"`
	Version  int    `json:"version,omitempty"`
	Commit   string `json:"commit,omitempty"`
	Identity string `json:"identity,omitempty"` // the exact JSON bytes hashed
	Nonce    string `json:"nonce,omitempty"`
	Accept   bool   `json:"accept,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Message types, in protocol order.
const (
	msgCommit  = "commit"  // master → machine: H(identity, nonce)
	msgHello   = "hello"   // machine → master: identity, nonce
	msgReveal  = "reveal"  // master → machine: identity, nonce
	msgConfirm = "confirm" // both: the operator's decision
	msgApplied = "applied" // machine → master: its changes are made
	msgDone    = "done"    // master → machine: its changes are made too
	msgAbort   = "abort"   // either: changes failed; undo
)

type conn struct {
	r *bufio.Reader
	w io.Writer
}

func newConn(rw io.ReadWriter) *conn {
	return &conn{r: bufio.NewReaderSize(rw, 4096), w: rw}
}

func (c *conn) send(m message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := c.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send %s: %w", m.Type, err)
	}
	return nil
}

// recv reads one message and checks its type is want.
func (c *conn) recv(want string) (message, error) {
	var line []byte
	for {
		chunk, isPrefix, err := c.r.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return message{}, fmt.Errorf("read %s: the other side closed the connection: %w", want, io.ErrUnexpectedEOF)
			}
			return message{}, fmt.Errorf("read %s: %w", want, err)
		}
		line = append(line, chunk...)
		if len(line) > maxMessage {
			return message{}, fmt.Errorf("read %s: message longer than %d bytes: %w", want, maxMessage, ErrTampered)
		}
		if !isPrefix {
			break
		}
	}
	var m message
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return message{}, fmt.Errorf("read %s: %v: %w", want, err, ErrTampered)
	}
	if m.Type == msgAbort {
		return m, fmt.Errorf("read %s: the other side gave up: %s: %w", want, printable(m.Error), ErrApply)
	}
	if m.Type != want {
		return message{}, fmt.Errorf("read %s: got %q: %w", want, printable(m.Type), ErrTampered)
	}
	return m, nil
}

func nonce(r io.Reader) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	n := make([]byte, nonceSize)
	if _, err := io.ReadFull(r, n); err != nil {
		return nil, fmt.Errorf("make nonce: %w", err)
	}
	return n, nil
}

// frame appends b to h with its length, so no two field sequences hash
// the same.
func frame(h io.Writer, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// Commitment is what the master sends first: SHA-256 over a label, its
// identity's exact bytes and its nonce.
func Commitment(identity, nonce []byte) [32]byte {
	h := sha256.New()
	frame(h, []byte("guix-offload pairing commitment v1"))
	frame(h, identity)
	frame(h, nonce)
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// DeriveCode is the code both sides show: SHA-256 over a label, both
// identities' exact bytes and both nonces, the first 8 bytes as a
// big-endian integer modulo one million. Any change to a key, a name or
// a nonce changes it.
func DeriveCode(master, machine, masterNonce, machineNonce []byte) Code {
	h := sha256.New()
	frame(h, []byte("guix-offload pairing code v1"))
	frame(h, master)
	frame(h, machine)
	frame(h, masterNonce)
	frame(h, machineNonce)
	sum := h.Sum(nil)
	return Code(fmt.Sprintf("%06d", binary.BigEndian.Uint64(sum[:8])%1_000_000))
}

func decodeNonce(s, what string) ([]byte, error) {
	n, err := hex.DecodeString(s)
	if err != nil || len(n) != nonceSize {
		return nil, fmt.Errorf("%s nonce is not %d hex-encoded bytes: %w", what, nonceSize, ErrTampered)
	}
	return n, nil
}

// closeOnDone closes c when ctx is done, so blocked reads return.
func closeOnDone(ctx context.Context, c io.Closer) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.Close() })
}

// ctxErr prefers the context's error (a timeout, a cancellation) to the
// closed-connection error it caused.
func ctxErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if c := context.Cause(ctx); c != nil {
		if errors.Is(c, context.DeadlineExceeded) {
			return fmt.Errorf("pairing window ended: %w", c)
		}
		return c
	}
	return err
}

// Initiate runs the master's side over rw, which it closes when it
// returns or ctx is done. It returns the result once both sides have applied their changes;
// on any error nothing is left changed here, and the machine is told to
// undo its changes.
func Initiate(ctx context.Context, rw io.ReadWriteCloser, o Options) (*Result, error) {
	stop := closeOnDone(ctx, rw)
	defer stop()
	defer rw.Close()
	r, err := initiate(ctx, newConn(rw), o)
	return r, ctxErr(ctx, err)
}

func initiate(ctx context.Context, c *conn, o Options) (*Result, error) {
	if o.Self.Role != RoleMaster {
		return nil, fmt.Errorf("initiate: identity role is %q, want %q", o.Self.Role, RoleMaster)
	}
	self, err := o.Self.encode()
	if err != nil {
		return nil, err
	}
	n, err := nonce(o.Rand)
	if err != nil {
		return nil, err
	}
	commit := Commitment(self, n)
	if err := c.send(message{Type: msgCommit, Version: Version, Commit: hex.EncodeToString(commit[:])}); err != nil {
		return nil, err
	}
	hello, err := c.recv(msgHello)
	if err != nil {
		return nil, err
	}
	if hello.Version != Version {
		return nil, fmt.Errorf("the machine speaks pairing protocol version %d, not %d: %w", hello.Version, Version, ErrTampered)
	}
	peer, err := decodeIdentity([]byte(hello.Identity), RoleMachine)
	if err != nil {
		return nil, err
	}
	pn, err := decodeNonce(hello.Nonce, "the machine's")
	if err != nil {
		return nil, err
	}
	if o.Check != nil {
		if err := o.Check(peer); err != nil {
			return nil, err
		}
	}
	if err := c.send(message{Type: msgReveal, Identity: string(self), Nonce: hex.EncodeToString(n)}); err != nil {
		return nil, err
	}
	code := DeriveCode(self, []byte(hello.Identity), n, pn)
	if err := confirm(ctx, c, o, code, peer); err != nil {
		return nil, err
	}
	if _, err := c.recv(msgApplied); err != nil {
		return nil, err
	}
	undo, err := o.Apply(ctx, peer)
	if err != nil {
		_ = c.send(message{Type: msgAbort, Error: err.Error()})
		return nil, fmt.Errorf("%w: %w", ErrApply, err)
	}
	if err := c.send(message{Type: msgDone}); err != nil {
		return nil, errors.Join(err, undo())
	}
	return &Result{Code: code, Peer: peer}, nil
}

// Respond runs the build machine's side over rw, which it closes when it
// returns or ctx is done (the pairing window's end). It returns once both sides have
// applied their changes; on any error nothing is left changed here.
func Respond(ctx context.Context, rw io.ReadWriteCloser, o Options) (*Result, error) {
	stop := closeOnDone(ctx, rw)
	defer stop()
	defer rw.Close()
	r, err := respond(ctx, newConn(rw), o)
	return r, ctxErr(ctx, err)
}

func respond(ctx context.Context, c *conn, o Options) (*Result, error) {
	if o.Self.Role != RoleMachine {
		return nil, fmt.Errorf("respond: identity role is %q, want %q", o.Self.Role, RoleMachine)
	}
	self, err := o.Self.encode()
	if err != nil {
		return nil, err
	}
	commitMsg, err := c.recv(msgCommit)
	if err != nil {
		return nil, err
	}
	if commitMsg.Version != Version {
		return nil, fmt.Errorf("the master speaks pairing protocol version %d, not %d: %w", commitMsg.Version, Version, ErrTampered)
	}
	commit, err := hex.DecodeString(commitMsg.Commit)
	if err != nil || len(commit) != sha256.Size {
		return nil, fmt.Errorf("the master's commitment is not a hex SHA-256: %w", ErrTampered)
	}
	n, err := nonce(o.Rand)
	if err != nil {
		return nil, err
	}
	if err := c.send(message{Type: msgHello, Version: Version, Identity: string(self), Nonce: hex.EncodeToString(n)}); err != nil {
		return nil, err
	}
	reveal, err := c.recv(msgReveal)
	if err != nil {
		return nil, err
	}
	pn, err := decodeNonce(reveal.Nonce, "the master's")
	if err != nil {
		return nil, err
	}
	if got := Commitment([]byte(reveal.Identity), pn); subtle.ConstantTimeCompare(got[:], commit) != 1 {
		return nil, fmt.Errorf("the master's identity does not match what it committed to: %w", ErrTampered)
	}
	peer, err := decodeIdentity([]byte(reveal.Identity), RoleMaster)
	if err != nil {
		return nil, err
	}
	if o.Check != nil {
		if err := o.Check(peer); err != nil {
			return nil, err
		}
	}
	code := DeriveCode([]byte(reveal.Identity), self, pn, n)
	if err := confirm(ctx, c, o, code, peer); err != nil {
		return nil, err
	}
	undo, err := o.Apply(ctx, peer)
	if err != nil {
		_ = c.send(message{Type: msgAbort, Error: err.Error()})
		return nil, fmt.Errorf("%w: %w", ErrApply, err)
	}
	if err := c.send(message{Type: msgApplied}); err != nil {
		return nil, errors.Join(err, undo())
	}
	if _, err := c.recv(msgDone); err != nil {
		return nil, errors.Join(err, undo())
	}
	return &Result{Code: code, Peer: peer}, nil
}

// confirm asks this side's operator while listening for the peer's
// decision: a refusal on either side ends the pairing at once.
func confirm(ctx context.Context, c *conn, o Options, code Code, peer *Identity) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		ok  bool
		err error
	}
	local := make(chan answer, 1)
	remote := make(chan answer, 1)
	go func() {
		ok, err := o.Confirm(ctx, code, peer)
		local <- answer{ok, err}
	}()
	go func() {
		m, err := c.recv(msgConfirm)
		remote <- answer{m.Accept, err}
	}()
	var mine, theirs *answer
	for mine == nil || theirs == nil {
		select {
		case a := <-local:
			mine = &a
			if err := c.send(message{Type: msgConfirm, Accept: a.ok && a.err == nil}); err != nil && a.ok && a.err == nil {
				// The peer may have refused and hung up first: say so
				// rather than report the broken connection.
				cancel()
				if theirs == nil {
					if r := <-remote; r.err == nil && !r.ok {
						return ErrPeerRefused
					}
				}
				return err
			}
			if a.err != nil {
				cancel()
				return fmt.Errorf("%w: %w", ErrRefused, a.err)
			}
			if !a.ok {
				cancel()
				return ErrRefused
			}
		case a := <-remote:
			theirs = &a
			if a.err != nil || !a.ok {
				cancel()
				if mine == nil {
					<-local
				}
				if a.err != nil {
					return a.err
				}
				return ErrPeerRefused
			}
		}
	}
	return nil
}

// printable cuts s to one short line of printable characters, for
// messages that came from the network.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 200 {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
