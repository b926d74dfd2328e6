package hook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/pki"
)

// discovered returns the trusted machines of the discovery cache, or of a
// live browse bounded by cfg.BrowseTimeout when the cache is missing or
// stale (done at most once per process: a hook serves many requests).
// Problems are notes, not errors: static machines still work.
func (d *defaultSources) discovered(ctx context.Context, cfg *Config, now time.Time) ([]*Machine, []string) {
	var notes []string
	if cfg.Cache != "" {
		aclID, _ := statID(cfg.ACL)
		salt := fmt.Sprint(cfg.Trust, "\x00", cfg.User, "\x00", cfg.PrivateKey, "\x00", d.env("HOME"), "\x00", aclID)
		var dropped []string
		ms, updated, err := d.cached(cfg, "discovery", cfg.Cache, salt, func() ([]*Machine, time.Time, error) {
			snap, err := discovery.ReadSnapshot(cfg.Cache)
			if err != nil {
				return nil, time.Time{}, err
			}
			var trusted []*discovery.Announcement
			trusted, dropped = agreeWithPolicy(snap.Trusted(), cfg)
			return FromAnnouncements(trusted, cfg, d.env), snap.Updated, nil
		})
		for _, why := range dropped {
			notes = append(notes, note("warning: discovery cache %s: %s", cfg.Cache, why))
		}
		switch {
		case err == nil && !(&discovery.Snapshot{Updated: updated}).Stale(now):
			return ms, notes
		case err == nil:
			notes = append(notes, note("warning: discovery cache %s is stale (updated %s); is 'guix-offload discover --watch --cache %s' running?",
				cfg.Cache, updated.Local().Format(time.DateTime), cfg.Cache))
		case errors.Is(err, os.ErrNotExist):
			notes = append(notes, note("warning: no discovery cache %s; run 'guix-offload discover --watch --cache %s' as a service", cfg.Cache, cfg.Cache))
		default:
			notes = append(notes, note("warning: %v", err))
		}
	}
	if cfg.BrowseTimeout.D() <= 0 {
		return nil, notes
	}
	if d.browsedOnce {
		return d.browsed, nil
	}
	// A recent browse by this or another hook process is as good as the
	// cache: browse at most once per discovery.SnapshotStale.
	own := filepath.Join(cfg.StateDirectory, "cache", "browse.json")
	salt := cfg.Trust + "\x00" + cfg.User + "\x00" + cfg.PrivateKey + "\x00" + d.env("HOME")
	ms, updated, err := d.cached(cfg, "browse", own, salt, func() ([]*Machine, time.Time, error) {
		snap, err := discovery.ReadSnapshot(own)
		if err != nil {
			return nil, time.Time{}, err
		}
		return FromAnnouncements(snap.Trusted(), cfg, d.env), snap.Updated, nil
	})
	if err == nil && !(&discovery.Snapshot{Updated: updated}).Stale(now) {
		d.browsed, d.browsedOnce = ms, true
		return ms, nil
	}
	d.browsedOnce = true
	policy, err := discovery.ParsePolicy(cfg.Trust, cfg.ACL, cfg.Pins)
	if err != nil {
		return nil, append(notes, note("warning: discovery off: %v", err))
	}
	bctx, cancel := context.WithTimeout(ctx, cfg.BrowseTimeout.D())
	defer cancel()
	found, err := discovery.Lookup(bctx, discovery.BrowseOptions{Trust: policy}, cfg.BrowseTimeout.D()/2)
	if err != nil {
		return nil, append(notes, note("warning: browse for build machines: %v", err))
	}
	var trusted []*discovery.Announcement
	for _, a := range found {
		if a.Trusted && a.Ignored == "" {
			trusted = append(trusted, a)
		}
	}
	notes = append(notes, note("browsed the LAN for %s: %d trusted build machines of %d", cfg.BrowseTimeout.D(), len(trusted), len(found)))
	if err := discovery.WriteSnapshot(own, &discovery.Snapshot{Updated: now.UTC(), Machines: found}); err != nil {
		notes = append(notes, note("warning: %v", err))
	}
	d.browsed = FromAnnouncements(trusted, cfg, d.env)
	return d.browsed, notes
}

// agreeWithPolicy keeps the announcements the snapshot's writer trusted
// that our own policy would trust too, as far as the snapshot lets us
// tell: with trust "acl", the announcement must name a signing key that
// our ACL authorizes (the writer checked the signature and its time; the
// snapshot does not carry the signature). So a `discover --watch` run
// with a looser policy than the hook's cannot widen what the hook uses.
func agreeWithPolicy(as []*discovery.Announcement, cfg *Config) (kept []*discovery.Announcement, dropped []string) {
	if cfg.Trust != "acl" {
		return as, nil
	}
	var acl *pki.ACL
	for _, a := range as {
		if a.SigningKey == "" {
			dropped = append(dropped, fmt.Sprintf("ignoring '%s': unsigned, and trust is \"acl\"", a.Instance))
			continue
		}
		if acl == nil {
			var err error
			if acl, err = pki.ReadACL(cfg.ACL); err != nil {
				return nil, append(dropped, fmt.Sprintf("ignoring every discovered machine: %v", err))
			}
		}
		key, err := pki.ParseCompactPublicKey(a.SigningKey)
		if err != nil || !acl.Authorizes(key) {
			dropped = append(dropped, fmt.Sprintf("ignoring '%s': its signing key is not in %s", a.Instance, cfg.ACL))
			continue
		}
		kept = append(kept, a)
	}
	return kept, dropped
}

// FromAnnouncements converts trusted announcements. The user is the
// announced one, else cfg.User; the private key is cfg.PrivateKey, else
// $HOME/.ssh/id_rsa. Announcements without a host key are dropped: the
// host key is what SSH pins.
func FromAnnouncements(as []*discovery.Announcement, cfg *Config, env func(string) string) []*Machine {
	out := make([]*Machine, 0, len(as))
	for _, a := range as {
		if a.HostKey == "" {
			continue
		}
		m := &Machine{
			Name: a.Name, Port: a.Port, User: a.User, PrivateKey: cfg.PrivateKey, HostKey: a.HostKey,
			Systems: a.Systems, Features: a.Features, ParallelBuilds: a.ParallelBuilds, Speed: a.Speed,
			OverloadThreshold: a.OverloadThreshold, Load: a.Load, FreeDisk: a.FreeDisk,
			Origin: OriginDiscovered, Instance: a.Instance,
		}
		if m.Name == "" && len(a.Addresses) > 0 {
			m.Name = a.Addresses[0].String()
		}
		if m.User == "" {
			m.User = cfg.User
		}
		if m.PrivateKey == "" {
			m.PrivateKey = defaultPrivateKey(env)
		}
		if m.Name == "" || m.User == "" {
			continue
		}
		out = append(out, m)
	}
	return out
}
