package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/guix-offload/guix-offload/scm"
)

// fakeSource plays scripted events, then blocks until ctx is done.
type fakeSource struct {
	events []Event
	delay  time.Duration
	err    error
}

func (f *fakeSource) Run(ctx context.Context, out chan<- Event) error {
	if f.err != nil {
		return f.err
	}
	for _, ev := range f.events {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return nil
		}
		select {
		case out <- ev:
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// checkNoLeak fails t when goroutines started during the test are still
// running at its end.
func checkNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		// A leaked goroutine stays: the wait only has to outlast a
		// loaded machine's scheduling.
		deadline := time.Now().Add(30 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	})
}

func annNamed(t *testing.T, instance string, load float64) *Announcement {
	a := testAnnouncement(t)
	a.Instance = instance
	a.Load = load
	a.Name = "169.254.1.2"
	return a
}

// clock is a settable clock safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func TestLookupReturnsWhenQuiet(t *testing.T) {
	checkNoLeak(t)
	src := &fakeSource{delay: 20 * time.Millisecond, events: []Event{
		{Kind: Add, Announcement: annNamed(t, "b", 0.1)},
		{Kind: Add, Announcement: annNamed(t, "a", 0.1)},
		{Kind: Update, Announcement: annNamed(t, "b", 0.5)},
		{Kind: Add, Announcement: annNamed(t, "gone", 0.1)},
		{Kind: Remove, Announcement: annNamed(t, "gone", 0.1)},
	}}
	start := time.Now()
	as, err := Lookup(context.Background(), BrowseOptions{Source: src, Trust: AnyPolicy{}}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Lookup took %v", d)
	}
	if len(as) != 2 || as[0].Instance != "a" || as[1].Instance != "b" || as[1].Load != 0.5 || !as[0].Trusted {
		t.Errorf("Lookup = %+v", as)
	}
}

