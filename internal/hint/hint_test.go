package hint

import (
	"errors"
	"fmt"
	"testing"
)

func TestWith(t *testing.T) {
	base := errors.New("no key")
	err := fmt.Errorf("sign: %w", With(base, "run guix archive --generate-key"))
	if Of(err) != "run guix archive --generate-key" || !errors.Is(err, base) || err.Error() != "sign: no key" {
		t.Errorf("%v, hint %q", err, Of(err))
	}
	if With(nil, "x") != nil || Of(base) != "" {
		t.Error("nil or unhinted")
	}
}
