package pairing

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/guix-offload/guix-offload/internal/atomicfile"
	"github.com/guix-offload/guix-offload/internal/pki"
)

// BackupSuffix is appended to a file's name for the copy of its previous
// version that every change keeps.
const BackupSuffix = "~"

// writeFile replaces path atomically (a temporary file in the same
// directory, synced, renamed over it), first keeping the previous
// version as path+[BackupSuffix]. The new file keeps the old one's mode
// and owner; a new file gets perm, owned by uid:gid unless they are -1.
func writeFile(j *journal, path string, data []byte, perm fs.FileMode, uid, gid int) error {
	if err := j.save(path); err != nil {
		return err
	}
	if err := j.save(path + BackupSuffix); err != nil {
		return err
	}
	if st, err := os.Stat(path); err == nil {
		perm = st.Mode().Perm()
		if sys, ok := statOwner(st); ok {
			uid, gid = sys[0], sys[1]
		}
		old, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("keep previous %s: %w", path, err)
		}
		if err := writeAtomic(path+BackupSuffix, old, perm, uid, gid); err != nil {
			return fmt.Errorf("keep previous %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return writeAtomic(path, data, perm, uid, gid)
}

func writeAtomic(path string, data []byte, perm fs.FileMode, uid, gid int) error {
	return atomicfile.WriteOwned(path, data, perm, uid, gid)
}

// removeFile removes path, keeping its last content as path+[BackupSuffix].
func removeFile(j *journal, path string) error {
	if err := j.save(path); err != nil {
		return err
	}
	if err := j.save(path + BackupSuffix); err != nil {
		return err
	}
	if err := os.Rename(path, path+BackupSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// aclEntry is the text pairing inserts into an ACL in Guix's advanced
// form: one entry, indented as `guix archive --authorize` writes it.
func aclEntry(k *pki.PublicKey) []byte {
	whole := pki.NewACL(k).MarshalSexp()
	// "(acl \n (entry …)\n )\n": keep from the newline before the entry
	// to the line before the closing parenthesis.
	start := bytes.IndexByte(whole, '\n')
	end := bytes.LastIndexByte(bytes.TrimRight(whole, " \n)"), '\n')
	if start < 0 || end <= start {
		panic("pki: unexpected ACL layout")
	}
	entry := bytes.TrimRight(whole[start:], "\n")
	entry = entry[:len(entry)-1] // the acl's closing parenthesis
	return bytes.TrimRight(entry, " ")
}

// ACLChange is what pairing did to an ACL file, recorded so it can be
// undone.
type ACLChange struct {
	// File is the ACL file.
	File string `json:"file"`
	// Key is the key added (advanced S-expression).
	Key string `json:"key"`
	// Added is false when the key was already authorized: removal then
	// leaves it.
	Added bool `json:"added"`
	// Created is set when the file did not exist: removal deletes it
	// when it holds nothing but Initial again.
	Created bool `json:"created,omitempty"`
	// Initial is what a created file held besides Key: the machine's
	// own key, as Guix creates a missing ACL ("" for nothing).
	Initial string `json:"initial,omitempty"`
	// Entry is the exact text inserted.
	Entry string `json:"entry,omitempty"`
}

// authorize adds k to the ACL file, as `guix archive --authorize` would,
// but by inserting one entry before the list's closing parenthesis so
// that every other byte stays. A missing file is created holding own
// (the machine's own key, as Guix creates it) and k.
func authorize(j *journal, file string, k *pki.PublicKey, own *pki.PublicKey) (*ACLChange, error) {
	ch := &ACLChange{File: file, Key: string(k.MarshalSexp())}
	old, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		keys := []*pki.PublicKey{k}
		ch.Created = true
		if own != nil && !own.Equal(k) {
			keys = []*pki.PublicKey{own, k}
			ch.Initial = string(pki.NewACL(own).MarshalSexp())
		}
		if err := j.mkdirAll(filepath.Dir(file), 0o755); err != nil {
			return nil, fmt.Errorf("authorize %s: %w", k.Fingerprint(), err)
		}
		data := pki.NewACL(keys...).MarshalSexp()
		if err := writeFile(j, file, data, 0o644, -1, -1); err != nil {
			return nil, err
		}
		ch.Added = true
		return ch, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ACL: %w", err)
	}
	acl, err := pki.ParseACL(old, file)
	if err != nil {
		return nil, fmt.Errorf("%w (fix or move the file, then pair again)", err)
	}
	if acl.Authorizes(k) {
		return ch, nil
	}
	entry := aclEntry(k)
	data, ok := insertEntry(old, entry)
	if ok {
		if na, err := pki.ParseACL(data, file); err != nil || !na.Authorizes(k) || len(na.Keys()) != len(acl.Keys())+1 {
			ok = false
		}
	}
	if !ok {
		// Canonical or otherwise unusual syntax: write it anew.
		if len(acl.Unsupported) > 0 {
			return nil, fmt.Errorf("authorize in %s: it holds keys of a kind this program cannot rewrite; add %s with 'guix archive --authorize'", file, k.Fingerprint())
		}
		data = pki.NewACL(append(acl.Keys(), k)...).MarshalSexp()
		entry = nil
	}
	if err := writeFile(j, file, data, 0o644, -1, -1); err != nil {
		return nil, err
	}
	ch.Added, ch.Entry = true, string(entry)
	return ch, nil
}

// insertEntry puts entry before the last closing parenthesis of data.
func insertEntry(data, entry []byte) ([]byte, bool) {
	trimmed := bytes.TrimRight(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[len(trimmed)-1] != ')' {
		return nil, false
	}
	i := len(trimmed) - 1
	// Keep the closing parenthesis on its own line when it is.
	j := i
	for j > 0 && (data[j-1] == ' ' || data[j-1] == '\t') {
		j--
	}
	if j > 0 && data[j-1] == '\n' {
		i = j - 1
	}
	out := make([]byte, 0, len(data)+len(entry))
	out = append(out, data[:i]...)
	out = append(out, entry...)
	out = append(out, data[i:]...)
	return out, true
}

// undo removes what ch added, leaving entries added since.
func (ch *ACLChange) undo(j *journal) error {
	if ch == nil || !ch.Added {
		return nil
	}
	k, err := pki.ParsePublicKey([]byte(ch.Key), ch.File)
	if err != nil {
		return fmt.Errorf("pairing record: %w", err)
	}
	cur, err := os.ReadFile(ch.File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read ACL: %w", err)
	}
	acl, err := pki.ParseACL(cur, ch.File)
	if err != nil {
		return fmt.Errorf("%w (remove %s from it by hand)", err, k.Fingerprint())
	}
	if !acl.Authorizes(k) {
		return nil
	}
	var data []byte
	if ch.Entry != "" && bytes.Count(cur, []byte(ch.Entry)) == 1 {
		data = bytes.Replace(cur, []byte(ch.Entry), nil, 1)
		if na, err := pki.ParseACL(data, ch.File); err != nil || na.Authorizes(k) {
			data = nil
		}
	}
	if data == nil {
		if len(acl.Unsupported) > 0 {
			return fmt.Errorf("remove %s from %s: it holds keys of a kind this program cannot rewrite; remove it by hand", k.Fingerprint(), ch.File)
		}
		var keep []*pki.PublicKey
		for _, o := range acl.Keys() {
			if !o.Equal(k) {
				keep = append(keep, o)
			}
		}
		data = pki.NewACL(keep...).MarshalSexp()
	}
	if ch.Created {
		if string(data) == ch.Initial {
			return removeFile(j, ch.File)
		}
		if na, err := pki.ParseACL(data, ch.File); ch.Initial == "" && err == nil && len(na.Keys()) == 0 && len(na.Unsupported) == 0 {
			return removeFile(j, ch.File)
		}
	}
	return writeFile(j, ch.File, data, 0o644, -1, -1)
}

// KeyLineChange is what pairing did to an authorized_keys file.
type KeyLineChange struct {
	File string `json:"file"`
	// Line is the exact line added (without its newline).
	Line string `json:"line"`
	// Added is false when the key was already there with the same line.
	Added bool `json:"added"`
	// CreatedFile and CreatedDir say what did not exist before.
	CreatedFile bool `json:"created-file,omitempty"`
	CreatedDir  bool `json:"created-dir,omitempty"`
}

// addKeyLine appends line to an authorized_keys file, creating it (and
// its directory, mode 0700) owned by uid:gid when missing. A line that
// is already there is not added twice.
func addKeyLine(j *journal, file, line string, uid, gid int) (*KeyLineChange, error) {
	ch := &KeyLineChange{File: file, Line: line}
	dir := filepath.Dir(file)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := j.mkdir(dir, 0o700, uid, gid); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		ch.CreatedDir = true
	}
	if err := ownedBy(dir, uid, true); err != nil {
		return nil, err
	}
	if err := ownedBy(file, uid, false); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	old, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ch.CreatedFile = true
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	for _, l := range strings.Split(string(old), "\n") {
		if strings.TrimSpace(l) == line {
			return ch, nil
		}
	}
	data := append([]byte(nil), old...)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	data = append(data, line+"\n"...)
	if err := writeFile(j, file, data, 0o600, uid, gid); err != nil {
		return nil, err
	}
	ch.Added = true
	return ch, nil
}

// ownedBy checks, as sshd's StrictModes does, that path (a directory
// when dir) is the login's: owned by uid (or by root, reached without a
// symbolic link) and not writable by others. The
// login may own its home and could otherwise point ~/.ssh at another
// account's, root's included, for root to write into.
func ownedBy(path string, uid int, dir bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	o, ok := statOwner(st)
	switch {
	case !ok:
	case dir && !st.IsDir(), !dir && !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a %s", path, map[bool]string{true: "directory", false: "regular file"}[dir])
	case o[0] == 0 && uid != 0 && !direct(path):
		return fmt.Errorf("%s leads through a symbolic link to root's files, not to the login's (uid %d): fix it, then pair again", path, uid)
	case o[0] != uid && o[0] != 0:
		return fmt.Errorf("%s belongs to uid %d, not to the login (uid %d) or root: fix its owner, then pair again", path, o[0], uid)
	case st.Mode().Perm()&0o002 != 0:
		return fmt.Errorf("%s is writable by anyone: fix its mode, then pair again", path)
	}
	return nil
}

// direct reports whether path names itself, through no symbolic link.
func direct(path string) bool {
	r, err := filepath.EvalSymlinks(path)
	return err == nil && r == filepath.Clean(path)
}

func (ch *KeyLineChange) undo(j *journal) error {
	if ch == nil || !ch.Added {
		return nil
	}
	cur, err := os.ReadFile(ch.File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", ch.File, err)
	}
	var out []string
	found := false
	lines := strings.SplitAfter(string(cur), "\n")
	for _, l := range lines {
		if !found && strings.TrimRight(l, "\r\n") == ch.Line {
			found = true
			continue
		}
		out = append(out, l)
	}
	if !found {
		return nil
	}
	data := strings.Join(out, "")
	if ch.CreatedFile && data == "" {
		if err := removeFile(j, ch.File); err != nil {
			return err
		}
		if ch.CreatedDir {
			// Only when nothing else is there (the backup just kept
			// is ours too).
			os.Remove(ch.File + BackupSuffix)
			os.Remove(filepath.Dir(ch.File))
		}
		return nil
	}
	return writeFile(j, ch.File, []byte(data), 0o600, -1, -1)
}
