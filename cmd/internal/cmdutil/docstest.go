package cmdutil

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
)

// CheckDocs generates root's documentation afresh into tmp and compares it
// with the copy kept in the source tree at top/DocsDir/PROG. With update,
// it replaces that copy instead. It returns one line per difference.
//
// Each program's test calls it; after adding or changing a command or a
// flag, regenerate with `go generate ./cmd/...` (which runs those tests
// with -update).
func CheckDocs(root *cobra.Command, top, tmp string, update bool) ([]string, error) {
	kept := filepath.Join(top, DocsDir, root.Name())
	if update {
		if err := os.RemoveAll(kept); err != nil {
			return nil, err
		}
		return nil, GenerateDocs(root, kept)
	}
	if err := GenerateDocs(root, tmp); err != nil {
		return nil, err
	}
	want, err := ReadTree(tmp)
	if err != nil {
		return nil, err
	}
	got, err := ReadTree(kept)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var diffs []string
	for name, text := range want {
		switch old, ok := got[name]; {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: missing", filepath.Join(kept, name)))
		case old != text:
			diffs = append(diffs, fmt.Sprintf("%s: out of date", filepath.Join(kept, name)))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: no such command any more", filepath.Join(kept, name)))
		}
	}
	sort.Strings(diffs)
	return diffs, nil
}
