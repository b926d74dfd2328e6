// Package testenv tells tests what this machine offers (root, network
// namespaces, real peers such as guile, sshd and avahi-daemon) and skips
// or fails them accordingly. Under CI=true a missing real peer is a
// failure, never a quiet skip.
package testenv
