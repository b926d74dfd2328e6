// Package scm reads S-expressions the way Guile and libgcrypt write them,
// evaluates Guix's /etc/guix/machines.scm, and writes it back.
//
// Start with [LoadMachines] for the static build machines of a Guix master
// (a missing file means none, as in Guix), [Read] for Guile data and
// [ReadGcrypt] for libgcrypt's keys, ACLs and signatures. Every datum
// knows where it came from ([Pos]: file, line and column, all 1-based), and
// every error about the input is an [*Error] that starts with
// FILE:LINE:COLUMN.
//
// The built-in evaluator understands the subset of Guile that real
// machines.scm files use (build-machine with inherit, define, lambda, let,
// let*, if, list, cons, append, map, string-append, getenv, quasiquote…).
// [EvalWithGuile] runs the real guile instead, with a small embedded helper
// that defines build-machine with Guix's defaults, for files beyond that
// subset. [WriteMachines] prints machines in a canonical form that both
// read back to the same values; [WriteFormat] prints them as a table,
// JSON or recutils too. [DefaultMachine] holds Guix's defaults.
//
// Errors about a file carry advice when there is some: [*Error] has a
// Hint method, which internal/cli prints on its own line.
//
// The package needs nothing but the standard library.
package scm
