package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/internal/atomicfile"

	"github.com/guix-offload/guix-offload/internal/boundedread"
)

// Snapshot is what a running browser knows, written to a file that the
// offload hook reads when it starts, so it can decide without waiting for
// the network. `guix-offload discover --watch --cache FILE` keeps one
// current.
//
// Staleness: the writer rewrites the file on every event and at least
// every [SnapshotRefresh], so a file whose Updated is older than
// [SnapshotStale] means the writer is no longer running and the file must
// not be believed. Each machine's Seen says when it was last heard, and
// its Trusted was judged at Updated: a reader that wants to be strict
// judges the machines again with its own policy (the file keeps each
// TXT record as received, so [ACLPolicy] can check its signature).
type Snapshot struct {
	// Updated is when the writer last wrote the file.
	Updated time.Time `json:"updated"`
	// Machines are the current announcements, ignored ones included
	// (their Ignored field is set), sorted by instance.
	Machines []*Announcement `json:"machines"`
}

// How often a snapshot is rewritten without events, and when it counts as
// stale.
const (
	SnapshotRefresh = 30 * time.Second
	SnapshotStale   = 2 * time.Minute
)

// Stale reports whether s is too old to be believed at now, or written
// in the future (by more than [MaxAhead]: clocks differ a little): a
// time that never grows old would be believed for ever.
func (s *Snapshot) Stale(now time.Time) bool {
	return now.Sub(s.Updated) > SnapshotStale || s.Updated.Sub(now) > MaxAhead
}

// Trusted returns the machines the writer's policy accepted.
func (s *Snapshot) Trusted() []*Announcement {
	var out []*Announcement
	for _, a := range s.Machines {
		if a.Trusted && a.Ignored == "" {
			out = append(out, a)
		}
	}
	return out
}

// ReadSnapshot reads a snapshot file written by [WriteSnapshot].
func ReadSnapshot(path string) (*Snapshot, error) {
	data, err := boundedread.ReadFile(path, boundedread.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	s, err := ParseSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("read snapshot %s: %w", path, err)
	}
	return s, nil
}

// snapshotFile is the file's form of a [Snapshot]: each machine carries,
// besides its decoded fields, its TXT record as received ("txt"), so
// that a reader can check the signature itself (the signature covers the
// instance name, the SRV port and the record, and Sig is not among the
// decoded fields).
type snapshotFile struct {
	Updated  time.Time         `json:"updated"`
	Machines []snapshotMachine `json:"machines"`
}

type snapshotMachine struct {
	*Announcement
	TXT []string `json:"txt,omitempty"`
}

// ParseSnapshot decodes the contents of a snapshot file. A machine whose
// file entry carries its TXT record is rebuilt from that record (as
// [ParseTXT] does), its instance name and port, with only what the
// browser learned besides (Name, Addresses, Source, Seen) and the
// writer's judgment taken from the other fields; so [ACLPolicy] can judge
// it again, and a field edited in the file without a new signature does
// not count. A record that does not parse leaves the machine Ignored,
// with the reason. Files written before records were kept give machines
// without one ([Announcement.Record] is nil).
func ParseSnapshot(data []byte) (*Snapshot, error) {
	var f snapshotFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Updated.IsZero() {
		return nil, errors.New(`no "updated" time`)
	}
	s := &Snapshot{Updated: f.Updated, Machines: make([]*Announcement, 0, len(f.Machines))}
	for i, m := range f.Machines {
		a := m.Announcement
		if a == nil || a.Instance == "" {
			return nil, fmt.Errorf("machine %d has no instance", i+1)
		}
		if m.TXT != nil && a.Ignored == "" {
			a = fromRecord(a, m.TXT)
		}
		s.Machines = append(s.Machines, a)
	}
	return s, nil
}

// fromRecord rebuilds the snapshot machine a from its TXT record txt.
func fromRecord(a *Announcement, txt []string) *Announcement {
	b, err := ParseTXT(a.Instance, a.Port, txt)
	if err != nil {
		return &Announcement{Instance: a.Instance, Machine: a.Machine, Addresses: a.Addresses, Source: a.Source, Seen: a.Seen,
			Load: Unknown, FreeDisk: Unknown, TrustReason: "ignored: snapshot record: " + err.Error(), Ignored: "snapshot record: " + err.Error(), Impostor: a.Impostor}
	}
	b.Name, b.Addresses, b.Source, b.Seen = a.Name, a.Addresses, a.Source, a.Seen
	b.Trusted, b.TrustReason, b.Impostor = a.Trusted, a.TrustReason, a.Impostor
	return b
}

// Record returns the TXT strings a was decoded from, as received (nil
// for an announcement composed here, or read from a snapshot written
// before records were kept).
func (a *Announcement) Record() []string { return a.raw }

