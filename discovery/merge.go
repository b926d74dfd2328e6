package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Merge returns a [Source] that runs every one of sources (multicast DNS
// and wide-area DNS-SD, say) and reports a machine that several of them
// see once: the announcement with the newest signature time (an
// unusable one only when no source has a usable one), with Source
// naming every source that sees it ("mdns:eth0,dns:builders.example.org").
// Instances are told apart by name, as on one LAN. Run ends with the
// first error of a source (a bad interface name, say): the others stop
// too.
func Merge(sources ...Source) Source {
	if len(sources) == 1 {
		return sources[0]
	}
	return &merged{sources: sources}
}

type merged struct {
	sources []Source
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
			key := strings.ToLower(a.Instance)
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
			for _, ev := range mi.events() {
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

// events returns what to report after a change of mi.per.
func (mi *mergedInstance) events() []Event {
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
	var best *Announcement
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
			best = a
		case (best.Ignored != "") != (a.Ignored != ""):
			if best.Ignored != "" {
				best = a
			}
		case a.Time.After(best.Time):
			best = a
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
