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
// its signatures) is kept in memory and under STATE/cache while the files
// it came from are unchanged.
package candidates
