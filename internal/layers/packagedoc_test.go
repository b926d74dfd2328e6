package layers

import (
	"bytes"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Every package says what it is for in its doc.go, the one place a reader
// looks first: a package comment there, and in no other file.
func TestEveryPackageHasDocGo(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.Dir}}\t{{.Name}}\t{{join .GoFiles \" \"}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		dir, name, files := f[0], f[1], strings.Fields(f[2])
		want := "Package " + name + " "
		if name == "main" {
			want = "Command "
		}
		for _, file := range files {
			fset := token.NewFileSet()
			af, err := parser.ParseFile(fset, filepath.Join(dir, file), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case file == "doc.go" && af.Doc != nil && strings.HasPrefix(af.Doc.Text(), want):
			case file == "doc.go":
				t.Errorf("%s: the package comment should start %q", filepath.Join(dir, file), want)
			case af.Doc != nil:
				t.Errorf("%s: a package comment outside doc.go (move it there)", filepath.Join(dir, file))
			}
		}
		if !slices.Contains(files, "doc.go") {
			t.Errorf("%s: no doc.go saying what the package is for", dir)
		}
	}
}
