package sshconn_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
)

func target(s *sshd.Server, key string) sshconn.Target {
	return sshconn.Target{Host: s.Host, Port: s.Port, User: s.User, PrivateKeyFile: key, HostKey: s.HostKey}
}

func run(t *testing.T, tg sshconn.Target) {
	t.Helper()
	c, err := sshconn.Dial(context.Background(), tg, &sshconn.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Output("echo ok")
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("remote echo: %q, %v", out, err)
	}
}

func TestDialRealSSHD(t *testing.T) {
	dir := t.TempDir()
	keys := map[string]string{}
	var pubs []string
	for _, typ := range []string{"rsa", "ecdsa"} {
		p := filepath.Join(dir, "id_"+typ)
		pubs = append(pubs, sshd.GenerateKey(t, "", p, typ, ""))
		keys[typ] = p
	}
	encrypted := filepath.Join(dir, "id_encrypted")
	sshd.GenerateKey(t, "", encrypted, "ed25519", "secret")
	stranger := filepath.Join(dir, "id_stranger")
	sshd.GenerateKey(t, "", stranger, "ed25519", "")
	otherHost := sshd.GenerateKey(t, "", filepath.Join(dir, "other_host"), "ed25519", "")

	s := sshd.Start(t, sshd.Options{AuthorizedKeys: pubs})

	t.Run("ed25519", func(t *testing.T) { run(t, target(s, s.ClientKeyFile)) })
	t.Run("rsa", func(t *testing.T) { run(t, target(s, keys["rsa"])) })
	t.Run("ecdsa", func(t *testing.T) { run(t, target(s, keys["ecdsa"])) })

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // accept and never answer
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	silentPort := silent.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name   string
		mutate func(*sshconn.Target)
		kind   error
		want   []string
	}{
		{"wrong host key", func(tg *sshconn.Target) { tg.HostKey = otherHost }, sshconn.ErrHostKeyMismatch,
			[]string{fingerprint(t, s.HostKey), fingerprint(t, otherHost)}},
		{"refused key", func(tg *sshconn.Target) { tg.PrivateKeyFile = stranger }, sshconn.ErrAuthRefused, []string{"refused key"}},
		{"encrypted key", func(tg *sshconn.Target) { tg.PrivateKeyFile = encrypted }, sshconn.ErrBadKey,
			[]string{"the daemon cannot prompt for a passphrase; use a key without one"}},
		{"missing key", func(tg *sshconn.Target) { tg.PrivateKeyFile = filepath.Join(dir, "nope") }, sshconn.ErrBadKey, []string{"no such file"}},
		{"no host key", func(tg *sshconn.Target) { tg.HostKey = "" }, sshconn.ErrBadKey, []string{"no host key"}},
		{"closed port", func(tg *sshconn.Target) { tg.Port = closedPort }, sshconn.ErrUnreachable, []string{"refused"}},
		{"silent port", func(tg *sshconn.Target) { tg.Port = silentPort }, sshconn.ErrTimeout, []string{"no SSH handshake"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := target(s, s.ClientKeyFile)
			tc.mutate(&tg)
			// The bound is short where running into it is what the case
			// checks; elsewhere it is generous, so that a handshake
			// slowed by a loaded machine is not taken for a silent port.
			timeout := 30 * time.Second
			if tc.kind == sshconn.ErrTimeout {
				timeout = 1500 * time.Millisecond
			}
			start := time.Now()
			c, err := sshconn.Dial(context.Background(), tg, &sshconn.Options{Timeout: timeout})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v is not %v", err, tc.kind)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if d := time.Since(start); tc.kind == sshconn.ErrTimeout && d > 10*time.Second {
				t.Errorf("took %v", d)
			}
			if !strings.Contains(err.Error(), net.JoinHostPort(tg.Host, strconv.Itoa(tg.Port))) {
				t.Errorf("error %q does not name the address", err)
			}
		})
	}
}

func fingerprint(t *testing.T, line string) string {
	k, err := sshconn.ParseHostKey(line)
	if err != nil {
		t.Fatal(err)
	}
	return sshconn.Fingerprint(k)
}

func TestKeepAliveClosesDeadConnection(t *testing.T) {
	s := sshd.Start(t, sshd.Options{})
	c, err := sshconn.Dial(context.Background(), target(s, s.ClientKeyFile),
		&sshconn.Options{KeepAlive: 500 * time.Millisecond, KeepAliveMax: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Freeze sshd's connection process so it stops answering.
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("connection closed while sshd answers: %v", err)
	case <-time.After(1500 * time.Millisecond): // three keepalives answered
	}
	s.Signal(syscall.SIGSTOP)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("keepalive did not notice the dead server")
	}
}

// Closing the client ends every goroutine Dial started (keepalives too).
func TestNoGoroutineLeak(t *testing.T) {
	s := sshd.Start(t, sshd.Options{})
	before := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		c, err := sshconn.Dial(context.Background(), target(s, s.ClientKeyFile), &sshconn.Options{KeepAlive: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond) // let a keepalive or two happen
		c.Close()
	}
	// A leaked goroutine stays: the wait only has to outlast a loaded
	// machine's scheduling.
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
