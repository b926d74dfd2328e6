package discovery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A snapshot keeps each received TXT record, so a reader can judge the
// machines again with its own ACL; what the file says besides the record
// does not count, and a file without records (an older writer) gives
// machines nobody can verify.
func TestSnapshotKeepsRecords(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	policy := &ACLPolicy{ACL: fixtureACL(t), File: "testdata/acl"}
	a := testAnnouncement(t)
	a.Time = now.Add(-time.Minute)
	if err := a.Sign(fixtureKey(t)); err != nil {
		t.Fatal(err)
	}
	got := received(t, a, a.TXT(), "169.254.1.2")
	got.Trusted, got.TrustReason, got.Source, got.Seen = true, "signed by a key in testdata/acl", "mdns:eth0", now
	// One composed here and signed (no record received): TXT is kept.
	composed := testAnnouncement(t)
	composed.Instance = "composed"
	composed.Time = now
	if err := composed.Sign(fixtureKey(t)); err != nil {
		t.Fatal(err)
	}
	composed.Name = "169.254.1.2"
	ignored := &Announcement{Instance: "broken", Ignored: "TXT systems: missing", Load: Unknown, FreeDisk: Unknown}
	ignored.Port = 22

	path := filepath.Join(t.TempDir(), "snap.json")
	if err := WriteSnapshot(path, &Snapshot{Updated: now, Machines: []*Announcement{got, composed, ignored}}); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Machines) != 3 {
		t.Fatalf("%d machines", len(s.Machines))
	}
	b := s.Machines[0]
	if strings.Join(b.Record(), "\n") != strings.Join(got.Record(), "\n") {
		t.Errorf("record %q, want %q", b.Record(), got.Record())
	}
	if b.Name != "169.254.1.2" || b.Source != "mdns:eth0" || !b.Seen.Equal(now) || !b.Trusted {
		t.Errorf("receiver's fields lost: name %q source %q seen %v trusted %v", b.Name, b.Source, b.Seen, b.Trusted)
	}
	if ok, reason := policy.Judge(b, now); !ok {
		t.Errorf("received machine after the file: %s", reason)
	}
	if ok, reason := policy.Judge(s.Machines[1], now); !ok {
		t.Errorf("composed machine after the file: %s", reason)
	}
	if s.Machines[2].Ignored == "" || s.Machines[2].Record() != nil {
		t.Errorf("ignored machine: %+v", s.Machines[2])
	}

	// Editing a decoded field in the file changes nothing: the machine is
	// rebuilt from its record.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), `"user": "offload"`, `"user": "mallory"`, 1)
	if edited == string(data) {
		t.Fatal("no user field to edit")
	}
	s2, err := ParseSnapshot([]byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	if s2.Machines[0].User != "offload" {
		t.Errorf("user %q from the edited field, want the signed one", s2.Machines[0].User)
	}
	// Editing the record breaks the signature.
	tampered := strings.Replace(string(data), `"load=0.35"`, `"load=0.01"`, 1)
	s3, err := ParseSnapshot([]byte(tampered))
	if err != nil {
		t.Fatal(err)
	}
	if ok, reason := policy.Judge(s3.Machines[0], now); ok || !strings.Contains(reason, "signature does not match") {
		t.Errorf("tampered record: %v, %q", ok, reason)
	}
	// A record that no longer parses leaves the machine ignored, saying why.
	broken := strings.Replace(string(data), `"txtvers=1"`, `"txtvers=x"`, 1)
	s4, err := ParseSnapshot([]byte(broken))
	if err != nil {
		t.Fatal(err)
	}
	if m := s4.Machines[0]; m.Ignored == "" || !strings.Contains(m.Ignored, "txtvers") || m.Trusted {
		t.Errorf("unparsable record: ignored %q trusted %v", m.Ignored, m.Trusted)
	}
	// An older file: no records, nothing to verify.
	old := `{"updated": "` + now.UTC().Format(time.RFC3339) + `", "machines": [{"instance": "builder1", "name": "169.254.1.2", "port": 2222,
		"systems": ["x86_64-linux"], "user": "offload", "signing-key": "` + a.SigningKey + `", "trusted": true}]}`
	s5, err := ParseSnapshot([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if m := s5.Machines[0]; m.Record() != nil {
		t.Errorf("record %q in a file without one", m.Record())
	} else if ok, reason := policy.Judge(m, now); ok || !strings.Contains(reason, "not signed") {
		t.Errorf("machine of an older file: %v, %q", ok, reason)
	}
}

// JudgeSigned is Judge without the time, and CheckTime is the time.
func TestJudgeSignedAndCheckTime(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	policy := &ACLPolicy{ACL: fixtureACL(t), File: "testdata/acl"}
	a := testAnnouncement(t)
	a.Time = now.Add(-time.Hour)
	if err := a.Sign(fixtureKey(t)); err != nil {
		t.Fatal(err)
	}
	r := received(t, a, a.TXT(), "169.254.1.2")
	if ok, reason := policy.JudgeSigned(r); !ok {
		t.Errorf("JudgeSigned: %s", reason)
	}
	if ok, reason := policy.Judge(r, now); ok || !strings.Contains(reason, "stale") {
		t.Errorf("Judge of an hour-old signature: %v, %q", ok, reason)
	}
	if ok, _ := policy.JudgeSigned(received(t, a, a.TXT(), "169.254.9.9")); ok {
		t.Error("JudgeSigned accepted a replay from another address")
	}
	for _, tt := range []struct {
		signed time.Time
		ok     bool
	}{
		{now, true}, {now.Add(-MaxAge + time.Second), true}, {now.Add(-MaxAge - time.Second), false},
		{now.Add(MaxAhead), true}, {now.Add(MaxAhead + time.Second), false}, {time.Time{}, false},
	} {
		if ok, reason := CheckTime(tt.signed, now); ok != tt.ok || ok != (reason == "") {
			t.Errorf("CheckTime(%v) = %v, %q", tt.signed, ok, reason)
		}
	}
}

// TestWatchStopsWithoutRewrite: when Watch stops with every change
// written, it leaves the file as it was: a last write would stamp a
// fresh time on machines nobody watches any more.
func TestWatchStopsWithoutRewrite(t *testing.T) {
	checkNoLeak(t)
	path := filepath.Join(t.TempDir(), "discover.json")
	clk := &clock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, BrowseOptions{
			Source: &fakeSource{events: []Event{{Kind: Add, Announcement: annNamed(t, "one", 0.1)}}},
			Trust:  AnyPolicy{},
			Now:    clk.Now,
		}, path, nil)
	}()
	// Wait (bounded) for the change to be written.
	written := func() bool {
		s, err := ReadSnapshot(path)
		return err == nil && len(s.Machines) == 1
	}
	for deadline := time.Now().Add(10 * time.Second); !written(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the change was never written")
		}
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(clk.Now().Add(time.Minute))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("Watch rewrote the snapshot when it stopped:\n%s\nwas\n%s", after, before)
	}
}

