package transport

import (
	"io"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// The daemon's lines as `guix build` relays them decide between 100, 101
// and 1 when guix build exits 1.
func TestWatchClassifies(t *testing.T) {
	for _, tc := range []struct {
		name, out        string
		timedOut, failed bool
	}{
		{"builder failed", "builder for `/gnu/store/x.drv' failed with exit code 1\nguix build: error: build of `/gnu/store/x.drv' failed\n", false, true},
		{"builder killed", "builder for `/gnu/store/x.drv' failed due to signal 9 (Killed)\n", false, true},
		{"no output", "builder for `/gnu/store/x.drv' failed to produce output path `/gnu/store/x'\n", false, true},
		{"fixed-output hash", "hash mismatch in fixed-output derivation `/gnu/store/x':\n", false, true},
		{"silence", "building of `/gnu/store/x.drv' timed out after 3600 seconds of silence\nbuild of `/gnu/store/x.drv' failed\n", true, false},
		{"timeout", "building of `/gnu/store/x.drv' timed out after 86400 seconds", true, false},
		{"substituter", "some substitutes for the outputs of derivation `/gnu/store/x.drv' failed\nguix build: error: build of `/gnu/store/x.drv' failed\n", false, false},
		{"daemon gone", "guix build: error: failed to connect to `/var/guix/daemon-socket/socket': No such file or directory\n", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &watch{log: io.Discard}
			// Written in odd pieces, as SSH delivers them.
			for i := 0; i < len(tc.out); i += 7 {
				_, _ = w.Write([]byte(tc.out[i:min(i+7, len(tc.out))]))
			}
			w.flush()
			if w.timedOut != tc.timedOut || w.failed != tc.failed {
				t.Errorf("timed out %v, failed %v; want %v, %v", w.timedOut, w.failed, tc.timedOut, tc.failed)
			}
		})
	}
}

func TestRunRejectsOddPaths(t *testing.T) {
	acl := pki.NewACL()
	good := func() *Build {
		return &Build{
			Client: &ssh.Client{}, Host: "m", Drv: "/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-x.drv",
			Inputs:  []string{"/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-x.drv"},
			Outputs: []string{"/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-x"}, ACL: acl,
		}
	}
	if err := good().check(); err != nil {
		t.Fatalf("good build refused: %v", err)
	}
	for name, mod := range map[string]func(*Build){
		"output outside the store": func(b *Build) { b.Outputs = []string{"/etc/passwd"} },
		"output in a subdirectory": func(b *Build) { b.Outputs = []string{"/gnu/store/x/y"} },
		"output ..":                func(b *Build) { b.Outputs = []string{"/gnu/store/.."} },
		"input like an option":     func(b *Build) { b.Inputs = []string{"/gnu/store/--recursive"} },
		"input with a newline":     func(b *Build) { b.Inputs = []string{"/gnu/store/a\nb"} },
		"derivation elsewhere":     func(b *Build) { b.Drv = "/tmp/x.drv" },
		"no outputs":               func(b *Build) { b.Outputs = nil },
		"no ACL":                   func(b *Build) { b.ACL = nil },
	} {
		b := good()
		mod(b)
		if err := b.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
