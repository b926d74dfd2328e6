package transport

import (
	"errors"
	"fmt"
	"testing"
)

// TestRemoteCommandMissing: a remote command that exits 127, whether the
// build itself or a helper run with Output, matches
// ErrRemoteCommandMissing, so the hook can tell a machine without guix
// without reading messages; other statuses do not.
func TestRemoteCommandMissing(t *testing.T) {
	b := &Build{Host: "m", Drv: "/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-x.drv", RemoteGuix: "/opt/guix/bin/guix"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"build exits 127", buildResult(b, 127, verdictNone, "sh: 1: /opt/guix/bin/guix: not found\n"), true},
		{"build exits 2", buildResult(b, 2, verdictNone, "oops\n"), false},
		{"build failed", buildResult(b, 100, verdictNone, ""), false},
		{"helper exits 127", fmt.Errorf("send inputs: %w", &RemoteError{Command: "guix-offload-agent stream import", Status: 127}), true},
		{"helper exits 1", fmt.Errorf("send inputs: %w", &RemoteError{Command: "guix archive --import", Status: 1}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errors.Is(tc.err, ErrRemoteCommandMissing); got != tc.want {
				t.Errorf("errors.Is(%q, ErrRemoteCommandMissing) = %v, want %v", tc.err, got, tc.want)
			}
			if tc.want && ExitCode(tc.err) != 1 {
				t.Errorf("exit code %d, want 1", ExitCode(tc.err))
			}
		})
	}
}
