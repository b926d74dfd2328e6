package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Store is a store directory and the stand-in's database beside it.
type Store struct {
	Dir   string // e.g. /gnu/store
	State string // database directory, e.g. /var/guix/standin
}

// Info is what the database knows of an item.
type Info struct {
	Path       string
	References []string
	Deriver    string
}

// CheckPath reports an error unless p is a direct child of the store
// with a usable name.
func (s *Store) CheckPath(p string) error {
	if filepath.Dir(p) != s.Dir {
		return fmt.Errorf("path `%s' is not in the Nix store", p)
	}
	base := filepath.Base(p)
	if base == "" || base == "." || base == ".." || strings.ContainsAny(base, "/\x00") || strings.HasPrefix(base, ".") {
		return fmt.Errorf("path `%s' is not a valid store path", p)
	}
	return nil
}

// Valid reports whether p is an item of the store.
func (s *Store) Valid(p string) bool {
	if s.CheckPath(p) != nil {
		return false
	}
	_, err := os.Lstat(p)
	return err == nil
}

func (s *Store) dbFile(p string) string {
	return filepath.Join(s.State, "db", filepath.Base(p))
}

// Query returns the database entry of p (references and deriver empty
// when it has none).
func (s *Store) Query(p string) (Info, error) {
	info := Info{Path: p}
	if !s.Valid(p) {
		return info, fmt.Errorf("path `%s' is not valid", p)
	}
	data, err := os.ReadFile(s.dbFile(p))
	if errors.Is(err, fs.ErrNotExist) {
		return info, nil
	}
	if err != nil {
		return info, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	first := true
	for sc.Scan() {
		if first {
			info.Deriver = sc.Text()
			first = false
			continue
		}
		if sc.Text() != "" {
			info.References = append(info.References, sc.Text())
		}
	}
	return info, sc.Err()
}

// Register records info in the database (the item must exist).
func (s *Store) Register(info Info) error {
	if err := os.MkdirAll(filepath.Join(s.State, "db"), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString(info.Deriver + "\n")
	refs := append([]string(nil), info.References...)
	sort.Strings(refs)
	for _, r := range refs {
		b.WriteString(r + "\n")
	}
	tmp := s.dbFile(info.Path) + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.dbFile(info.Path))
}

// Closure returns paths and everything they refer to, directly or not,
// sorted so that every item comes after the items it refers to.
func (s *Store) Closure(paths []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(p string) error
	visit = func(p string) error {
		switch state[p] {
		case 1, 2:
			return nil // self-references and cycles are allowed
		}
		state[p] = 1
		info, err := s.Query(p)
		if err != nil {
			return err
		}
		refs := append([]string(nil), info.References...)
		sort.Strings(refs)
		for _, r := range refs {
			if r != p {
				if err := visit(r); err != nil {
					return err
				}
			}
		}
		state[p] = 2
		order = append(order, p)
		return nil
	}
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted)
	for _, p := range sorted {
		if err := visit(p); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// TopoSort orders paths (without adding their references) so that an
// item comes after those it refers to, as `guix archive --export` does.
func (s *Store) TopoSort(paths []string) ([]string, error) {
	closure, err := s.Closure(paths)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	var out []string
	for _, p := range closure {
		if want[p] {
			out = append(out, p)
			delete(want, p)
		}
	}
	return out, nil
}

// ScanReferences returns those of candidates whose hash part (the 32
// characters after the store directory) occurs in the files under p, as
// the daemon does when it registers an output.
func ScanReferences(p string, candidates []string) ([]string, error) {
	hashes := map[string]string{}
	for _, c := range candidates {
		base := filepath.Base(c)
		if len(base) >= 32 {
			hashes[base[:32]] = c
		}
	}
	found := map[string]bool{}
	err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var data []byte
		switch {
		case d.Type().IsRegular():
			data, err = os.ReadFile(path)
		case d.Type()&fs.ModeSymlink != 0:
			var t string
			t, err = os.Readlink(path)
			data = []byte(t)
		}
		if err != nil {
			return err
		}
		for h, c := range hashes {
			if !found[c] && bytes.Contains(data, []byte(h)) {
				found[c] = true
			}
		}
		return nil
	})
	var out []string
	for c := range found {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, err
}
