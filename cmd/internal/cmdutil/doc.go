// Package cmdutil gives both guix-offload programs Guix's command-line
// conventions in one place: call [Setup] on a root command once every
// subcommand is added, then [Execute] it. New commands and flags follow
// the conventions by being in the tree; durations use [DurationVar].
//
//   - -V/--version on every command, printing "PROG (guix-offload) VERSION"
//     (-v is never version: it is --verbose where a command has one);
//   - a boolean flag that defaults to true also has its negation,
//     --no-NAME, as Guix's --no-substitutes;
//   - durations take plain seconds (--timeout 30) or a unit (30s, 5m);
//   - exit status 2 for every usage error (unknown command or flag, bad
//     flag value, wrong number of arguments), 1 for an error of the
//     command itself, as the README promises;
//   - every command has a Long help text and an example (checked by a test
//     of each program).
package cmdutil
