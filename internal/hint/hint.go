package hint

import "errors"

// Hinted is an error that carries advice for the user.
type Hinted interface {
	error
	Hint() string
}

// With wraps err with the advice h; nil stays nil.
func With(err error, h string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hint: h}
}

// Of returns the advice err carries (the outermost), or "".
func Of(err error) string {
	var h Hinted
	if errors.As(err, &h) {
		return h.Hint()
	}
	return ""
}

type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }
func (h *hinted) Hint() string  { return h.hint }
