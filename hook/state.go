package hook

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/internal/atomicfile"
)

// State is what hook processes share besides slot locks, in files under
// the state directory written atomically (temporary file, then rename),
// because the daemon kills hooks with SIGKILL at any moment:
//
//   - down/HOST:PORT: a machine that could not be used, until when, and why;
//   - postponed/HASH: when a derivation was first postponed because every
//     matching machine was unusable.
//
// Guix's own slot directories are named HOST:PORT, so these two names never
// collide with them.
type State struct {
	Dir string
}

type downRecord struct {
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

// DownOf returns the machines with the given keys remembered as down at
// now, by key, with why: the records of machines that cannot take the
// request are not read. Unreadable records are ignored (a machine is then
// tried again).
func (s State) DownOf(now time.Time, keys map[string]bool) map[string]string {
	if len(keys) == 0 {
		return nil
	}
	dir := filepath.Join(s.Dir, "down")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out map[string]string
	for _, e := range entries {
		if !keys[e.Name()] {
			continue
		}
		if why, ok := s.readDown(filepath.Join(dir, e.Name()), now); ok {
			if out == nil {
				out = make(map[string]string)
			}
			out[e.Name()] = why
		}
	}
	return out
}

// readDown reads one down record; ok is false when it is unreadable or
// over.
func (s State) readDown(path string, now time.Time) (string, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	var r downRecord
	if json.Unmarshal(data, &r) != nil || !now.Before(r.Until) {
		return "", false
	}
	return fmt.Sprintf("down for %s more: %s", r.Until.Sub(now).Round(time.Second), r.Reason), true
}

// MarkDown remembers the machine with key as down until until.
func (s State) MarkDown(key, reason string, until time.Time) error {
	data, err := json.Marshal(downRecord{Until: until.UTC(), Reason: reason})
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.Dir, "down", key), data, atomicfile.Private)
}

func (s State) postponedPath(drv string) string {
	h := sha256.Sum256([]byte(drv))
	return filepath.Join(s.Dir, "postponed", hex.EncodeToString(h[:12]))
}

// postponedLife is how long the first postponement of a derivation is
// remembered: an older one was a past attempt (the daemon gave up on it
// or built it elsewhere).
const postponedLife = 24 * time.Hour

// FirstPostponed returns when drv was first postponed for want of a
// usable machine, recording now when it was not yet. Records older than
// a day are stale (a past attempt) and restart. The error says the record
// could not be written (now is returned then: the caller keeps its own
// memory of the first postponement, see server.firstPostponed).
func (s State) FirstPostponed(drv string, now time.Time) (time.Time, error) {
	p := s.postponedPath(drv)
	if data, err := os.ReadFile(p); err == nil {
		var t time.Time
		if t.UnmarshalText([]byte(strings.TrimSpace(string(data)))) == nil && now.Sub(t) < postponedLife && !t.After(now) {
			return t, nil
		}
	}
	s.prunePostponed(now)
	text, _ := now.UTC().MarshalText()
	return now, atomicfile.Write(p, text, atomicfile.Private)
}

// prunePostponed removes records of derivations last postponed more than
// a day ago (the daemon gave up on them or built them elsewhere), so the
// directory does not grow forever. It runs only when a record is added.
func (s State) prunePostponed(now time.Time) {
	dir := filepath.Join(s.Dir, "postponed")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > postponedLife {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// ClearPostponed forgets drv's first postponement.
func (s State) ClearPostponed(drv string) {
	os.Remove(s.postponedPath(drv))
}