// Issue 12, item 7: a snapshot written in the future is stale, or it
// would be believed for ever.
func TestSnapshotFromTheFutureIsStale(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		updated time.Duration
		stale   bool
	}{
		{0, false}, {-SnapshotStale + time.Second, false}, {-SnapshotStale - time.Second, true},
		{MaxAhead - time.Second, false}, {MaxAhead + time.Second, true}, {100 * 365 * 24 * time.Hour, true},
	} {
		if got := (&Snapshot{Updated: now.Add(c.updated)}).Stale(now); got != c.stale {
			t.Errorf("updated %s from now: stale %v, want %v", c.updated, got, c.stale)
		}
	}
}

// Issue 12, item 4: a flood of changes does not rewrite (and fsync) the
// snapshot more than once a second.
func TestWatchRateLimitsWrites(t *testing.T) {
	checkNoLeak(t)
	var evs []Event
	for i := range 400 {
		evs = append(evs, Event{Kind: Add, Announcement: annNamed(t, fmt.Sprintf("m%d", i%20), 0.1)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var writes []time.Time
	err := watch(ctx, BrowseOptions{Source: &fakeSource{delay: 5 * time.Millisecond, events: evs}, Trust: AnyPolicy{}},
		func(*Snapshot) error {
			writes = append(writes, time.Now())
			return nil
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first write when Watch starts, then one a second at most (and
	// the change pending when it stops).
	for i := 2; i < len(writes)-1; i++ {
		if gap := writes[i].Sub(writes[i-1]); gap < 900*time.Millisecond {
			t.Errorf("writes %d and %d only %s apart", i-1, i, gap)
		}
	}
	if len(writes) < 3 || len(writes) > 5 {
		t.Errorf("%d writes, want the changes written", len(writes))
	}
}

// An impostor listed in a snapshot stays one when read back (rebuilt
// from its record), so a reader keeps it apart from the machine it
// claims to be and never makes a machine of it.
func TestSnapshotKeepsImpostors(t *testing.T) {
	a := annNamed(t, "victim", 0.1)
	b := annNamed(t, "victim", 0.2)
	b.Impostor, b.TrustReason = true, ImpostorReason+": unsigned"
	path := filepath.Join(t.TempDir(), "s.json")
	if err := WriteSnapshot(path, &Snapshot{Updated: time.Now(), Machines: []*Announcement{a, b}}); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Machines) != 2 || s.Machines[0].Impostor || !s.Machines[1].Impostor || s.Machines[0].ListKey() == s.Machines[1].ListKey() {
		t.Fatalf("read back %+v", s.Machines)
	}
	if _, ok := s.Machines[1].AsMachine("offload", "/root/.ssh/id_rsa"); ok {
		t.Error("an impostor became a machine")
	}
}
