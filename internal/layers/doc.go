// Package layers has no code: its test checks the import rules that
// docs/ARCHITECTURE.md states, so the document and the code cannot drift
// apart unseen.
package layers
