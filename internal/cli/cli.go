package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/guix-offload/guix-offload/internal/hint"
)

// ExitError asks main to exit with Code after printing Err (when non-nil).
type ExitError struct {
	Code int
	Err  error
}

func (e ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e ExitError) Unwrap() error { return e.Err }

// Hinted is an error that carries advice for the user ([hint.Hinted]).
type Hinted = hint.Hinted

// WithHint wraps err with a hint printed on its own line after the error
// ([hint.With]).
func WithHint(err error, h string) error { return hint.With(err, h) }

// PrintError writes "PROG: error: ERR" and, when err carries one, a
// "PROG: hint: …" line.
func PrintError(w io.Writer, prog string, err error) {
	fmt.Fprintf(w, "%s: error: %v\n", prog, err)
	if h := hint.Of(err); h != "" {
		fmt.Fprintf(w, "%s: hint: %s\n", prog, h)
	}
}

// Exit maps the error a command returned to the process's exit status,
// printing it for people: nil is 0, an [ExitError] its own code,
// cancellation (Ctrl-C, SIGTERM) 130 without a message, anything else 1.
func Exit(w io.Writer, prog string, err error) int {
	if err == nil {
		return 0
	}
	var exit ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			PrintError(w, prog, exit.Err)
		}
		return exit.Code
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	PrintError(w, prog, err)
	return 1
}
