package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Merge returns a [Source] that runs every one of sources (multicast DNS
// and wide-area DNS-SD, say) and reports a machine that several of them
// see once: the announcement with the newest signature time (an
// unusable one only when no source has a usable one), with Source
// naming every source that sees it ("mdns:eth0,dns:builders.example.org").
// Instances are told apart by name ([Announcement.ListKey]), as on one
// LAN. When the sources disagree about a name's machine (another host
// or signing key: someone on the LAN claims the name of a machine the
// zone has, say), the one trust accepts wins whatever its time, so a
// stranger cannot hide a trusted machine behind a fresher announcement
// (trust nil: the newest wins). Run ends with the first error of a
// source (a bad interface name, say): the others stop too.
func Merge(trust Policy, sources ...Source) Source {
	if len(sources) == 1 {
		return sources[0]
	}
	return &merged{sources: sources, trust: trust}
}

type merged struct {
	sources []Source
	trust   Policy
}

type taggedEvent struct {
	src int
	ev  Event
}

type mergedInstance struct {
	per  map[int]*Announcement
	sent *Announcement // what was last reported, nil when nothing
}

func (m *merged) Run(ctx context.Context, events chan<- Event) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := make(chan taggedEvent)
	errc := make(chan error, len(m.sources))
	for i, s := range m.sources {
		raw := make(chan Event)
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					errc <- fmt.Errorf("internal error: %v", v)
				}
			}()
			errc <- s.Run(ctx, raw)
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case ev := <-raw:
					select {
					case in <- taggedEvent{i, ev}:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	known := make(map[string]*mergedInstance)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("source stopped")
			}
			return err
		case t := <-in:
			a := t.ev.Announcement
			key := a.ListKey()
			mi := known[key]
			if mi == nil {
				mi = &mergedInstance{per: map[int]*Announcement{}}
				known[key] = mi
			}
			if t.ev.Kind == Remove {
				delete(mi.per, t.src)
			} else {
				mi.per[t.src] = a
			}
			for _, ev := range mi.events(m.accepts) {
				select {
				case events <- ev:
				case <-ctx.Done():
					return nil
				}
			}
			if len(mi.per) == 0 {
				delete(known, key)
			}
		}
	}
}

// accepts says whether m's policy accepts a (judged on a copy: the
// browser judges what is reported).
func (m *merged) accepts(a *Announcement) (ok bool) {
	if m.trust == nil {
		return true
	}
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	b := *a
	ok, _ = m.trust.Judge(&b, time.Now())
	return ok
}

// events returns what to report after a change of mi.per; accepts
// judges candidates that disagree about the machine.
func (mi *mergedInstance) events(accepts func(*Announcement) bool) []Event {
	if len(mi.per) == 0 {
		if mi.sent == nil {
			return nil
		}
		gone := mi.sent
		mi.sent = nil
		return []Event{{Kind: Remove, Announcement: gone}}
	}
	srcs := make([]int, 0, len(mi.per))
	for i := range mi.per {
		srcs = append(srcs, i)
	}
	slices.Sort(srcs)
	disagree := false
	for _, i := range srcs {
		a, b := mi.per[i], mi.per[srcs[0]]
		if a.HostKey != b.HostKey || a.SigningKey != b.SigningKey {
			disagree = true
		}
	}
	trusted := map[int]bool{}
	if disagree {
		for _, i := range srcs {
			trusted[i] = mi.per[i].Ignored == "" && accepts(mi.per[i])
		}
	}
	var best *Announcement
	bestTrusted := false
	var names []string
	for _, i := range srcs {
		a := mi.per[i]
		for _, n := range strings.Split(a.Source, ",") {
			if n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		switch {
		case best == nil:
			best, bestTrusted = a, trusted[i]
		case (best.Ignored != "") != (a.Ignored != ""):
			if best.Ignored != "" {
				best, bestTrusted = a, trusted[i]
			}
		case bestTrusted != trusted[i]:
			if trusted[i] {
				best, bestTrusted = a, true
			}
		case a.Time.After(best.Time):
			best, bestTrusted = a, trusted[i]
		}
	}
	b := *best
	b.Source = strings.Join(names, ",")
	prev := mi.sent
	mi.sent = &b
	switch {
	case b.Ignored != "":
		var evs []Event
		if prev != nil && prev.Ignored == "" {
			evs = append(evs, Event{Kind: Remove, Announcement: prev})
		}
		return append(evs, Event{Kind: Ignore, Announcement: &b, Err: errors.New(b.Ignored)})
	case prev == nil || prev.Ignored != "":
		return []Event{{Kind: Add, Announcement: &b}}
	}
	return []Event{{Kind: Update, Announcement: &b}}
}
