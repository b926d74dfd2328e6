package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/internal/nar"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/test/standin/internal/store"
)

// cmdArchive is `guix archive`.
func (g *guix) cmdArchive(ctx context.Context, args []string) int {
	var op string
	recursive := false
	var paths []string
	for _, a := range args {
		switch a {
		case "--missing", "--export", "--import":
			if op != "" {
				return g.fail("archive", fmt.Errorf("%s: only one of --missing, --export and --import at a time", a))
			}
			op = a
		case "-r", "--recursive":
			recursive = true
		default:
			if strings.HasPrefix(a, "-") {
				return g.fail("archive", fmt.Errorf("%s: unrecognized option", a))
			}
			paths = append(paths, a)
		}
	}
	if op == "--export" || op == "--import" {
		// The real command's daemon signs or checks signatures through
		// its `guix authenticate` helper, another Guile start.
		time.Sleep(g.startup)
	}
	switch op {
	case "--missing":
		return g.missing()
	case "--export":
		if err := g.export(paths, recursive); err != nil {
			return g.fail("archive", err)
		}
		return 0
	case "--import":
		if err := g.importArchive(ctx); err != nil {
			return g.fail("archive", err)
		}
		return 0
	}
	return g.fail("archive", errors.New("no operation specified"))
}

// missing reads store paths (whitespace-separated) on stdin and prints
// those that are not valid, as `guix archive --missing` does.
func (g *guix) missing() int {
	sc := bufio.NewScanner(g.stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		p := sc.Text()
		if err := g.store.CheckPath(p); err != nil {
			return g.fail("archive", err)
		}
		if !g.store.Valid(p) {
			fmt.Fprintln(g.stdout, p)
		}
	}
	if err := sc.Err(); err != nil {
		return g.fail("archive", err)
	}
	return 0
}

// export writes the signed export stream of paths (with -r, of their
// closure) to stdout, each item after the items it refers to.
func (g *guix) export(paths []string, recursive bool) error {
	for _, p := range paths {
		if !g.store.Valid(p) {
			return fmt.Errorf("path `%s' is not valid", p)
		}
	}
	key, err := pki.ReadPrivateKey(g.signingKeyFile)
	if err != nil {
		return fmt.Errorf("cannot read signing key: %w", err)
	}
	var ordered []string
	if recursive {
		ordered, err = g.store.Closure(paths)
	} else {
		ordered, err = g.store.TopoSort(paths)
	}
	if err != nil {
		return err
	}
	out := io.Writer(g.stdout)
	var buf *bytes.Buffer
	if g.tamper != "" {
		buf = &bytes.Buffer{}
		out = buf
	}
	xw := nar.NewExportWriter(out)
	for _, p := range ordered {
		info, err := g.store.Query(p)
		if err != nil {
			return err
		}
		if err := xw.WriteItem(p, info.References, info.Deriver, p, key.Sign); err != nil {
			return err
		}
	}
	if err := xw.Close(); err != nil {
		return err
	}
	if buf != nil {
		from, to, ok := strings.Cut(g.tamper, "=")
		if !ok || len(from) != len(to) || from == "" {
			return fmt.Errorf("GUIX_STANDIN_TAMPER=%q: want FROM=TO of equal lengths", g.tamper)
		}
		data := bytes.Replace(buf.Bytes(), []byte(from), []byte(to), 1)
		if _, err := g.stdout.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// importArchive reads an export stream on stdin into the store, as the
// daemon does: every item must be signed by a key in the ACL, match its
// signature, and refer only to valid items or items before it in the
// stream. It is all or nothing: items go under temporary names first and
// are moved into place only when the whole stream checked out.
func (g *guix) importArchive(ctx context.Context) error {
	return g.importArchiveFunc(ctx, nil)
}

// importArchiveFunc is importArchive, calling imported (when not nil)
// for each item read, in order.
func (g *guix) importArchiveFunc(ctx context.Context, imported func(store.Info)) error {
	acl, err := pki.ReadACL(g.aclFile)
	if err != nil {
		return err
	}
	type pending struct {
		tmp  string
		info store.Info
	}
	var items []pending
	seen := map[string]bool{}
	defer func() {
		for _, it := range items {
			_ = os.RemoveAll(it.tmp)
		}
	}()
	xr := nar.NewExportReader(g.stdin)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		tmp := filepath.Join(g.store.Dir, fmt.Sprintf(".import-%d-%d", os.Getpid(), n))
		it, err := xr.Next(tmp)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		items = append(items, pending{tmp: tmp, info: store.Info{Path: it.Path, References: it.References, Deriver: it.Deriver}})
		if err := g.store.CheckPath(it.Path); err != nil {
			return err
		}
		if it.Signature == nil {
			return fmt.Errorf("cannot import path `%s' because it lacks a valid signature", it.Path)
		}
		if _, err := it.Verify(acl); err != nil {
			if errors.Is(err, pki.ErrHashMismatch) {
				return fmt.Errorf("signed hash doesn't match actual contents of imported archive; archive could be corrupt, or someone is trying to import a Trojan horse (%v)", err)
			}
			return fmt.Errorf("cannot import path `%s' because it lacks a valid signature (%v)", it.Path, err)
		}
		for _, r := range it.References {
			if r != it.Path && !seen[r] && !g.store.Valid(r) {
				return fmt.Errorf("cannot add path `%s' because it references path `%s' which is not valid", it.Path, r)
			}
		}
		seen[it.Path] = true
		if imported != nil {
			imported(store.Info{Path: it.Path})
		}
	}
	for len(items) > 0 {
		it := items[0]
		if g.store.Valid(it.info.Path) {
			// Already valid: the daemon keeps what it has.
			_ = os.RemoveAll(it.tmp)
		} else {
			if err := os.Rename(it.tmp, it.info.Path); err != nil {
				return err
			}
			if err := g.store.Register(it.info); err != nil {
				return err
			}
		}
		items = items[1:]
	}
	return nil
}
