// Package agent is what runs on a Guix build machine: it works out what
// the machine offers and advertises it on the LAN as a DNS-SD service of
// type _guix-offload._tcp over multicast DNS, keeping the announcement
// current (load, free store space, signature time) until it says goodbye.
//
// Start with [Run], which blocks until its context is done. Its
// configuration is a [Config]: [DefaultConfig], then [LoadConfig] for the
// TOML file (keys named as machines.scm fields), then command-line flags;
// what is left unset is found by a [Detector] (systems from uname and
// binfmt_misc, the kvm feature, guix-daemon's --max-jobs, the SSH port and
// host key, load and free disk).
package agent
