package pairing

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Record is what one pairing changed on this side, kept in a records
// directory as NAME.json so that `pair --list` can show it and `pair
// --remove NAME` undo it.
type Record struct {
	// Peer is the other side, as it showed itself.
	Peer Identity `json:"peer"`
	// Paired is when.
	Paired time.Time `json:"paired"`
	// ACL is the Guix ACL change.
	ACL *ACLChange `json:"acl,omitempty"`
	// AuthorizedKeys is the master's key for the login (machine side).
	AuthorizedKeys *KeyLineChange `json:"authorized-keys,omitempty"`
}

// ErrNotPaired is returned by [Remove] for a name without a record.
var ErrNotPaired = errors.New("not paired")

func recordPath(dir, name string) (string, error) {
	if !nameRE.MatchString(name) {
		return "", fmt.Errorf("bad name %q: use letters, digits, '.', '_' and '-'", printable(name))
	}
	return filepath.Join(dir, name+".json"), nil
}

func writeRecord(j *journal, dir string, r *Record) error {
	p, err := recordPath(dir, r.Peer.Name)
	if err != nil {
		return err
	}
	if err := ensureArea(j, dir); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := j.save(p); err != nil {
		return err
	}
	return writeAtomic(p, append(data, '\n'), 0o600, -1, -1)
}

func readRecord(path string) (*Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &r, nil
}

// List returns the pairing records in dir, sorted by name. A missing
// directory means none.
func List(dir string) ([]*Record, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pairings: %w", err)
	}
	var out []*Record
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r, err := readRecord(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("list pairings: %w", err)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Record) int { return strings.Compare(a.Peer.Name, b.Peer.Name) })
	return out, nil
}

// shared is a resource that the first pairing created and the last
// removal deletes: the machine's login, the master's SSH key.
type shared struct {
	// Created says pairing made it.
	Created bool `json:"created"`
	// What names it (the login, the key file).
	What string `json:"what"`
	// Home is a created login's home directory.
	Home string `json:"home,omitempty"`
	// Dirs are the directories created for it, parents first.
	Dirs []string `json:"dirs,omitempty"`
}

// removeDirs removes the directories in dirs that are empty, deepest
// first.
func removeDirs(dirs ...string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}

func readShared(path string) (*shared, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s shared
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &s, nil
}

func writeShared(j *journal, path string, s *shared) error {
	if err := j.mkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := j.save(path); err != nil {
		return err
	}
	return writeAtomic(path, append(data, '\n'), 0o600, -1, -1)
}

// ensureArea creates the records directory and, when that made
// directories, notes them so that the last removal deletes them again.
func ensureArea(j *journal, records string) error {
	made := len(j.made)
	if err := j.mkdirAll(records, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", records, err)
	}
	if len(j.made) == made {
		return nil
	}
	dirs := append([]string(nil), j.made[made:]...)
	return writeShared(j, dirsFile(records), &shared{Created: true, What: "pairing records", Dirs: dirs})
}

func dirsFile(records string) string { return filepath.Join(records, "..", "dirs.json") }

// cleanArea removes, after the last pairing is gone, the directories
// that [ensureArea] made.
func cleanArea(j *journal, records string) error {
	d, err := readShared(dirsFile(records))
	if err != nil || d == nil {
		return err
	}
	if err := removeRecordFile(j, dirsFile(records)); err != nil {
		return err
	}
	removeDirs(d.Dirs...)
	return nil
}

// removeRecords removes a record file and, when it was the last, the
// records directory and the shared file that pairing created.
// removePeer removes a peer's record file and reports whether it was
// the last peer. For the last, it also removes the shared record at
// sharedPath and returns what that held (what pairing made once for all
// peers, to undo now; nil when there was none).
func removePeer(j *journal, records, recordPath, sharedPath string) (s *shared, last bool, err error) {
	if err := removeRecordFile(j, recordPath); err != nil {
		return nil, false, err
	}
	left, err := List(records)
	if err != nil || len(left) > 0 {
		return nil, false, err
	}
	if s, err = readShared(sharedPath); err != nil || s == nil {
		return nil, err == nil, err
	}
	if err := removeRecordFile(j, sharedPath); err != nil {
		return nil, false, err
	}
	return s, true, nil
}

func removeRecordFile(j *journal, path string) error {
	if err := j.save(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
