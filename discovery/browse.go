package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// EventKind says what happened to an announcement.
type EventKind int

const (
	// Add: an instance appeared (or became usable again).
	Add EventKind = iota + 1
	// Update: its TXT record, port, addresses or trust changed.
	Update
	// Remove: it said goodbye, expired, or turned malformed (then an
	// Ignore follows). An ignored instance that goes is removed too.
	Remove
	// Ignore: its TXT record is malformed or oversized; the
	// announcement's Ignored field (and Event.Err) says which field.
	Ignore
)

func (k EventKind) String() string {
	switch k {
	case Add:
		return "add"
	case Update:
		return "update"
	case Remove:
		return "remove"
	case Ignore:
		return "ignore"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// MarshalText writes the kind as "add", "update", "remove" or "ignore".
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Event is one change seen by a [Source] or [Browse].
type Event struct {
	Kind         EventKind
	Announcement *Announcement
	// Err is the reason for an Ignore event.
	Err error
}

// Source is where announcements come from. [MDNS] browses the LAN; a
// unicast DNS zone (RFC 6763 §11) or a static file can implement it too.
type Source interface {
	// Run blocks until ctx is done, sending an Event for each
	// announcement that appears, changes or goes, and returns nil then.
	// It returns an error when it cannot start.
	Run(ctx context.Context, events chan<- Event) error
}

// BrowseOptions configures [Browse] and [Lookup].
type BrowseOptions struct {
	// Interfaces to browse on (for the default multicast DNS source);
	// empty means all multicast-capable ones.
	Interfaces []string
	// Domains are the wide-area DNS-SD domains browsed beside the LAN
	// ([Unicast]); empty means the browse domains the network offers.
	Domains []string
	// NoMulticast leaves multicast DNS out: only wide-area DNS-SD is
	// browsed.
	NoMulticast bool
	// ResolvConf is the resolver configuration for wide-area DNS-SD;
	// "" means [DefaultResolvConf].
	ResolvConf string
	// Source overrides the default sources (multicast DNS and
	// wide-area DNS-SD).
	Source Source
	// Trust judges every announcement; nil rejects all of them (with
	// the reason "no trust policy").
	Trust Policy
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Recheck is how often the trust of known announcements is judged
	// again (a signature time goes stale); 0 means 30 seconds.
	Recheck time.Duration

	// onListed, when set and the source is wide-area DNS-SD alone, is
	// called by Browse once every domain was listed (its events sent):
	// a listing from DNS is complete, [Lookup] need not wait for quiet.
	onListed func()
}

// listedKind is the event a [Unicast] source with markListed sends once
// it has listed every domain; [Browse] does not pass it on.
const listedKind EventKind = -1

func (o *BrowseOptions) source() Source {
	if o.Source != nil {
		return o.Source
	}
	wide := &Unicast{Domains: o.Domains, ResolvConf: o.ResolvConf, Logger: o.Logger, Now: o.Now, Trust: o.Trust}
	if o.NoMulticast {
		wide.markListed = o.onListed != nil
		return wide
	}
	return Merge(o.Trust, &MDNS{Interfaces: o.Interfaces, Logger: o.Logger, Now: o.Now, Trust: o.Trust}, wide)
}

func (o *BrowseOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *BrowseOptions) judge(a *Announcement) {
	if a.Ignored != "" {
		a.Trusted, a.TrustReason = false, "ignored: "+a.Ignored
		return
	}
	if o.Trust == nil {
		a.Trusted, a.TrustReason = false, "no trust policy"
		return
	}
	// The policy reads what anyone on the LAN sent (a signature, a host
	// key): a bug it trips must reject the one machine, not end the
	// process.
	defer func() {
		if v := recover(); v != nil {
			a.Trusted, a.TrustReason = false, fmt.Sprintf("internal error judging it: %v", v)
			o.logger().Warn(fmt.Sprintf("discovery: rejecting %q: internal error judging it: %v", a.Instance, v))
		}
	}()
	a.Trusted, a.TrustReason = o.Trust.Judge(a, o.now())
	if a.Impostor {
		// The source found that the policy accepts another
		// announcement of this name: this one is not that machine,
		// whatever it claims.
		a.Trusted = false
		if !strings.HasPrefix(a.TrustReason, ImpostorReason) {
			a.TrustReason = ImpostorReason + ": " + a.TrustReason
		}
	}
}

func (o *BrowseOptions) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// recovered turns a panic value v (nil: none) of a goroutine that
// browses into its error, after logging one warning without the stack:
// a bug that a packet from the LAN trips must not kill the process (the
// hook has yet to answer guix-daemon).
func (o *BrowseOptions) recovered(v any) error {
	err := fmt.Errorf("browse: internal error: %v", v)
	o.logger().Warn("discovery: " + err.Error())
	return err
}

// goRecover runs f in a goroutine and delivers its error on the returned
// channel — or, should f panic, the panic as an error, so that no packet
// parsed in discovery can take the process (the hook) down with it.
func (o *BrowseOptions) goRecover(f func() error) <-chan error {
	errc := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				errc <- o.recovered(v)
			}
		}()
		errc <- f()
	}()
	return errc
}

