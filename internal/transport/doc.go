// Package transport does what Guix's offload hook does after `# accept`:
// over one SSH connection to the chosen build machine it sends the inputs
// the machine lacks, has it build the derivation, and brings the outputs
// back into the local store, verified against the local ACL.
//
// Start with [Run]. The caller (the hook) has already dialed the machine
// (package sshconn, host key pinned) and fills a [Build]; Run blocks until
// the outputs are in the store, the build failed, or ctx is done, and
// [ExitCode] maps its error to the hook's exit status as guix-daemon reads
// it: nil → 0, [ErrBuildFailed] → 100, [ErrTimeout] → 101, anything else
// (ours, the network, the remote lacking guix: [ErrRemoteCommandMissing],
// a refused signature) → 1.
//
// First, Run tries the machine's guix-daemon directly at its socket
// ([Build].RemoteDaemon, /var/guix/daemon-socket/socket), greeted with
// the store protocol (package worker), on the same SSH connection: over
// an exec channel running `guix-offload-agent relay` there ([Relay]),
// which a key allowed no forwarding may open, or, when the machine lacks
// the relay, a direct-streamlocal@openssh.com channel. Then each step is
// one operation on that channel and no guix process starts on either
// side: set the build options (max-silent-time and timeout exactly the
// master daemon's, 0 meaning none; no offloading from there); query
// which inputs are valid; import the missing ones, exported here and
// signed with the master's key ([Build].SigningKey) from what the local
// daemon ([Build].LocalDaemon) records about them (or signed by that
// daemon when the key cannot be read; `guix archive --export` when the
// daemon cannot be reached), the machine's daemon checking the
// signatures against its ACL; build, the log arriving as the daemon writes it and
// the outcome being the daemon's own status (101 timeout; 100, 102 or
// 104 permanent; anything else transient, exit 1); export the outputs
// signed by the machine's key, restored as in step 4 below. Run says
// "talking to guix-daemon on 'HOST' directly (store protocol 0x…, CHANNEL)"
// on Msg. When neither channel can be opened (no daemon listening, a
// login that may not use the socket, no relay and an sshd that forbids
// stream-local forwarding) or the daemon's protocol is older than
// [worker.MinVersion], Run says so in one line ("cannot talk to
// guix-daemon on 'HOST' directly: WHY; using guix commands there") and
// falls back to commands, before anything was done on the machine.
//
// What crosses the wire on that fallback, all as commands on the one SSH
// connection:
//
//  1. `guix archive --missing` with the input paths on stdin: which
//     inputs the machine lacks;
//  2. the local `guix archive --export` of exactly those (Guix exports
//     them in dependency order, signed with the master's key) streamed
//     into the remote `guix archive --import`, which checks the signature
//     against the machine's ACL;
//  3. `guix build --no-offload --verbosity=3 --max-silent-time=N
//     --timeout=N DRV`, its output (the whole build log at verbosity 3)
//     copied to the build-log writer as it arrives. `guix build`
//     exits 1 for every failure; the daemon's own lines about this
//     derivation, matched where they end a line (the daemon prints its
//     verdict right after the builder's last output, on the same line
//     when that lacks a newline) ("building of `DRV' timed out after N
//     seconds", "builder for `DRV' failed with exit code N", "hash
//     mismatch for store item 'OUT'"), tell a timeout and a failed build
//     from a transient failure: the last one wins, the builder's own log
//     never counts, and without one the failure is transient (exit 1;
//     100 would be cached as permanent). Exit statuses 100 and 101 are
//     honoured when no such line says otherwise. When the machine stays
//     silent past max-silent-time (or runs past the timeout) plus a
//     grace period, one keepalive request tells a silent build (it
//     answers: [ErrTimeout]) from a dead link (no answer within 3 s:
//     [ErrConnectionLost], exit 1);
//  4. `guix archive --export OUTPUTS`, read here with package nar: each
//     item is restored under a temporary name inside the store, its
//     signature and NAR hash checked against the local ACL, and only
//     when every expected output arrived intact are they renamed onto
//     their output paths. Otherwise nothing is left behind. After the
//     archive's end the remote command may write at most 64 KiB more
//     and must exit within 10 s, or the retrieval fails (exit 1).
//
// Every remote step has a bound, so that a machine whose login shell or
// guix hangs cannot hold the build slot: `command -v` and `guix archive
// --missing` get [Build].StepTimeout (1 minute by default); sending and
// retrieving give up when no byte has moved for [Build].Stall (10
// minutes by default) while the remote command runs; the build must
// print its first byte within Stall (or the master's limits plus Grace,
// when shorter), then keep to max-silent-time and the timeout plus
// Grace. A step cut by its bound returns [ErrUnresponsive] (exit 1, one
// line naming the step), by which the hook marks the machine down; only
// a build that started and then went silent or overran is a timeout
// (101).
//
// When the machine has guix-offload-agent (`command -v`), steps 2 and 4
// run `guix-offload-agent stream import|export` at the far end, so the
// archives cross the wire zstd-compressed ([Compress], [Decompress] and
// [StreamCommand] are that pipe's two ends). The local output locks stay
// with the daemon: we never run `guix archive --import` locally (it would
// wait for those locks forever, see DESIGN §2); the daemon registers the
// outputs after we exit 0. Temporary names left by a hook the daemon
// killed (it ends hooks with SIGKILL) are swept by the next retrieval.
//
// [Check] and [CheckAll] are `guix-offload test` and `status`: they
// connect to machines in parallel and report, step by step, whether each
// can be offloaded to, with a verdict ([WriteReports], [WriteStatus]).
// [Exec] and [Command] run quoted commands over the connection.
package transport
