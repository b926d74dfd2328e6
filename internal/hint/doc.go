// Package hint lets an error carry advice for the person who reads it:
// what to do next. Library packages attach it with [With]; the commands
// print it on its own line (internal/cli).
package hint
