// Command standin plays Guix's command line (`guix`) on the hosts of the
// end-to-end tests, where Guix itself cannot be installed. It is a
// stand-in for tests only and is never shipped. REAL-GUIX.md lists the
// real Guix behaviours it imitates and where in Guix's sources each
// comes from.
//
// It keeps what the offload transport depends on real: the NAR and
// `guix archive --export` formats, Guix signature S-expressions made and
// checked with the host's keys and ACL, the daemon's refusal to import
// from an unauthorized signer, `Derive(…)` derivation files built by
// running their builder, the daemon's messages, and `guix build`'s exit
// status (1 for every failure, the daemon's message on stderr). It
// understands:
//
//	guix --version
//	guix archive --missing             (store paths on stdin; prints those not in the store)
//	guix archive --export [-r] PATH…   (signed export stream on stdout, dependencies first)
//	guix archive --import              (export stream on stdin; all-or-nothing)
//	guix build [--max-silent-time=N] [--timeout=N] [--no-offload] DRV…
//	guix build -e '(plain-file "NAME" "CONTENT")'   (adds the item, then crashes printing it, as real Guix)
//	guix repl -t machine               (evaluates add-text-to-store only; see repl.go)
//	guix daemon [--listen=SOCKET] [--protocol-version=V]   (guix-daemon's store protocol; see cmdDaemon)
//
// Where things are comes from the environment, with Guix's paths as
// defaults: GUIX_STANDIN_STORE (/gnu/store), GUIX_STANDIN_STATE (its
// references database, /var/guix/standin), GUIX_STANDIN_SIGNING_KEY
// (/etc/guix/signing-key.sec), GUIX_STANDIN_ACL (/etc/guix/acl) and
// GUIX_STANDIN_SYSTEMS (comma-separated; this machine's system). The
// daemon's own limits, applied to a `guix build` that does not set them,
// are GUIX_STANDIN_DAEMON_TIMEOUT and GUIX_STANDIN_DAEMON_MAX_SILENT_TIME
// (seconds; guix-daemon's --timeout and --max-silent-time, 0 when unset).
// For
// fault-injection tests, GUIX_STANDIN_TAMPER=FROM=TO replaces the first
// FROM with TO (same length) in each exported NAR after it was signed.
// For benchmarks, GUIX_STANDIN_STARTUP=DURATION (e.g. 500ms) makes every
// command but `guix daemon` wait that long first, as a real `guix` spends
// starting Guile; `guix archive --export` and `--import` wait that long
// twice, and the stand-in daemon once per connection before its first
// signature or signature check, as guix-daemon starts its `guix
// authenticate` helper (a Guile process) in each connection's worker when
// it first needs it.
package main
