// Package standintest sets up hosts that run the Guix stand-in
// (test/standin) for tests: a store directory seen at the same path by
// every host but backed by a directory of each host's own (a bind mount in
// a private mount namespace), Guix signing keys made by real libgcrypt
// (guile-gcrypt), an ACL, and a `guix` wrapper that points the stand-in
// at all of it. Start with [NewHost]. It is test code, never shipped.
package standintest
