// Package hook is guix-daemon's offload hook: it speaks the daemon's
// protocol (DESIGN §2), merges the static machines.scm with discovered
// machines, matches and ranks them, takes a build slot with Guix's own
// lock files, opens the SSH connection before accepting, and hands the
// accepted build to package transport.
//
// Start with [Main] (what `guix-offload hook` and the `guix offload` shim
// run) or [Serve], which takes every dependency in [Options] so the
// protocol can be spoken over in-memory pipes. The decision itself is
// [Decide] and [Plan.Final]: pure functions over [Machine] values, with no
// network. Slots are [AcquireSlot]; shared memory between hook processes
// (machines found down, first postponement) is [State]; configuration is
// [Config], read by [LoadConfig] from [DefaultConfigFile] or
// $GUIX_OFFLOAD_CONFIG.
package hook
