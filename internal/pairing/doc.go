// Package pairing replaces the manual exchange of keys and accounts
// between a master and a build machine with one command on each side and
// the comparison of a six-digit code.
//
// Start with [Initiate] (the master, `guix-offload pair`) and [Respond]
// (the build machine, `guix-offload-agent pair`): both speak the
// protocol over any stream (a TCP connection, or in-memory pipes in
// tests), show the same [Code] when nobody sits in the middle, ask their
// operator through [Options].Confirm, and only once both sides have
// accepted call [Options].Apply with the peer's [Identity] — the keys
// that went into the code, and nothing else.
//
// The protocol is a commitment before a reveal, as in Bluetooth's numeric
// comparison and ZRTP: the master commits to its identity and a fresh
// nonce, the machine answers with its identity and nonce, the master
// reveals. The code hashes both identities and both nonces, so a relay
// that substitutes its own keys must fix one side's code before it learns
// what the other side's will be: it gets one guess in a million, and one
// attempt per pairing window. docs/ARCHITECTURE.md has the threat model.
//
// The file changes pairing makes live here too: [Machine] (the build
// machine's ACL, login and authorized_keys) and [Master] (the master's
// ACL and SSH key), each recorded so that `pair --remove` undoes exactly
// what was added.
package pairing
