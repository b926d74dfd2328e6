// Package hook is guix-daemon's offload hook: it speaks the daemon's
// protocol (DESIGN §2), matches and ranks the machines it may use, takes
// a build slot with Guix's own lock files, opens the SSH connection
// before accepting, and hands the accepted build to package transport.
// Which machines it considers (machines.scm merged with the trusted
// discovered machines) is package internal/candidates' to say.
//
// Start with [Main] (what `guix-offload hook` and the `guix offload` shim
// run) or [Serve], which takes every dependency in [Options] so the
// protocol can be spoken over in-memory pipes. The decision itself is
// [Decide] and [Plan.Final]: pure functions over scm.Machine values, with
// no network. Slots are [AcquireSlot]; shared memory between hook
// processes (machines found down, first postponement) is [State];
// configuration is [Config], read by [LoadConfig] from
// [DefaultConfigFile] or $GUIX_OFFLOAD_CONFIG.
package hook
