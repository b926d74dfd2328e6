package discovery

import (
	"context"
	"testing"
	"time"
)

// chanSource is a Source fed by a test.
type chanSource chan Event

func (c chanSource) Run(ctx context.Context, events chan<- Event) error {
	for {
		select {
		case ev := <-c:
			select {
			case events <- ev:
			case <-ctx.Done():
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// TestMerge: a machine seen by two sources is reported once, with both
// sources named and the newest signature chosen; it goes only when both
// lose it.
func TestMerge(t *testing.T) {
	a, b := make(chanSource), make(chanSource)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := make(chan Event)
	done := make(chan error, 1)
	go func() { done <- Merge(nil, a, b).Run(ctx, out) }()
	t0 := time.Unix(1_800_000_000, 0)
	ann := func(src string, ts time.Time) *Announcement {
		return &Announcement{Instance: "Builder", Source: src, Time: ts}
	}
	next := func(want EventKind, source string, ts time.Time) {
		t.Helper()
		select {
		case ev := <-out:
			if ev.Kind != want || ev.Announcement.Source != source || !ev.Announcement.Time.Equal(ts) {
				t.Fatalf("got %v %q %v; want %v %q %v", ev.Kind, ev.Announcement.Source, ev.Announcement.Time, want, source, ts)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event; want %v", want)
		}
	}
	a <- Event{Kind: Add, Announcement: ann("mdns:eth0", t0)}
	next(Add, "mdns:eth0", t0)
	b <- Event{Kind: Add, Announcement: ann("dns:example.org", t0.Add(time.Second))}
	next(Update, "mdns:eth0,dns:example.org", t0.Add(time.Second))
	a <- Event{Kind: Remove, Announcement: ann("mdns:eth0", t0)}
	next(Update, "dns:example.org", t0.Add(time.Second))
	bad := ann("mdns:eth0", t0.Add(time.Hour))
	bad.Ignored = "TXT sig: bad"
	a <- Event{Kind: Ignore, Announcement: bad}
	// The usable one wins over a newer unusable one.
	next(Update, "mdns:eth0,dns:example.org", t0.Add(time.Second))
	b <- Event{Kind: Remove, Announcement: ann("dns:example.org", t0)}
	next(Remove, "mdns:eth0,dns:example.org", t0.Add(time.Second))
	next(Ignore, "mdns:eth0", t0.Add(time.Hour))
	a <- Event{Kind: Remove, Announcement: bad}
	next(Remove, "mdns:eth0", t0.Add(time.Hour))
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// onlyKey accepts announcements signed by one key (standing in for an
// ACL).
type onlyKey string

func (k onlyKey) Judge(a *Announcement, now time.Time) (bool, string) {
	return a.SigningKey == string(k), "by key"
}

// TestMergeStrangerCannotShadow: a stranger on the LAN announcing the
// name of a machine the zone has, with a fresher time, does not hide
// the machine the policy trusts.
func TestMergeStrangerCannotShadow(t *testing.T) {
	lan, zone := make(chanSource), make(chanSource)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := make(chan Event)
	go func() { _ = Merge(onlyKey("good"), lan, zone).Run(ctx, out) }()
	t0 := time.Unix(1_800_000_000, 0)
	real := &Announcement{Instance: "builder1", Source: "dns:example.org", Time: t0, SigningKey: "good"}
	fake := &Announcement{Instance: "builder1", Source: "mdns:eth0", Time: t0.Add(time.Minute), SigningKey: "evil"}
	zone <- Event{Kind: Add, Announcement: real}
	<-out
	lan <- Event{Kind: Add, Announcement: fake}
	ev := <-out
	if ev.Announcement.SigningKey != "good" {
		t.Errorf("the stranger's announcement won: %+v", ev.Announcement)
	}
}
