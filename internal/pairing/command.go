package pairing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/guix-offload/guix-offload/internal/hint"
)

// MasterPairing is `guix-offload pair` on a master: find the machine
// waiting to pair, run the protocol with it, make the master's changes.
type MasterPairing struct {
	// Master makes the file changes; its OwnKey is this master's Guix key.
	Master Master
	// Name is this master's name, as the machine records it.
	Name string
	// Interfaces to look for pairing windows on (empty: all).
	Interfaces []string
	// Address, when set (IP:PORT), is where the machine's window is,
	// for networks where multicast DNS does not reach it; the code
	// authenticates the machine all the same.
	Address string
	// Quiet is how long to wait for more answers when browsing.
	Quiet time.Duration
	// Timeout bounds the whole pairing (the machine's window ends
	// earlier anyway).
	Timeout time.Duration
	// Prompt asks the operator.
	Prompt Prompt
	// Out receives what is happening.
	Out io.Writer
}

// Pair pairs with the machine named name (empty: the only one waiting).
// On any failure nothing is left changed on this side.
func (p *MasterPairing) Pair(ctx context.Context, name string) (*Result, error) {
	if p.Master.OwnKey == nil {
		return nil, hint.With(errors.New("this master has no Guix signing key"), "run 'sudo guix archive --generate-key' first")
	}
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	}
	quiet := p.Quiet
	if quiet <= 0 {
		quiet = 2 * time.Second
	}
	var w Window
	if p.Address != "" {
		ap, err := netip.ParseAddrPort(p.Address)
		if err != nil {
			return nil, fmt.Errorf("--address %q: want IP:PORT (the port the machine's pair command printed)", p.Address)
		}
		w = Window{Name: p.Address, Addresses: []netip.Addr{ap.Addr()}, Port: int(ap.Port())}
	} else {
		ws, err := FindWindows(ctx, p.Interfaces, quiet)
		if err != nil {
			return nil, err
		}
		WriteWindows(p.Out, ws)
		if w, err = Pick(ws, name); err != nil {
			return nil, hint.With(err, "run 'sudo guix-offload-agent pair' on the build machine, then this again")
		}
	}
	pub, undoKey, err := p.Master.EnsureSSHKey()
	if err != nil {
		return nil, err
	}
	res, err := p.pair(ctx, w, pub)
	if err != nil {
		return nil, errors.Join(err, undoKey())
	}
	return res, nil
}

func (p *MasterPairing) pair(ctx context.Context, w Window, pub string) (*Result, error) {
	self := Identity{Role: RoleMaster, Name: p.Name, SigningKey: string(p.Master.OwnKey.MarshalSexp()), SSHKey: pub}
	if err := self.Validate(); err != nil {
		return nil, hint.With(err, "give this master a name with --name")
	}
	c, err := Dial(ctx, w)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(p.Out, "pairing with %s (%s)\n", w.Name, c.RemoteAddr())
	return Initiate(ctx, c, Options{
		Self: self,
		Check: func(peer *Identity) error {
			k, err := peer.Guix()
			if err != nil {
				return err
			}
			if w.Fingerprint != "" && k.Fingerprint() != w.Fingerprint {
				return fmt.Errorf("%s answered with Guix key %s, not the %s it announced: %w", w.Name, k.Fingerprint(), w.Fingerprint, ErrTampered)
			}
			return nil
		},
		Confirm: p.Prompt.Confirm,
		Apply:   p.Master.Apply,
	})
}

// WriteWindows lists machines waiting to pair.
func WriteWindows(w io.Writer, ws []Window) {
	if len(ws) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WAITING TO PAIR\tADDRESSES\tGUIX KEY")
	for _, x := range ws {
		addrs := make([]string, len(x.Addresses))
		for i, a := range x.Addresses {
			addrs[i] = a.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", x.Name, strings.Join(addrs, ","), x.Fingerprint)
	}
	tw.Flush()
}

// WriteRecords lists what is paired, for `pair --list`.
func WriteRecords(w io.Writer, recs []*Record) {
	if len(recs) == 0 {
		fmt.Fprintln(w, "nothing is paired")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tGUIX KEY\tLOGIN\tPAIRED")
	for _, r := range recs {
		fp := "?"
		if k, err := r.Peer.Guix(); err == nil {
			fp = k.Fingerprint()
		}
		login := "-"
		if r.Peer.Role == RoleMachine {
			login = fmt.Sprintf("%s, port %d", r.Peer.User, r.Peer.Port)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Peer.Name, r.Peer.Role, fp, login, r.Paired.Local().Format(time.DateTime))
	}
	tw.Flush()
}

// HostName is this host's name without domain, for an [Identity].
func HostName() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", err
	}
	h, _, _ = strings.Cut(h, ".")
	return h, nil
}

// Explain adds what the user can do to the errors a failed pairing ends
// with; retry says how to try again.
func Explain(err error, retry string) error {
	switch {
	case errors.Is(err, ErrRefused), errors.Is(err, ErrPeerRefused), errors.Is(err, context.DeadlineExceeded):
		return hint.With(fmt.Errorf("%w; nothing was changed", err), retry)
	case errors.Is(err, ErrTampered):
		return hint.With(fmt.Errorf("%w; nothing was changed", err),
			"something on the network may be interfering; "+retry)
	}
	return err
}
