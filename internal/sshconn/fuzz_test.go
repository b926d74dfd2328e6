package sshconn_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/sshconn"
)

// A host key line that parses names a key whose fingerprint is stable
// and whose own line parses back to the same key.
func FuzzParseHostKey(f *testing.F) {
	f.Add("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDs8rR0lXyZk6iQ2F4kOcbq6uMFIk2x1sBlHPo2kYmbJ root@builder")
	f.Add("ssh-rsa AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		k, err := sshconn.ParseHostKey(line)
		if err != nil {
			return
		}
		fp := sshconn.Fingerprint(k)
		if !strings.HasPrefix(fp, k.Type()+" SHA256:") {
			t.Fatalf("fingerprint %q", fp)
		}
		again, err := sshconn.ParseHostKey(k.Type() + " " + b64(k.Marshal()))
		if err != nil || sshconn.Fingerprint(again) != fp {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
