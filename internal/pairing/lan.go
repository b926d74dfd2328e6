package pairing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
)

// ServiceType is the DNS-SD type of an open pairing window: instance =
// the machine's name, SRV port = the TCP port the pairing protocol is
// served on, TXT "txtvers=1" and "fp=" the fingerprint of its Guix key.
// Nothing in it is trusted: it only says where to connect, and the code
// authenticates what comes back.
const ServiceType = "_guix-offload-pair._tcp"

// DefaultWindow is how long a pairing window stays open.
const DefaultWindow = 5 * time.Minute

// WindowTXT is the TXT record of a pairing window for a machine whose
// Guix key has fingerprint fp.
func WindowTXT(fp string) []string { return []string{"txtvers=1", "fp=" + fp} }

// Window is a machine waiting to pair, as found on the LAN.
type Window struct {
	Name        string
	Addresses   []netip.Addr
	Port        int
	Fingerprint string
}

// FindWindows browses the LAN for open pairing windows until answers
// stop arriving for quiet, on interfaces (empty: all).
func FindWindows(ctx context.Context, interfaces []string, quiet time.Duration) ([]Window, error) {
	as, err := discovery.Lookup(ctx, discovery.BrowseOptions{
		Source: &discovery.MDNS{Interfaces: interfaces, Service: ServiceType},
		Trust:  discovery.AnyPolicy{},
	}, quiet)
	if err != nil {
		return nil, fmt.Errorf("look for machines waiting to pair: %w", err)
	}
	var out []Window
	for _, a := range as {
		w := Window{Name: a.Instance, Addresses: a.Addresses, Port: a.Port}
		for _, kv := range a.Record() {
			if v, ok := strings.CutPrefix(kv, "fp="); ok {
				w.Fingerprint = printable(v)
			}
		}
		if len(w.Addresses) > 0 && w.Port > 0 && nameRE.MatchString(w.Name) {
			out = append(out, w)
		}
	}
	return out, nil
}

// Pick chooses the window named name (case-insensitive), or the only one
// when name is empty.
func Pick(ws []Window, name string) (Window, error) {
	if len(ws) == 0 {
		return Window{}, errors.New("no machine is waiting to pair")
	}
	if name == "" {
		if len(ws) > 1 {
			names := make([]string, len(ws))
			for i, w := range ws {
				names[i] = w.Name
			}
			return Window{}, fmt.Errorf("%d machines are waiting to pair (%s): name one", len(ws), strings.Join(names, ", "))
		}
		return ws[0], nil
	}
	for _, w := range ws {
		if strings.EqualFold(w.Name, name) {
			return w, nil
		}
	}
	return Window{}, fmt.Errorf("no machine named %q is waiting to pair", name)
}

// Dial connects to a window, trying its addresses in order.
func Dial(ctx context.Context, w Window) (net.Conn, error) {
	var errs []error
	d := net.Dialer{Timeout: 5 * time.Second}
	for _, a := range w.Addresses {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.String(), strconv.Itoa(w.Port)))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("connect to %s: %w", w.Name, errors.Join(errs...))
}

// Serve answers one pairing attempt on ln and closes ln: a window allows
// one attempt, whatever its outcome. It returns when that attempt ends
// or ctx is done (the window's end).
func Serve(ctx context.Context, ln net.Listener, o Options) (*Result, error) {
	stop := closeOnDone(ctx, ln)
	defer stop()
	c, err := ln.Accept()
	ln.Close()
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("wait for a master: %w", err))
	}
	return Respond(ctx, c, o)
}
