package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/cli"
)

// These tests never browse: browsing in this machine's own network
// namespace is not allowed (see discovery's namespace tests instead).

func TestDiscoverRejectsBadFlags(t *testing.T) {
	for name, opts := range map[string]discoverOptions{
		"format":       {format: "yaml", trust: "any"},
		"watch format": {format: "scm", watch: true, trust: "any"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runDiscover(context.Background(), opts, &out, &errOut)
			var exit cli.ExitError
			var hinted cli.Hinted
			if !errors.As(err, &exit) || exit.Code != 2 || !errors.As(err, &hinted) || hinted.Hint() == "" {
				t.Errorf("runDiscover = %v, want exit status 2 with a hint", err)
			}
		})
	}
	// A missing ACL is an error with a hint, before any browsing.
	var out, errOut bytes.Buffer
	err := runDiscover(context.Background(), discoverOptions{format: "table", trust: "acl", acl: filepath.Join(t.TempDir(), "acl")}, &out, &errOut)
	var hinted cli.Hinted
	if err == nil || !errors.As(err, &hinted) || !strings.Contains(hinted.Hint(), "guix archive --authorize") {
		t.Errorf("missing ACL: %v", err)
	}
	if _, err := discovery.ParsePolicy("sometimes", "", ""); err == nil {
		t.Error("unknown policy accepted")
	}
}

// TestDiscoverFromSnapshot: without --watch, a fresh snapshot answers at once.
func TestDiscoverFromSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "discover.json")
	a := &discovery.Announcement{Instance: "builder1", Load: 0.2, FreeDisk: 100, Trusted: true, TrustReason: "trust policy any"}
	a.Name, a.Port, a.User = "169.254.1.2", 22, "offload"
	a.Systems = []string{"x86_64-linux"}
	a.HostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c"
	a.ParallelBuilds, a.Speed = 1, 1
	b := &discovery.Announcement{Instance: "rogue", Load: 0.2, FreeDisk: 100, TrustReason: "announcement is not signed"}
	b.Name, b.Port, b.User, b.HostKey = "169.254.6.6", 22, "x", a.HostKey
	if err := discovery.WriteSnapshot(path, &discovery.Snapshot{Updated: time.Now(), Machines: []*discovery.Announcement{a, b}}); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := runDiscover(context.Background(), discoverOptions{format: "json", trust: "any", snapshot: path, timeout: time.Second}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var as []map[string]any
	if err := json.Unmarshal(out.Bytes(), &as); err != nil || len(as) != 2 {
		t.Fatalf("json from snapshot: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := runDiscover(context.Background(), discoverOptions{format: "scm", trust: "any", snapshot: path, timeout: time.Second}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `(name "169.254.1.2")`) || strings.Contains(out.String(), "169.254.6.6") {
		t.Errorf("scm from snapshot:\n%s", out.String())
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr: %s", errOut.String())
	}
}

// TestDiscoverStaleSnapshotWarns: a stale snapshot is not believed. The
// browse that would follow is cut short by an already cancelled context
// and a missing ACL, so nothing touches the network.
func TestDiscoverStaleSnapshotWarns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "discover.json")
	if err := discovery.WriteSnapshot(path, &discovery.Snapshot{Updated: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := runDiscover(context.Background(), discoverOptions{format: "table", trust: "acl", acl: filepath.Join(t.TempDir(), "none"), snapshot: path}, &out, &errOut)
	if err == nil || !strings.Contains(errOut.String(), "is stale") {
		t.Errorf("stale snapshot: err %v, stderr %q", err, errOut.String())
	}
	if _, err := os.Stat(path); err != nil {
		t.Error(err)
	}
}

// TestDiscoverMissingSnapshotIsQuiet: no snapshot (no watcher service) is
// normal; the bridge passes --cache on every request, so no warning.
func TestDiscoverMissingSnapshotIsQuiet(t *testing.T) {
	var out, errOut bytes.Buffer
	dir := t.TempDir()
	err := runDiscover(context.Background(), discoverOptions{format: "scm", trust: "acl", acl: filepath.Join(dir, "none"), snapshot: filepath.Join(dir, "discover.json")}, &out, &errOut)
	if err == nil || errOut.Len() != 0 {
		t.Errorf("err %v, stderr %q", err, errOut.String())
	}
}