// WriteSnapshot replaces the file at path with s atomically (a temporary
// file renamed over it), so a reader never sees a partial file. Each
// machine is written with its TXT record: the one received, else (an
// announcement composed here) [Announcement.TXT].
func WriteSnapshot(path string, s *Snapshot) error {
	f := snapshotFile{Updated: s.Updated, Machines: make([]snapshotMachine, len(s.Machines))}
	for i, a := range s.Machines {
		f.Machines[i] = snapshotMachine{Announcement: a}
		switch {
		case a.Ignored != "":
		case a.raw != nil:
			f.Machines[i].TXT = a.raw
		default:
			f.Machines[i].TXT = a.TXT()
		}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// WatchMemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit)
// that a long-running watcher (`discover --watch`) sets for its process
// unless GOMEMLIMIT is set: the record cache is bounded (8 MB), but under
// a flood the garbage of decoding packets would otherwise let the heap
// grow to twice what is live.
const WatchMemoryLimit = 48 << 20

// ListMemoryLimit is the soft memory limit a one-shot `discover` sets
// unless GOMEMLIMIT is set, and ListGCPercent its GOGC unless GOGC is
// set. A listing builds up what it prints and then exits: collecting at
// every doubling of a heap that only grows was a third of the CPU time
// of listing a zone of 1,000 machines; the limit still bounds the heap.
// A watcher keeps the default GOGC under [WatchMemoryLimit], so that a
// flood leaves it well below the limit.
const (
	ListMemoryLimit = 256 << 20
	ListGCPercent   = 400
)

// snapshotDelay gathers a burst of events into one write, and
// snapshotInterval spaces writes, so that a flood of changes costs one
// write (and fsync) a second at most.
const (
	snapshotDelay    = 100 * time.Millisecond
	snapshotInterval = time.Second
)

// Watch browses like [Browse], passes every event to onEvent (when not
// nil), and, when snapshotPath is not empty, keeps a [Snapshot] there
// current: written when Watch starts, within a tenth of a second of a
// change (a burst of changes makes one write, and writes are a second
// apart at least), and every [SnapshotRefresh]. When browsing ends, a change not written yet is
// written then; otherwise the file is left as it is, its Updated time
// still saying when the machines were last known, so readers stop
// believing it [SnapshotStale] after that (a last write would vouch for
// machines that nobody watches any more). It blocks until ctx is done
// and returns nil then, or the first error of onEvent or of writing the
// file.
func Watch(ctx context.Context, opts BrowseOptions, snapshotPath string, onEvent func(Event) error) error {
	var save func(*Snapshot) error
	if snapshotPath != "" {
		save = func(s *Snapshot) error { return WriteSnapshot(snapshotPath, s) }
	}
	return watch(ctx, opts, save, onEvent)
}

// watch is [Watch] with the snapshot written by save (nil: none).
func watch(ctx context.Context, opts BrowseOptions, save func(*Snapshot) error, onEvent func(Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan Event)
	errc := opts.goRecover(func() error { return Browse(ctx, opts, events) })

	current := make(map[string]*Announcement)
	var lastWrite time.Time // on the monotonic clock
	write := func() error {
		if save == nil {
			return nil
		}
		lastWrite = time.Now()
		s := &Snapshot{Updated: opts.now().UTC(), Machines: make([]*Announcement, 0, len(current))}
		for _, a := range current {
			s.Machines = append(s.Machines, a)
		}
		slices.SortFunc(s.Machines, func(a, b *Announcement) int { return strings.Compare(a.ListKey(), b.ListKey()) })
		return save(s)
	}
	// stop ends browsing and returns err, or else Browse's error.
	stop := func(err error) error {
		cancel()
		if berr := <-errc; err == nil {
			err = berr
		}
		return err
	}
	if err := write(); err != nil {
		return stop(err)
	}
	refresh := time.NewTicker(SnapshotRefresh)
	defer refresh.Stop()
	flush := time.NewTimer(snapshotDelay)
	flush.Stop()
	defer flush.Stop()
	dirty := false
	for {
		select {
		case err := <-errc:
			if dirty {
				if werr := write(); err == nil {
					err = werr
				}
			}
			return err
		case <-flush.C:
			if err := write(); err != nil {
				return stop(err)
			}
			dirty = false
		case <-refresh.C:
			if err := write(); err != nil {
				return stop(err)
			}
			dirty = false
			flush.Stop()
		case ev := <-events:
			key := ev.Announcement.ListKey()
			if ev.Kind == Remove {
				delete(current, key)
			} else {
				current[key] = ev.Announcement
			}
			if !dirty {
				dirty = true
				flush.Reset(max(snapshotDelay, snapshotInterval-time.Since(lastWrite)))
			}
			if onEvent != nil {
				if err := onEvent(ev); err != nil {
					return stop(err)
				}
			}
		}
	}
}
