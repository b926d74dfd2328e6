// Package bench is guix-offload's benchmark suite: it measures what the
// project promises to be fast (the hook's decision, its one SSH handshake,
// the transfer, discovery, the agent's footprint) side by side with what a
// Guix user would otherwise run (Guile-SSH as Guix's hook uses it, OpenSSH,
// Avahi), in the same run on the same machine, and prints one Markdown
// table of medians and ratios.
//
// Start with run.sh (`bench/run.sh`, or `bench/run.sh decide transfer` for
// a subset): it installs the peers, builds the suite and runs it. The
// measurements live in this package's test files behind the `bench` build
// tag, so the ordinary `go test ./...` never runs them; they reuse the
// project's harnesses (internal/testenv/sshd, internal/testenv/netns, the
// daemon driver). The package itself holds what the default test run can
// check: the table ([Table], [Sample], [Ratio]) and the /proc readers
// ([ReadProc]).
package bench
