package cmdutil

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// DocsDir is where, relative to the top of the source tree, each
// program's generated man pages and completions are kept: DocsDir/PROG.
const DocsDir = "dist"

// manDate is the date the man pages carry: a fixed one, so that they
// are the same whenever they are generated (the test that keeps them in
// sync compares bytes).
var manDate = time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)

// GenerateDocs writes root's documentation into dir, which it creates:
//
//	dir/man1/PROG.1, dir/man1/PROG-SUBCOMMAND.1 …   man pages, from the help texts
//	dir/bash-completion/PROG                        bash completion
//	dir/zsh/_PROG                                   zsh completion
//	dir/fish/PROG.fish                              fish completion
//
// root must have been set up with [Setup].
func GenerateDocs(root *cobra.Command, dir string) error {
	prog := root.Name()
	man := filepath.Join(dir, "man1")
	for _, d := range []string{man, filepath.Join(dir, "bash-completion"), filepath.Join(dir, "zsh"), filepath.Join(dir, "fish")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("generate documentation: %w", err)
		}
	}
	date := manDate
	header := &doc.GenManHeader{Section: "1", Date: &date, Source: "guix-offload", Manual: "guix-offload manual"}
	if err := doc.GenManTree(root, header, man); err != nil {
		return fmt.Errorf("generate man pages: %w", err)
	}
	for _, c := range []struct {
		file string
		gen  func(*os.File) error
	}{
		{filepath.Join(dir, "bash-completion", prog), func(f *os.File) error { return root.GenBashCompletionV2(f, true) }},
		{filepath.Join(dir, "zsh", "_"+prog), func(f *os.File) error { return root.GenZshCompletion(f) }},
		{filepath.Join(dir, "fish", prog+".fish"), func(f *os.File) error { return root.GenFishCompletion(f, true) }},
	} {
		f, err := os.Create(c.file)
		if err != nil {
			return fmt.Errorf("generate completion: %w", err)
		}
		err = c.gen(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("generate completion %s: %w", c.file, err)
		}
	}
	return nil
}

// ReadTree reads every regular file under dir, keyed by its path
// relative to dir: what tests compare.
func ReadTree(dir string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		files[rel] = string(b)
		return err
	})
	return files, err
}
