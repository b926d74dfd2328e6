package transport

import (
	"io"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// How `guix build` ended (its output and exit status) decides between
// 0, 100, 101 and 1; only the daemon's own lines about this derivation
// count, never the builder's log.
func TestBuildClassifies(t *testing.T) {
	const (
		drv   = "/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-x.drv"
		out   = "/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-x"
		other = "/gnu/store/zyxwvsrqpnmlkjihgfdcba9876543210-dep.drv"
	)
	for _, tc := range []struct {
		name string
		log  string
		code int // remote exit status
		want int // hook exit status
	}{
		{"success", "building main\n", 0, 0},
		{"builder failed", "about to fail\nbuilder for `" + drv + "' failed with exit code 1\nguix build: error: build of `" + drv + "' failed\n", 1, 100},
		{"builder failed, prefixed", "guix build: error: builder for `" + drv + "' failed with exit code 3\n", 1, 100},
		{"builder killed", "builder for `" + drv + "' failed due to signal 9 (Killed)\n", 1, 100},
		{"no output", "builder for `" + drv + "' failed to produce output path `" + out + "'\n", 1, 100},
		{"fixed-output hash", "hash mismatch for store item '" + out + "'\n", 1, 100},
		{"cached failure", "builder for `" + out + "' failed previously (cached)\n", 1, 100},
		{"silence", "building of `" + drv + "' timed out after 3600 seconds of silence\nguix build: error: build of `" + drv + "' failed\n", 1, 101},
		{"timeout", "building of `" + drv + "' timed out after 86400 seconds", 1, 101},
		{"log limit", "building of `" + drv + "' killed after writing more than 1000 bytes of log output\n", 1, 101},
		{"CRLF", "builder for `" + drv + "' failed with exit code 2\r\n", 1, 100},
		// The builder's own words are not the daemon's.
		{"builder's test timed out", "running tests\ntest net/http timed out after 60 seconds\nFAIL\nbuilder for `" + drv + "' failed with exit code 1\n", 1, 100},
		{"builder says timed out, then daemon gone", "test foo timed out after 60 seconds\nguix build: error: failed to connect to `/var/guix/daemon-socket/socket': Connection refused\n", 1, 1},
		{"builder says failed output, then daemon gone",
			"warning: failed to produce output path `/tmp/x'\nhash mismatch in fixed-output derivation `" + drv + "':\nbuilder for something failed\nguix build: error: failed to connect to `/var/guix/daemon-socket/socket': Connection refused\n", 1, 1},
		// The daemon's verdict follows the builder's last output on
		// the same line when that output lacks a newline.
		{"builder failed after a partial line", "partialbuilder for `" + drv + "' failed with exit code 7\nguix build: error: build of `" + drv + "' failed\n", 1, 100},
		{"silence after a partial line", "startbuilding of `" + drv + "' timed out after 3 seconds of silence\n", 1, 101},
		{"timeout after a partial line", "...building of `" + drv + "' timed out after 4 seconds\n", 1, 101},
		{"disk full after a partial line", "no space" + diskNote + "\nbuilder for `" + drv + "' failed with exit code 1\n", 1, 1},
		{"phrase not at the end of its line", "note: building of `" + drv + "' timed out after 5 seconds, says the builder\n", 1, 1},
		{"another derivation failed", "builder for `" + other + "' failed with exit code 1\ncannot build derivation `" + drv + "': 1 dependencies couldn't be built\n", 1, 1},
		{"another item's hash", "hash mismatch for store item '/gnu/store/zyxwvsrqpnmlkjihgfdcba9876543210-src'\n", 1, 1},
		{"disk full", "no space left\n" + diskNote + "\nbuilder for `" + drv + "' failed with exit code 1\n", 1, 1},
		{"disk note from the builder, long before", diskNote + "\nmore log\nbuilder for `" + drv + "' failed with exit code 1\n", 1, 100},
		{"substituter", "some substitutes for the outputs of derivation `" + drv + "' failed (usually happens due to networking issues)\nguix build: error: build of `" + drv + "' failed\n", 1, 1},
		{"daemon gone", "guix build: error: failed to connect to `/var/guix/daemon-socket/socket': No such file or directory\n", 1, 1},
		// The last verdict wins: the builder printed a fake one, the
		// daemon then timed it out.
		{"last verdict wins", "builder for `" + drv + "' failed with exit code 1\nbuilding of `" + drv + "' timed out after 60 seconds of silence\n", 1, 101},
		{"daemon's exit status 101", "", 101, 101},
		{"daemon's exit status 100", "", 100, 100},
		{"guix missing", "sh: guix: not found\n", 127, 1},
		{"killed", "", 137, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Build{Host: "m", Drv: drv, Outputs: []string{out}, RemoteGuix: "guix"}
			w := &watch{log: io.Discard, verdicts: newVerdicts(drv, b.Outputs)}
			// Written in odd pieces, as SSH delivers them.
			for i := 0; i < len(tc.log); i += 7 {
				_, _ = w.Write([]byte(tc.log[i:min(i+7, len(tc.log))]))
			}
			w.flush()
			err := buildResult(b, tc.code, w.verdict(), w.tailString())
			if got := ExitCode(err); got != tc.want {
				t.Errorf("exit %d (%v), want %d", got, err, tc.want)
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
