package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/internal/hint"
	"github.com/guix-offload/guix-offload/internal/pairing"
	"github.com/guix-offload/guix-offload/internal/pki"
)

// PairOptions configure [Agent.Pair]. Zero values mean the defaults.
type PairOptions struct {
	// Window is how long the pairing window stays open
	// ([pairing.DefaultWindow]).
	Window time.Duration
	// ACL is the Guix ACL ([pki.DefaultACLFile]).
	ACL string
	// Records is the directory of pairing records
	// ([pairing.DefaultMachineRecords]).
	Records string
	// HomeBase is where a created login's home goes (/home).
	HomeBase string
	// Guix is the guix program masters need on the login's PATH; empty
	// means the one found on PATH or in Guix's usual places.
	Guix string
	// Agent is the guix-offload-agent program masters run over SSH as
	// the relay to the daemon; empty means this program.
	Agent string
	// Accounts manages the login; nil means [pairing.SystemAccounts].
	Accounts pairing.Accounts
	// Listen is the TCP address the protocol is served on (":0": any
	// port, every address).
	Listen string
	// Prompt asks the operator.
	Prompt pairing.Prompt
	// Out receives what is happening.
	Out io.Writer
}

// guixPlaces are where guix usually is when it is not on root's PATH
// (sudo's secure_path leaves Guix's profiles out).
var guixPlaces = []string{
	"/run/current-system/profile/bin/guix",
	"/var/guix/profiles/per-user/root/current-guix/bin/guix",
	"/usr/local/bin/guix",
	"/usr/bin/guix",
}

func findGuix() string {
	if p, err := exec.LookPath("guix"); err == nil {
		return p
	}
	for _, p := range guixPlaces {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Machine returns the file changes pairing makes on this machine, for
// `pair --remove` and `pair --list` as much as for pairing.
func (o PairOptions) Machine(user string, own *pki.PublicKey) *pairing.Machine {
	m := &pairing.Machine{ACL: o.ACL, OwnKey: own, Records: o.Records, User: user, HomeBase: o.HomeBase,
		Shell: "/bin/bash", Guix: o.Guix, Agent: o.Agent, Accounts: o.Accounts}
	if m.Agent == "" {
		if exe, err := os.Executable(); err == nil {
			m.Agent = exe
		}
	}
	if m.ACL == "" {
		m.ACL = pki.DefaultACLFile
	}
	if m.Records == "" {
		m.Records = pairing.DefaultMachineRecords
	}
	if m.HomeBase == "" {
		m.HomeBase = "/home"
	}
	if _, err := os.Stat(m.Shell); err != nil {
		m.Shell = "/bin/sh"
	}
	if m.Accounts == nil {
		m.Accounts = pairing.SystemAccounts{}
	}
	return m
}

// Pair opens a pairing window: it serves the pairing protocol on a TCP
// port, advertises the window on the LAN as a [pairing.ServiceType]
// service, and answers the first master that connects. It returns when
// that one attempt ends (the window closes after it, whatever the
// outcome) or when the window's time is up, and says goodbye on the LAN
// either way. On any failure nothing is left changed here.
func (a *Agent) Pair(ctx context.Context, o PairOptions) (*pairing.Result, error) {
	p, err := a.Prepare()
	if err != nil {
		return nil, err
	}
	if p.Key == nil {
		return nil, hint.With(fmt.Errorf("no Guix signing key in %s", a.Config.SigningKey),
			"run 'sudo guix archive --generate-key' first")
	}
	hostKey, err := pairing.NormalizeSSHKey(p.Machine.HostKey)
	if err != nil {
		return nil, err
	}
	self := pairing.Identity{Role: pairing.RoleMachine, Name: p.Instance,
		SigningKey: string(p.Key.Public().MarshalSexp()), SSHKey: hostKey, User: p.Machine.User, Port: p.Machine.Port}
	if err := self.Validate(); err != nil {
		return nil, hint.With(err, "set name and user in the agent's configuration")
	}
	if o.Guix == "" {
		o.Guix = findGuix()
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	machine := o.Machine(p.Machine.User, p.Key.Public())
	if o.Guix == "" {
		if _, _, _, err := machine.Accounts.Lookup(p.Machine.User); err != nil {
			fmt.Fprintf(out, "warning: guix not found; the login %s will be created without guix on its PATH\n", p.Machine.User)
		}
	}

	window := o.Window
	if window <= 0 {
		window = pairing.DefaultWindow
	}

	listen := o.Listen
	if listen == "" {
		listen = ":0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("open the pairing window: %w", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	all, err := a.interfaces()
	if err != nil {
		return nil, err
	}
	chosen, missing := chooseInterfaces(all, a.Config.Interfaces)
	if len(chosen) == 0 {
		return nil, hint.With(errors.New("no usable network interface to announce the pairing window on"),
			"check the interfaces in the agent's configuration: "+strings.Join(missing, ","))
	}
	addrs, _ := addressesOf(chosen)
	ifs := make([]net.Interface, len(chosen))
	var served []netip.Addr
	for i, c := range chosen {
		ifs[i] = c.Interface
		served = append(served, servedAddrs(c)...)
	}
	ann := a.Announcer
	if ann == nil {
		ann = MDNSAnnouncer{Logger: a.logger("mdns")}
	}
	fp := p.Key.Public().Fingerprint()
	reg, err := ann.Announce(Service{Type: pairing.ServiceType, Instance: p.Instance, Host: p.Host, Port: port,
		TXT: pairing.WindowTXT(fp), Interfaces: ifs, Addrs: addrs})
	if err != nil {
		return nil, err
	}
	defer reg.Shutdown()
	// Say the window is open once masters can find it: a master that
	// looked while it was still probing (a second) would find nothing.
	select {
	case <-reg.Announced():
	case <-ctx.Done():
		return nil, fmt.Errorf("announce the pairing window: %w", context.Cause(ctx))
	}
	// The window lasts what it says from now.
	ctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	fmt.Fprintf(out, "pairing window open for %s on %s (port %d); this machine's Guix key is %s\n",
		window.Round(time.Second), joinAddrs(addrs), port, fp)
	fmt.Fprintf(out, "on the master, run: sudo guix-offload pair %s\n", p.Instance)
	return pairing.Serve(ctx, onlyTo{ln, served}, pairing.Options{Self: self, Confirm: o.Prompt.Confirm, Apply: machine.Apply})
}

// onlyTo is a listener that hands over the connections made to one of
// addrs (the addresses of the interfaces the window is announced on) and
// closes any other at once: the window's one attempt is for the LAN it
// is announced on, not for whoever reaches this machine from another
// network it is on.
type onlyTo struct {
	net.Listener
	addrs []netip.Addr
}

func (l onlyTo) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil && slices.Contains(l.addrs, ap.Addr().WithZone("").Unmap()) {
			return c, nil
		}
		c.Close()
	}
}

// PairACL is the ACL file pairing changes with o.
func (a *Agent) PairACL(o PairOptions) string { return o.Machine(a.Config.User, nil).ACL }
