package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/guix-offload/guix-offload/hook"
)

// The discovery service the README tells people to run must keep its
// snapshot where the hook reads it by default, or every hook process
// would find no cache and browse the LAN itself. (The Guix System
// service's is checked by TestGuixServices.)
func TestExamplesShareTheHooksSnapshotPath(t *testing.T) {
	want := hook.DefaultConfig().Snapshot
	for _, tc := range []struct{ file, pattern string }{
		{"guix-offload-discover.service", `(?m)^ExecStart=.* --cache (\S+)`},
		{"machines-bridge.scm", `\(define %discover-cache "([^"]+)"\)`},
		{"hook.toml", `(?m)^cache = "([^"]+)"`},
	} {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(tc.pattern).FindSubmatch(data)
		if m == nil {
			t.Errorf("examples/%s: no cache path matching %s", tc.file, tc.pattern)
			continue
		}
		if got := string(m[1]); got != want {
			t.Errorf("examples/%s: cache %s, but the hook reads %s by default", tc.file, got, want)
		}
	}
}
