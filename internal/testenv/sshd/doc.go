// Package sshd starts Debian's real OpenSSH sshd for tests, from a
// templated sshd_config in a temporary directory, with its own host key and
// a client key pair authorized to log in.
//
// Start with [Start]. By default sshd listens on 127.0.0.1 at a free port
// in this machine's own network namespace (loopback only); give
// [Options.Prefix] (for example "ip netns exec NS" or "unshare -m …") to
// run it inside a namespace, together with [Options.ListenAddress]. sshd's
// log is printed with t.Log when the test fails, and sshd is killed at
// cleanup, or when the test binary dies (its timeout) before cleanup can
// run. Remote commands never see the invoking user's dotfiles: sshd runs
// in a private mount namespace where the login user's home directory is
// an empty directory ([Options.Home]), so a slow root ~/.bashrc on the
// machine running the tests changes nothing. Without root or sshd the test is skipped (a failure under
// CI=true, see package testenv).
package sshd
