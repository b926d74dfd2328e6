// Package sshconn opens the one SSH connection the offload hook makes to a
// build machine: host key pinned, key from an OpenSSH private key file,
// bounded connect and handshake, failures classified so the hook can say
// what went wrong, and keepalives for long builds.
//
// Start with [Dial]; branch on its errors with errors.Is and the sentinels
// [ErrUnreachable], [ErrTimeout], [ErrHostKeyMismatch], [ErrAuthRefused]
// and [ErrBadKey].
package sshconn
