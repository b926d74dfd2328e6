package discovery

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A bug that an untrusted packet trips must not end the process: the
// hook that browses has yet to answer guix-daemon. These tests inject
// panics where packet data is handled and check that the browser drops
// what tripped it, warns once with the panic value and no stack, and
// goes on.

// noStack fails t when a warning carries a goroutine trace.
func noStack(t *testing.T, warning string) {
	t.Helper()
	if strings.Contains(warning, "goroutine ") || strings.Contains(warning, ".go:") {
		t.Errorf("warning carries a stack: %q", warning)
	}
}

// TestCachePacketPanicDropsPacket: a panic while filing one packet drops
// that packet only; the next ones are filed as usual.
func TestCachePacketPanicDropsPacket(t *testing.T) {
	r := newRecorder(t)
	r.c.fault = func(m *dns.Msg) {
		for _, rr := range m.Answer {
			if ptr, ok := rr.(*dns.PTR); ok && strings.HasPrefix(ptr.Ptr, "evil.") {
				panic("boom from evil")
			}
		}
	}
	pack := func(m *dns.Msg) []byte {
		buf, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return buf
	}
	evil := pack(response("evil", "e", 22, validTXT(t, "0.10"), 4500, "169.254.1.3"))
	good := pack(response("builder1", "b1", 22, validTXT(t, "0.10"), 4500, "169.254.1.2"))
	for range 3 {
		if err := r.c.receive(evil, "veth0", netip.Addr{}, r.now); err != nil {
			t.Fatalf("receive: %v", err)
		}
	}
	if err := r.c.receive(good, "veth0", netip.Addr{}, r.now); err != nil {
		t.Fatalf("receive: %v", err)
	}
	if evs := r.c.tick(r.now); kinds(evs) != "add builder1" {
		t.Errorf("events %q, want only the good machine added", kinds(evs))
	}
	if len(r.warnings) != 1 || !strings.Contains(r.warnings[0], "boom from evil") {
		t.Fatalf("warnings %q, want one naming the panic", r.warnings)
	}
	noStack(t, r.warnings[0])
	// A packet that does not decode is an error, not a panic.
	if err := r.c.receive([]byte{1, 2, 3}, "veth0", netip.Addr{}, r.now); err == nil {
		t.Error("garbage packet decoded")
	}
}

// TestCacheComparePanicDropsInstance: a panic while judging one
// instance's records (here in the trust policy the cache consults)
// drops that instance, reporting its removal if it was reported, and
// the other instances are still reported.
func TestCacheComparePanicDropsInstance(t *testing.T) {
	r := newRecorder(t)
	var evilPanics bool
	r.c.trusted = func(a *Announcement, now time.Time) (bool, string) {
		if a.Instance == "evil" && evilPanics {
			panic("policy bug")
		}
		return true, ""
	}
	if evs := r.feed(response("evil", "e", 22, validTXT(t, "0.10"), 4500, "169.254.1.3"), "veth0"); kinds(evs) != "add evil" {
		t.Fatalf("events %q", kinds(evs))
	}
	evilPanics = true
	r.advance(time.Second)
	r.c.handle(response("evil", "e", 22, validTXT(t, "0.50"), 4500, "169.254.1.3"), "veth0", r.now)
	r.c.handle(response("good", "g", 22, validTXT(t, "0.10"), 4500, "169.254.1.2"), "veth0", r.now)
	if evs := r.c.tick(r.now); kinds(evs) != "remove evil; add good" {
		t.Errorf("events %q, want evil removed and good added", kinds(evs))
	}
	if len(r.warnings) != 1 || !strings.Contains(r.warnings[0], "policy bug") || !strings.Contains(r.warnings[0], "evil") {
		t.Fatalf("warnings %q, want one naming the instance and the panic", r.warnings)
	}
	noStack(t, r.warnings[0])
	if _, ok := r.c.ptrs["evil."+svc]; ok {
		t.Error("the instance that tripped the panic is still cached")
	}
	if got := len(r.c.current()); got != 1 {
		t.Errorf("%d instances current, want 1", got)
	}
	// Nothing is left to report for it later either.
	r.advance(time.Second)
	if evs := r.c.tick(r.now); len(evs) != 0 {
		t.Errorf("later events %q", kinds(evs))
	}
}

// panicPolicy panics when judging the instance named evil and trusts the
// others.
type panicPolicy struct{}

func (panicPolicy) Judge(a *Announcement, now time.Time) (bool, string) {
	if a.Instance == "evil" {
		panic("judge exploded")
	}
	return true, "fine"
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBrowsePolicyPanicRejectsMachine: a policy that panics on one
// announcement rejects that machine, saying why, and Browse goes on.
func TestBrowsePolicyPanicRejectsMachine(t *testing.T) {
	checkNoLeak(t)
	var log syncBuffer
	found, err := Lookup(context.Background(), BrowseOptions{
		Source: &fakeSource{events: []Event{
			{Kind: Add, Announcement: annNamed(t, "evil", 0.1)},
			{Kind: Add, Announcement: annNamed(t, "good", 0.1)},
		}},
		Trust:  panicPolicy{},
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
	}, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if len(found) != 2 || found[0].Instance != "evil" || found[1].Instance != "good" {
		t.Fatalf("found %d machines, want evil and good", len(found))
	}
	if found[0].Trusted || !strings.Contains(found[0].TrustReason, "judge exploded") {
		t.Errorf("evil: trusted %v (%s)", found[0].Trusted, found[0].TrustReason)
	}
	if !found[1].Trusted {
		t.Errorf("good: not trusted (%s)", found[1].TrustReason)
	}
	out := log.String()
	if strings.Count(out, "judge exploded") != 1 {
		t.Errorf("log %q, want one warning naming the panic", out)
	}
	noStack(t, out)
}

// panicSource is a Source that panics once it has sent its events.
type panicSource struct{ fakeSource }

func (p *panicSource) Run(ctx context.Context, out chan<- Event) error {
	for _, ev := range p.events {
		select {
		case out <- ev:
		case <-ctx.Done():
			return nil
		}
	}
	panic("source exploded")
}

// TestBrowseSourcePanicIsError: a source that panics ends Browse, Lookup
// and Watch with an error (and one warning), not the process.
func TestBrowseSourcePanicIsError(t *testing.T) {
	checkNoLeak(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		run  func(BrowseOptions) error
	}{
		{"Browse", func(o BrowseOptions) error {
			events := make(chan Event)
			go func() {
				for range events {
				}
			}()
			defer close(events)
			return Browse(ctx, o, events)
		}},
		{"Lookup", func(o BrowseOptions) error { _, err := Lookup(ctx, o, 5*time.Second); return err }},
		{"Watch", func(o BrowseOptions) error { return Watch(ctx, o, "", nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log syncBuffer
			err := tc.run(BrowseOptions{
				Source: &panicSource{fakeSource{events: []Event{{Kind: Add, Announcement: annNamed(t, "good", 0.1)}}}},
				Trust:  AnyPolicy{},
				Logger: slog.New(slog.NewTextHandler(&log, nil)),
			})
			if err == nil || !strings.Contains(err.Error(), "source exploded") {
				t.Fatalf("error %v, want one naming the panic", err)
			}
			if ctx.Err() != nil {
				t.Fatal("returned only when the test's deadline passed")
			}
			out := log.String()
			if strings.Count(out, "source exploded") != 1 {
				t.Errorf("log %q, want one warning naming the panic", out)
			}
			noStack(t, out)
		})
	}
}