// eventBuffer is how many events a source may get ahead of Browse, and
// Browse ahead of Lookup: a zone transfer hands over a thousand at once.
const eventBuffer = 64

// Browse reports announcements as they appear, change and go, each
// judged by opts.Trust (Trusted and TrustReason are set), until ctx is
// done; it returns nil then. It also sends an Update when the judgment
// of a known announcement changes (its signature time went stale, say).
// It never closes events, and gives up sending when ctx is done. A
// policy that panics on an announcement rejects it (TrustReason says
// so); a source that panics ends Browse with an error, not the process.
func Browse(ctx context.Context, opts BrowseOptions, events chan<- Event) error {
	// Deferred calls run last first: cancel, then wait for the source.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	raw := make(chan Event, eventBuffer) // in order, as unbuffered
	wg.Add(1)
	errc := opts.goRecover(func() error {
		defer wg.Done()
		return opts.source().Run(ctx, raw)
	})

	recheck := opts.Recheck
	if recheck <= 0 {
		recheck = 30 * time.Second
	}
	ticker := time.NewTicker(recheck)
	defer ticker.Stop()
	known := make(map[string]*Announcement)
	send := func(ev Event) bool {
		select {
		case events <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
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
		case ev := <-raw:
			if ev.Kind == listedKind {
				if opts.onListed != nil {
					opts.onListed()
				}
				continue
			}
			a := ev.Announcement
			key := a.ListKey()
			switch ev.Kind {
			case Add, Update:
				opts.judge(a)
				known[key] = a
			case Remove:
				if k, ok := known[key]; ok {
					a = k
				}
				delete(known, key)
				ev.Announcement = a
			case Ignore:
				opts.judge(a)
			}
			if !send(ev) {
				return nil
			}
		case <-ticker.C:
			keys := make([]string, 0, len(known))
			for k := range known {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				a := known[k]
				b := *a
				opts.judge(&b)
				if b.Trusted != a.Trusted || b.TrustReason != a.TrustReason {
					known[k] = &b
					if !send(Event{Kind: Update, Announcement: &b}) {
						return nil
					}
				}
			}
		}
	}
}

// Lookup browses until answers stop arriving for quiet (at least quiet
// after it starts), or until ctx is done, and returns what it found,
// judged by opts.Trust and sorted by instance, ignored ones included.
// With wide-area DNS-SD alone (opts.NoMulticast, no opts.Source), quiet
// does not apply: it returns as soon as every domain was listed once
// (DNS gives a complete answer, there is nothing to wait for; a listing
// of a thousand machines checked at once may well take longer than
// quiet before its first answer).
// A deadline of ctx that passes is not an error: Lookup returns what it
// has then. Cancellation of ctx returns ctx.Err().
func Lookup(ctx context.Context, opts BrowseOptions, quiet time.Duration) ([]*Announcement, error) {
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Buffered: a thousand machines listed at once cost a goroutine
	// wake-up per batch, not per machine. Browse calls onListed after
	// its last send of the listing, which is then received or in the
	// buffer: record drains the buffer before Lookup returns.
	events := make(chan Event, eventBuffer)
	listed := make(chan struct{})
	var once sync.Once
	opts.onListed = func() { once.Do(func() { close(listed) }) }
	errc := opts.goRecover(func() error { return Browse(bctx, opts, events) })

	found := make(map[string]*Announcement)
	timer := time.NewTimer(quiet)
	defer timer.Stop()
	quietC := timer.C
	if opts.NoMulticast && opts.Source == nil {
		quietC = nil // the listed signal ends it
	}
	record := func(ev Event) {
		key := ev.Announcement.ListKey()
		if ev.Kind == Remove {
			delete(found, key)
		} else {
			found[key] = ev.Announcement
		}
	}
	result := func() []*Announcement {
		for drained := false; !drained; {
			select {
			case ev := <-events:
				record(ev)
			default:
				drained = true
			}
		}
		out := make([]*Announcement, 0, len(found))
		for _, a := range found {
			out = append(out, a)
		}
		slices.SortFunc(out, func(a, b *Announcement) int { return strings.Compare(a.ListKey(), b.ListKey()) })
		return out
	}
	for {
		select {
		case ev := <-events:
			record(ev)
			timer.Reset(quiet)
		case <-listed:
			cancel()
			<-errc
			return result(), nil
		case <-quietC:
			cancel()
			<-errc
			return result(), nil
		case err := <-errc:
			if err != nil {
				return nil, err
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return result(), nil
			}
			return nil, ctx.Err()
		}
	}
}
