package hook

import (
	"errors"
	"fmt"
	"testing"

	"github.com/guix-offload/guix-offload/internal/transport"
)

// TestMachineProblem: which transport errors mark the machine down. A
// missing remote command is recognized by its sentinel, whatever the
// message says.
func TestMachineProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"guix missing", fmt.Errorf("offload to 'm': build x.drv: guix: %w", transport.ErrRemoteCommandMissing), true},
		{"guix missing, other words", fmt.Errorf("the build tool is absent: %w", transport.ErrRemoteCommandMissing), true},
		{"helper exits 127", fmt.Errorf("offload to 'm': %w", &transport.RemoteError{Command: "guix archive --missing", Status: 127}), true},
		{"connection lost", fmt.Errorf("offload to 'm': %w: EOF", transport.ErrConnectionLost), true},
		{"a step unanswered", fmt.Errorf("offload to 'm': ask which inputs are missing: %w (no answer within 1m0s)", transport.ErrUnresponsive), true},
		{"daemon refused our items", fmt.Errorf("offload to 'm': send inputs: %w: guix-daemon: cannot import (status 1)", transport.ErrRefused), true},
		{"build failed", fmt.Errorf("x: %w", transport.ErrBuildFailed), false},
		{"timed out", fmt.Errorf("x: %w", transport.ErrTimeout), false},
		{"ours, mentioning the phrase", errors.New("export inputs locally: /gnu/store/x not found on the machine"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := machineProblem(tc.err); got != tc.want {
				t.Errorf("machineProblem(%q) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
