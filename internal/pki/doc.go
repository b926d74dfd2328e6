// Package pki reads and writes Guix's signing keys, its ACL
// (/etc/guix/acl) and its archive signatures, byte-compatible with Guix and
// libgcrypt.
//
// Start with [ReadACL] and [Verify] to check a signature the way
// guix-daemon does before importing an archive, and with [ReadPrivateKey]
// and [PrivateKey.Sign] to sign like 'guix authenticate'. Keys and
// signatures are libgcrypt S-expressions, read with [scm.ReadGcrypt] in any
// of libgcrypt's syntaxes and written in its advanced form.
//
// Guix's default keys ('guix archive --generate-key') are ECDSA keys on the
// Ed25519 curve, not EdDSA keys: crypto/ed25519 cannot check their
// signatures, so this package implements that ECDSA itself (with
// libgcrypt's RFC 6979 nonces, so signatures equal libgcrypt's). Keys with
// (flags eddsa) use Ed25519 proper; RSA keys from older installations can
// be verified but not used to sign.
//
// [PublicKey.Compact], [ParseCompactPublicKey], [PrivateKey.SignRaw] and
// [PublicKey.VerifyRaw] are the short forms for DNS-SD announcements.
package pki
