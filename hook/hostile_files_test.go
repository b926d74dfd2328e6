package hook

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/agent"
	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/boundedread"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/scm"
)

// Issue 12, item 6: every file the hook or the agent reads, pointed at
// /dev/zero or at a FIFO nobody writes, is refused at once (not read
// without end, not waited on).
func TestFilesPointedAtDevicesAndFIFOs(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	readers := map[string]func(string) error{
		"hook configuration":  func(p string) error { _, err := LoadConfig(p, true); return err },
		"agent configuration": func(p string) error { _, err := agent.LoadConfig(p); return err },
		"machines.scm":        func(p string) error { _, err := scm.LoadMachines(p); return err },
		"ACL":                 func(p string) error { _, err := pki.ReadACL(p); return err },
		"signing key":         func(p string) error { _, err := pki.ReadPrivateKey(p); return err },
		"public key":          func(p string) error { _, err := pki.ReadPublicKey(p); return err },
		"snapshot":            func(p string) error { _, err := discovery.ReadSnapshot(p); return err },
		"SSH private key":     func(p string) error { _, err := sshconn.LoadPrivateKey(p); return err },
	}
	for what, read := range readers {
		for _, path := range []string{"/dev/zero", fifo} {
			done := make(chan error, 1)
			go func() { done <- read(path) }()
			select {
			case err := <-done:
				if !errors.Is(err, boundedread.ErrNotRegular) {
					t.Errorf("%s at %s: %v", what, path, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s at %s: still reading after 10 s", what, path)
			}
		}
	}
}
