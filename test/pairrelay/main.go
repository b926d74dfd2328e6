package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/pairing"
	"github.com/guix-offload/guix-offload/internal/pki"
)

func main() {
	listen := flag.String("listen", "", "address to accept the master on")
	machine := flag.String("machine", "", "IP:PORT of the real machine's pairing window")
	name := flag.String("name", "builder", "the name to show the master")
	flag.Parse()
	if err := run(*listen, *machine, *name); err != nil {
		fmt.Fprintln(os.Stderr, "pairrelay:", err)
		os.Exit(1)
	}
}

func identity(role, name string) (pairing.Identity, error) {
	gk, err := pki.GenerateKey(pki.TypeECDSA, rand.Reader)
	if err != nil {
		return pairing.Identity{}, err
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return pairing.Identity{}, err
	}
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		return pairing.Identity{}, err
	}
	id := pairing.Identity{Role: role, Name: name, SigningKey: string(gk.Public().MarshalSexp()),
		SSHKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk)))}
	if role == pairing.RoleMachine {
		id.User, id.Port = "root", 22
	}
	return id, nil
}

func run(listen, machine, name string) error {
	asMachine, err := identity(pairing.RoleMachine, name)
	if err != nil {
		return err
	}
	asMaster, err := identity(pairing.RoleMaster, "master")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Println("relay listening on", ln.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	master, err := ln.Accept()
	if err != nil {
		return err
	}
	real, err := net.Dial("tcp", machine)
	if err != nil {
		return err
	}
	yes := func(_ context.Context, c pairing.Code, _ *pairing.Identity) (bool, error) {
		fmt.Println("relay sees code", c)
		return true, nil
	}
	nothing := func(context.Context, *pairing.Identity) (pairing.Undo, error) {
		return func() error { return nil }, nil
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, err := pairing.Respond(ctx, master, pairing.Options{Self: asMachine, Confirm: yes, Apply: nothing})
		fmt.Println("relay, master side:", err)
	}()
	go func() {
		defer wg.Done()
		_, err := pairing.Initiate(ctx, real, pairing.Options{Self: asMaster, Confirm: yes, Apply: nothing})
		fmt.Println("relay, machine side:", err)
	}()
	wg.Wait()
	return nil
}