func TestLookupDeadlineAndCancel(t *testing.T) {
	checkNoLeak(t)
	// Events keep coming: the deadline ends the lookup without error.
	var evs []Event
	for range 100 {
		evs = append(evs, Event{Kind: Update, Announcement: annNamed(t, "busy", 0.1)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	as, err := Lookup(ctx, BrowseOptions{Source: &fakeSource{delay: 50 * time.Millisecond, events: evs}}, time.Second)
	if err != nil || len(as) != 1 {
		t.Errorf("Lookup at deadline = %v, %v", as, err)
	}
	// No policy: nothing is trusted.
	if len(as) == 1 && (as[0].Trusted || as[0].TrustReason != "no trust policy") {
		t.Errorf("without a policy: %v %q", as[0].Trusted, as[0].TrustReason)
	}
	// Cancellation is reported.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel2() }()
	if _, err := Lookup(ctx2, BrowseOptions{Source: &fakeSource{delay: 50 * time.Millisecond, events: evs}}, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Lookup after cancel: %v", err)
	}
	// A source that cannot start is an error.
	boom := errors.New("no port 5353")
	if _, err := Lookup(context.Background(), BrowseOptions{Source: &fakeSource{err: boom}}, time.Second); !errors.Is(err, boom) {
		t.Errorf("Lookup with a failing source: %v", err)
	}
}

// TestBrowseRechecksTrust: an announcement whose signature time goes
// stale while nothing else changes gets an Update saying it is no longer
// trusted.
func TestBrowseRechecksTrust(t *testing.T) {
	checkNoLeak(t)
	clk := &clock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	a := testAnnouncement(t)
	a.Time = clk.Now()
	if err := a.Sign(fixtureKey(t)); err != nil {
		t.Fatal(err)
	}
	b := received(t, a, a.TXT(), "169.254.1.2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan Event)
	done := make(chan error, 1)
	go func() {
		done <- Browse(ctx, BrowseOptions{
			Source:  &fakeSource{events: []Event{{Kind: Add, Announcement: b}}},
			Trust:   &ACLPolicy{ACL: fixtureACL(t)},
			Now:     clk.Now,
			Recheck: 20 * time.Millisecond,
		}, events)
	}()
	ev := <-events
	if ev.Kind != Add || !ev.Announcement.Trusted {
		t.Fatalf("first event %v trusted %v (%s)", ev.Kind, ev.Announcement.Trusted, ev.Announcement.TrustReason)
	}
	clk.Set(clk.Now().Add(11 * time.Minute))
	ev = <-events
	if ev.Kind != Update || ev.Announcement.Trusted || !strings.Contains(ev.Announcement.TrustReason, "stale") {
		t.Fatalf("after 11 minutes: %v trusted %v (%s)", ev.Kind, ev.Announcement.Trusted, ev.Announcement.TrustReason)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Browse returned %v after cancel", err)
	}
}

func TestWatchKeepsSnapshot(t *testing.T) {
	checkNoLeak(t)
	path := filepath.Join(t.TempDir(), "cache", "discover.json")
	bad := &Announcement{Instance: "broken", Load: Unknown, FreeDisk: Unknown, Ignored: "TXT load: \"x\" is not a non-negative number"}
	src := &fakeSource{delay: 10 * time.Millisecond, events: []Event{
		{Kind: Add, Announcement: annNamed(t, "one", 0.1)},
		{Kind: Add, Announcement: annNamed(t, "two", 0.1)},
		{Kind: Ignore, Announcement: bad},
		{Kind: Update, Announcement: annNamed(t, "two", 0.9)},
		{Kind: Remove, Announcement: annNamed(t, "one", 0.1)},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var out bytes.Buffer
	seen := 0
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, BrowseOptions{Source: src, Trust: AnyPolicy{}}, path, func(ev Event) error {
			mu.Lock()
			defer mu.Unlock()
			seen++
			if seen == 5 {
				defer cancel()
			}
			return WriteEvent(&out, "json", ev)
		})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s, err := ReadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Machines) != 2 || s.Machines[0].Instance != "broken" || s.Machines[1].Instance != "two" ||
		s.Machines[1].Load != 0.9 || !s.Machines[1].Trusted || s.Machines[0].Trusted || s.Stale(time.Now()) {
		t.Errorf("snapshot %+v", s)
	}
	if got := s.Trusted(); len(got) != 1 || got[0].Instance != "two" {
		t.Errorf("Trusted() = %v", got)
	}
	if !s.Stale(time.Now().Add(SnapshotStale + time.Second)) {
		t.Error("an old snapshot is not stale")
	}
	mu.Lock()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	mu.Unlock()
	var kinds []string
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("NDJSON line %q: %v", l, err)
		}
		kinds = append(kinds, m["event"].(string)+" "+m["instance"].(string))
	}
	if got := strings.Join(kinds, ", "); got != "add one, add two, ignore broken, update two, remove one" {
		t.Errorf("events %s", got)
	}
	// No temporary files are left next to the snapshot.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files in the cache directory", len(entries))
	}
}

func TestReadSnapshotErrors(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"garbage":     "{",
		"no-time":     `{"machines": []}`,
		"no-instance": `{"updated": "2026-11-29T12:00:00Z", "machines": [{"name": "x"}]}`,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSnapshot(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ReadSnapshot(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing snapshot read")
	}
}

func TestFormats(t *testing.T) {
	good := annNamed(t, "builder1", 0.35)
	good.Trusted, good.TrustReason, good.Source = true, "trust policy any", "mdns:eth0"
	good.SigningKey = "ecdsa-ed25519:9xs2pBf5P4y74u4i7SXQjprwttgTEo0wmR3eYu/J5gk="
	d := scm.DefaultMachine() // as parsing an announcement leaves it
	good.PrivateKey, good.Compression, good.CompressionLevel, good.DaemonSocket = d.PrivateKey, d.Compression, d.CompressionLevel, d.DaemonSocket
	other := annNamed(t, "builder2", Unknown)
	other.TrustReason = "announcement is not signed"
	ign := &Announcement{Instance: "broken", Load: Unknown, FreeDisk: Unknown, Ignored: "TXT load: bad", TrustReason: "ignored: TXT load: bad"}
	as := []*Announcement{good, other, ign}

	var b bytes.Buffer
	if err := Write(&b, "json", as); err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal(b.Bytes(), &objs); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "port", "systems", "user", "private-key", "host-key", "compression",
		"compression-level", "daemon-socket", "overload-threshold", "parallel-builds", "speed", "features",
		"instance", "addresses", "load", "free-disk", "signing-key", "trusted", "trust-reason", "source"} {
		if _, ok := objs[0][k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b.String())
		}
	}
	if objs[2]["ignored"] != "TXT load: bad" {
		t.Errorf("ignored in JSON: %v", objs[2]["ignored"])
	}

	b.Reset()
	if err := Write(&b, "table", as); err != nil {
		t.Fatal(err)
	}
	table := b.String()
	for _, want := range []string{"INSTANCE", "builder1", "169.254.1.2:2222", "x86_64-linux,i686-linux", "0.35", "51G", "yes", "no: announcement is not signed", "no: ignored: TXT load: bad"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	b.Reset()
	if err := Write(&b, "scm", as); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `(name "169.254.1.2")`) || strings.Count(b.String(), "(build-machine") != 1 {
		t.Errorf("scm lists untrusted machines:\n%s", b.String())
	}

	b.Reset()
	if err := Write(&b, "recutils", as); err != nil {
		t.Fatal(err)
	}
	rec := b.String()
	for _, want := range []string{"instance: builder1\n", "systems: x86_64-linux i686-linux\n", "trusted: yes\n", "instance: builder2\n", "\n\ninstance: broken\n", "ignored: TXT load: bad\n"} {
		if !strings.Contains(rec, want) {
			t.Errorf("recutils lacks %q:\n%s", want, rec)
		}
	}
	// The machines.scm part of a record is what `guix-offload machines
	// --format recutils` prints for the entry of `discover --format scm`.
	b.Reset()
	if err := Write(&b, "scm", as); err != nil {
		t.Fatal(err)
	}
	ms, err := scm.EvalMachines(b.Bytes(), "discovered.scm")
	if err != nil || len(ms) != 1 {
		t.Fatalf("scm output: %v %v", ms, err)
	}
	b.Reset()
	if err := scm.WriteRecutils(&b, ms); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rec, b.String()+"instance: builder1\n") {
		t.Errorf("discover's recutils record\n%s\ndoes not start with machines' record\n%s", rec, b.String())
	}

	if err := Write(&b, "yaml", as); err == nil {
		t.Error("unknown format accepted")
	}
	b.Reset()
	if err := Write(&b, "table", nil); err != nil || !strings.Contains(b.String(), "no build machines") {
		t.Errorf("empty table: %q %v", b.String(), err)
	}
	b.Reset()
	if err := WriteEvent(&b, "table", Event{Kind: Remove, Announcement: good}); err != nil || !strings.HasPrefix(b.String(), "remove  builder1") {
		t.Errorf("table event %q %v", b.String(), err)
	}

	// --watch prints rows as events come: they line up with the header.
	b.Reset()
	if err := WriteEventHeader(&b); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []Event{{Kind: Add, Announcement: good}, {Kind: Update, Announcement: other}, {Kind: Remove, Announcement: good}, {Kind: Ignore, Announcement: ign}} {
		if err := WriteEvent(&b, "table", ev); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	starts := func(line string) []int {
		var s []int
		for i := range line {
			if line[i] != ' ' && (i == 0 || line[i-1] == ' ') {
				s = append(s, i)
			}
		}
		return s
	}
	head := starts(lines[0])
	for _, line := range lines[1:] {
		got := starts(line)
		for i := range min(len(head), 8) { // TRUSTED's "no: …" has spaces
			if i >= len(got) || got[i] != head[i] {
				t.Errorf("--watch columns not aligned:\n%s", b.String())
				return
			}
		}
	}
}

// The browser's query encoding alone: the unicast-response bit when it
// browses from a port of its own, and known answers trimmed to fit one
// packet.
func TestBrowserPack(t *testing.T) {
	b := (&MDNS{}).newBrowser()
	m := new(dns.Msg)
	m.Question = []dns.Question{{Name: svc, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}
	for i := range 200 {
		m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: svc, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 4000},
			Ptr: fmt.Sprintf("instance-with-a-long-name-%03d.%s", i, svc)})
	}
	buf, err := b.pack(m)
	if err != nil || len(buf) > maxPacket || len(m.Answer) == 0 || m.Question[0].Qclass != dns.ClassINET {
		t.Fatalf("multicast: %d bytes, %d answers, class %#x, %v", len(buf), len(m.Answer), m.Question[0].Qclass, err)
	}
	b.unicast = true
	if _, err := b.pack(m); err != nil || m.Question[0].Qclass != dns.ClassINET|0x8000 {
		t.Errorf("unicast: class %#x, %v", m.Question[0].Qclass, err)
	}
}
