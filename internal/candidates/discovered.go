package candidates

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/scm"
)

// discovered returns the trusted machines of the discovery snapshot, or
// of a live browse bounded by o.BrowseTimeout when the snapshot is missing
// or stale (done at most once per process: a hook serves many requests).
// Problems are notes, not errors: static machines still work.
func (l *Loader) discovered(ctx context.Context, o *Options, now time.Time) ([]*scm.Machine, []string) {
	var notes []string
	if o.Snapshot != "" {
		aclID, _ := statID(o.ACL)
		salt := fmt.Sprint(o.Trust, "\x00", o.User, "\x00", o.PrivateKey, "\x00", o.env("HOME"), "\x00", aclID)
		var dropped []string
		ms, updated, err := l.remembered(o, "discovery", o.Snapshot, salt, func() ([]*scm.Machine, time.Time, error) {
			snap, err := discovery.ReadSnapshot(o.Snapshot)
			if err != nil {
				return nil, time.Time{}, err
			}
			var trusted []*discovery.Announcement
			trusted, dropped = l.trustedOf(o, snap)
			return machinesOf(trusted, o), snap.Updated, nil
		})
		for _, why := range dropped {
			notes = append(notes, note("warning: discovery snapshot %s: %s", o.Snapshot, why))
		}
		switch {
		case err == nil && !(&discovery.Snapshot{Updated: updated}).Stale(now):
			ms, stale := freshDiscovered(ms, o, now)
			return ms, append(notes, stale...)
		case err == nil:
			notes = append(notes, note("warning: discovery snapshot %s is stale (updated %s); is 'guix-offload discover --watch --cache %s' running?",
				o.Snapshot, updated.Local().Format(time.DateTime), o.Snapshot))
		case errors.Is(err, os.ErrNotExist):
			notes = append(notes, note("warning: no discovery snapshot %s; run 'guix-offload discover --watch --cache %s' as a service", o.Snapshot, o.Snapshot))
		default:
			notes = append(notes, note("warning: %v", err))
		}
	}
	if o.BrowseTimeout <= 0 {
		return nil, notes
	}
	if l.browsedOnce {
		ms, stale := freshDiscovered(l.browsed, o, now)
		return ms, stale
	}
	// A recent browse by this or another hook process is as good as the
	// snapshot: browse at most once per discovery.SnapshotStale.
	own := keptFile(o, "browse.json")
	aclID, _ := statID(o.ACL)
	salt := fmt.Sprint(o.Trust, "\x00", o.User, "\x00", o.PrivateKey, "\x00", o.env("HOME"), "\x00", aclID)
	ms, updated, err := l.remembered(o, "browse", own, salt, func() ([]*scm.Machine, time.Time, error) {
		snap, err := discovery.ReadSnapshot(own)
		if err != nil {
			return nil, time.Time{}, err
		}
		trusted, _ := l.trustedOf(o, snap)
		return machinesOf(trusted, o), snap.Updated, nil
	})
	if err == nil && !(&discovery.Snapshot{Updated: updated}).Stale(now) {
		l.browsed, l.browsedOnce = ms, true
		ms, stale := freshDiscovered(ms, o, now)
		return ms, stale
	}
	l.browsedOnce = true
	policy, err := discovery.ParsePolicy(o.Trust, o.ACL, o.Pins)
	if err != nil {
		return nil, append(notes, note("warning: discovery off: %v", err))
	}
	bctx, cancel := context.WithTimeout(ctx, o.BrowseTimeout)
	defer cancel()
	found, err := discovery.Lookup(bctx, discovery.BrowseOptions{Trust: policy,
		Domains: o.Domains, NoMulticast: !o.MDNS, ResolvConf: o.ResolvConf}, o.BrowseTimeout/2)
	if err != nil {
		return nil, append(notes, note("warning: browse for build machines: %v", err))
	}
	var trusted []*discovery.Announcement
	for _, a := range found {
		if a.Trusted && a.Ignored == "" {
			trusted = append(trusted, a)
		}
	}
	notes = append(notes, note("browsed the LAN for %s: %d trusted build machines of %d", o.BrowseTimeout, len(trusted), len(found)))
	if err := discovery.WriteSnapshot(own, &discovery.Snapshot{Updated: now.UTC(), Machines: found}); err != nil {
		notes = append(notes, note("warning: %v", err))
	}
	l.browsed = machinesOf(trusted, o)
	return l.browsed, notes
}

// machinesOf returns the machines of trusted announcements
// ([discovery.Announcement.AsMachine]): the user is the announced one,
// else o.User; the private key is o.PrivateKey, else
// $HOME/.ssh/id_rsa.
func machinesOf(as []*discovery.Announcement, o *Options) []*scm.Machine {
	key := o.PrivateKey
	if key == "" {
		key = scm.PrivateKeyFile(o.env("HOME"))
	}
	out := make([]*scm.Machine, 0, len(as))
	for _, a := range as {
		if m, ok := a.AsMachine(o.User, key); ok {
			out = append(out, m)
		}
	}
	return out
}
