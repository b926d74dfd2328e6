// Package worker speaks guix-daemon's store protocol (the "worker
// protocol" Guix inherited from Nix) as a client, so that the offload
// hook can query, import, build and export with single operations on the
// daemon's socket (/var/guix/daemon-socket/socket) instead of starting
// `guix` for each step.
//
// Start with [Handshake] on a connection to the socket (locally a Unix
// socket; on a build machine an SSH exec channel running
// `guix-offload-agent relay`, or a `direct-streamlocal@openssh.com` SSH
// channel), then call [Conn.SetOptions] and the operations. Each
// operation writes its request, then reads the daemon's "stderr" frames
// until the last one ([Conn] copies log frames to [Conn.Log]), then its
// reply. A failure the daemon reports is an [*Error] carrying the
// daemon's message and exit status (100 permanent build failure, 101
// timeout, 1 otherwise).
//
// Where each message is defined in Guix's sources (a record of facts, to
// check against when Guix changes; no code was taken from them):
//
//   - nix/libstore/worker-protocol.hh: WORKER_MAGIC_1 0x6e697863 and
//     WORKER_MAGIC_2 0x6478696f, PROTOCOL_VERSION 0x161 (major in the high
//     byte, minor in the low one), the operation numbers (wopIsValidPath
//     1, wopQueryReferences 5, wopAddTextToStore 8, wopBuildPaths 9,
//     wopAddTempRoot 11, wopExportPath 16, wopSetOptions 19,
//     wopQueryPathInfo 26, wopImportPaths 27, wopQueryValidPaths 31)
//     and the frame tags STDERR_NEXT 0x6f6c6d67 (a log string), STDERR_READ 0x64617461 (the
//     daemon wants up to N bytes of the client's data), STDERR_WRITE
//     0x64617416 (data for the client's sink), STDERR_LAST 0x616c7473
//     (done) and STDERR_ERROR 0x63787470 (a message, then a status).
//   - nix/nix-daemon/nix-daemon.cc: processConnection (the greeting:
//     client magic; daemon magic and version; client version; CPU
//     affinity flag when the client's minor ≥ 14; reserve-space flag when
//     ≥ 11; then the frames of opening the store), stopWork (STDERR_LAST,
//     or STDERR_ERROR with message and status), TunnelSink/TunnelSource
//     (STDERR_WRITE and STDERR_READ), and performOp: what each operation
//     reads and writes. wopSetOptions: keep-failed, keep-going, fallback,
//     verbosity, use-build-hook (minor ≥ 2), build-verbosity, log-type,
//     print-build-trace (≥ 4), use-substitutes (≥ 10), then name/value
//     pairs (≥ 12) in which build-max-silent-time and build-timeout are
//     taken from any client; since minor 0x61 max-jobs, max-silent-time
//     and cores are no longer fields. An unknown operation is "invalid
//     operation N" and closes the connection. wopQueryPathInfo answers
//     the deriver, the NAR hash (printHash: base 16), the references,
//     the registration time and the NAR size.
//   - nix/libstore/build.cc: Worker::exitStatus, the status of a failed
//     wopBuildPaths: 101 when a build timed out, 100 when one failed
//     permanently, 1 otherwise (e.g. a failure the daemon blames on a
//     full disk).
//   - nix/libstore/local-store.cc: exportPath writes one item (the NAR,
//     0x4558494e, path, references, deriver, then 1 and the signature or
//     0), refusing a path whose NAR no longer has the recorded hash; the
//     leading 1 and the final 0 of an export stream are the client's
//     (guix/store.scm export-paths). importPaths reads a whole stream and
//     refuses an item not signed by a key of /etc/guix/acl. The daemon
//     signs and checks signatures through its `guix authenticate`
//     helper (a Guile process its worker starts when first needed).
//   - guix/store.scm: the Guile client (open-connection, process-stderr,
//     set-build-options, export-paths, import-paths, build-things,
//     add-text-to-store), which this package follows in what it sends.
//
// One request at a time: the daemon reads a request, then, while it works,
// takes any byte from the client as a protocol error (nix-daemon.cc's
// startWork checks that the socket has nothing to read, and SIGPOLL ends
// the work when something arrives). So [Conn] never pipelines requests and
// sends data only when asked (STDERR_READ).
//
// Everything read from the daemon is bounded (strings, lists, frames), so
// a hostile build machine cannot make the hook allocate without limit.
package worker
