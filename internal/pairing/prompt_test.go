package pairing

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestPrompt(t *testing.T) {
	peer := testIdentity(t, RoleMaster, "master", 1)
	const code = Code("123456")
	tests := []struct {
		name, input, flag string
		want              bool
		wantErr           bool
	}{
		{"y", "y\n", "", true, false},
		{"yes", " YES \n", "", true, false},
		{"no", "n\n", "", false, false},
		{"anything else", "sure\n", "", false, false},
		{"empty line", "\n", "", false, false},
		{"end of input", "", "", false, true},
		{"code typed", "123 456\n", "", true, false},
		{"other code typed", "123457\n", "", false, false},
		{"--code", "", "123456", true, false},
		{"wrong --code", "y\n", "654321", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			ok, err := Prompt{In: strings.NewReader(tc.input), Out: &out, Code: tc.flag}.Confirm(t.Context(), code, &peer)
			if ok != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("got %v, %v; want %v (error: %v)", ok, err, tc.want, tc.wantErr)
			}
			if !strings.Contains(out.String(), "pairing code: 123 456\n") || !strings.Contains(out.String(), "master master: Guix key ") {
				t.Errorf("output %q lacks the code or the peer", out.String())
			}
		})
	}
	t.Run("window ends", func(t *testing.T) {
		r, w := io.Pipe()
		defer w.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		ok, err := Prompt{In: r, Out: io.Discard}.Confirm(ctx, code, &peer)
		if ok || err == nil {
			t.Errorf("got %v, %v; want a refusal with an error", ok, err)
		}
	})
}
