// Package nar reads and writes Nix archives (NARs) and the export streams
// of 'guix archive --export', the format in which the offload hook moves
// store items between machines.
//
// Start with [NewExportReader]: [ExportReader.Next] restores each item's
// NAR safely into a directory while hashing it, and [Item.Verify] checks
// its signature against /etc/guix/acl. [Dump] writes a single NAR;
// [ExportWriter] produces export streams. Everything
// streams: no NAR is ever held in memory.
package nar
