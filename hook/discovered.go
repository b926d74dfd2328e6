package hook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/scm"
)

// discovered returns the trusted machines of the discovery cache, or of a
// live browse bounded by cfg.BrowseTimeout when the cache is missing or
// stale (done at most once per process: a hook serves many requests).
// Problems are notes, not errors: static machines still work.
func (d *defaultSources) discovered(ctx context.Context, cfg *Config, now time.Time) ([]*scm.Machine, []string) {
	var notes []string
	if cfg.Cache != "" {
		aclID, _ := statID(cfg.ACL)
		salt := fmt.Sprint(cfg.Trust, "\x00", cfg.User, "\x00", cfg.PrivateKey, "\x00", d.env("HOME"), "\x00", aclID)
		var dropped []string
		ms, updated, err := d.cached(cfg, "discovery", cfg.Cache, salt, func() ([]*scm.Machine, time.Time, error) {
			snap, err := discovery.ReadSnapshot(cfg.Cache)
			if err != nil {
				return nil, time.Time{}, err
			}
			var trusted []*discovery.Announcement
			trusted, dropped = d.trustedOf(cfg, snap)
			return machinesOf(trusted, cfg, d.env), snap.Updated, nil
		})
		for _, why := range dropped {
			notes = append(notes, note("warning: discovery cache %s: %s", cfg.Cache, why))
		}
		switch {
		case err == nil && !(&discovery.Snapshot{Updated: updated}).Stale(now):
			ms, stale := freshDiscovered(ms, cfg, now)
			return ms, append(notes, stale...)
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
		ms, stale := freshDiscovered(d.browsed, cfg, now)
		return ms, stale
	}
	// A recent browse by this or another hook process is as good as the
	// cache: browse at most once per discovery.SnapshotStale.
	own := filepath.Join(cfg.StateDirectory, "cache", "browse.json")
	aclID, _ := statID(cfg.ACL)
	salt := fmt.Sprint(cfg.Trust, "\x00", cfg.User, "\x00", cfg.PrivateKey, "\x00", d.env("HOME"), "\x00", aclID)
	ms, updated, err := d.cached(cfg, "browse", own, salt, func() ([]*scm.Machine, time.Time, error) {
		snap, err := discovery.ReadSnapshot(own)
		if err != nil {
			return nil, time.Time{}, err
		}
		trusted, _ := d.trustedOf(cfg, snap)
		return machinesOf(trusted, cfg, d.env), snap.Updated, nil
	})
	if err == nil && !(&discovery.Snapshot{Updated: updated}).Stale(now) {
		d.browsed, d.browsedOnce = ms, true
		ms, stale := freshDiscovered(ms, cfg, now)
		return ms, stale
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
	d.browsed = machinesOf(trusted, cfg, d.env)
	return d.browsed, notes
}

// machinesOf returns the machines of trusted announcements
// ([discovery.Announcement.AsMachine]): the user is the announced one,
// else cfg.User; the private key is cfg.PrivateKey, else
// $HOME/.ssh/id_rsa.
func machinesOf(as []*discovery.Announcement, cfg *Config, env func(string) string) []*scm.Machine {
	key := cfg.PrivateKey
	if key == "" {
		key = defaultPrivateKey(env)
	}
	out := make([]*scm.Machine, 0, len(as))
	for _, a := range as {
		if m, ok := a.AsMachine(cfg.User, key); ok {
			out = append(out, m)
		}
	}
	return out
}
