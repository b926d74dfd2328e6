// Package e2e offloads builds for real between network namespaces: a
// master and two build machines on 169.254.0.0/16 (internal/testenv/netns),
// each machine running Debian's OpenSSH sshd (internal/testenv/sshd) in a
// private mount namespace where /gnu/store is its own temporary store,
// Guix's command line played by the stand-in (test/standin) with its own
// libgcrypt-made signing key and ACL, and guix-daemon's side of the hook
// protocol played by the driver (internal/testenv/daemon) running
// `guix offload …` through the guix-offload shim in the master's mount
// namespace. The machines come from a machines.scm or, in
// TestOffloadDiscovered, from the LAN: each runs guix-offload-agent and the
// master `guix-offload discover --watch --cache`. The tests need root, iproute2, util-linux, openssh-server and
// guile-gcrypt; without them they skip (and fail under CI=true).
package e2e
