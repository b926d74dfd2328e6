package transport_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/transport"
)

// TestRelay: the relay copies both ways and ends cleanly when either
// side does; a socket it cannot reach is an error naming it.
func TestRelay(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "socket")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The "daemon" answers each line upper-cased, and hangs up on "bye".
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if strings.Contains(string(buf[:n]), "bye") {
						return
					}
					if _, err := c.Write(bytes.ToUpper(buf[:n])); err != nil {
						return
					}
				}
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("master ends", func(t *testing.T) {
		pr, pw := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := transport.Relay(ctx, socket, pr, outW)
			outW.Close()
			done <- err
		}()
		pw.Write([]byte("hello"))
		// The master ends once the daemon's answer came (the relay
		// ends with ctx at the latest, which ends this read).
		got := make([]byte, len("HELLO"))
		if _, err := io.ReadFull(outR, got); err != nil || string(got) != "HELLO" {
			t.Errorf("relayed %q, %v; want HELLO", got, err)
		}
		pw.Close()
		rest, _ := io.ReadAll(outR)
		if err := <-done; err != nil {
			t.Fatalf("Relay = %v, want a clean end", err)
		}
		if len(rest) != 0 {
			t.Errorf("relayed %q after HELLO", rest)
		}
	})
	t.Run("daemon ends", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go func() { pw.Write([]byte("bye")) }()
		if err := transport.Relay(ctx, socket, pr, io.Discard); err != nil {
			t.Fatalf("Relay = %v, want a clean end", err)
		}
	})
	t.Run("no socket", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nothing")
		err := transport.Relay(ctx, missing, strings.NewReader(""), io.Discard)
		if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "may this login use the socket") {
			t.Fatalf("Relay = %v, want an error naming %s and the login's access", err, missing)
		}
	})
}
