package sshd_test

import (
	"context"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
)

func TestStartWithPrefix(t *testing.T) {
	unshare := testenv.LookPath(t, "unshare", "util-linux")
	s := sshd.Start(t, sshd.Options{Prefix: []string{unshare, "-m"}})
	if !strings.HasPrefix(s.HostKey, "ssh-ed25519 AAAA") || strings.Count(s.HostKey, " ") != 1 {
		t.Fatalf("host key line %q", s.HostKey)
	}
	c, err := sshconn.Dial(context.Background(), sshconn.Target{Host: s.Host, Port: s.Port,
		User: s.User, PrivateKeyFile: s.ClientKeyFile, HostKey: s.HostKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Stop()
	select {
	case <-s.Done():
	default:
		t.Fatal("sshd still running after Stop")
	}
}
