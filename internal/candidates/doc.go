// Package candidates says which build machines the offload hook
// considers: the static ones of machines.scm, evaluated by the
// configured evaluator (built-in or Guile), and the discovered ones of
// the discovery snapshot (or of a bounded live browse), judged by the
// hook's own trust policy, merged so that a static entry wins over an
// announcement of the same machine.
//
// The hook, `guix-offload test` and `guix-offload status` all load
// machines through [Considered] or a [Loader], so they cannot disagree.
// What is costly to read (an evaluation of machines.scm, a snapshot and
// its signatures) is remembered in memory and kept under STATE/cache while
// the files it came from are unchanged.
//
// Words: the snapshot is the file `guix-offload discover --watch` keeps
// (hook.toml's key and the command's flag are both called "cache", and
// keep that name for compatibility; [Options.Snapshot] in code); a
// reading is what was read from machines.scm or a snapshot, remembered
// while the file is unchanged; the kept directory is STATE/cache, where a
// hook process keeps readings, failures, judgments and its own browse for
// the next. In code "cache" means only the mDNS record cache of package
// discovery.
package candidates
